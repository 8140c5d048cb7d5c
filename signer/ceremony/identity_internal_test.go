package ceremony

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/mtls"
)

func TestSignatureKeyTypes(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	msg := []byte("body")
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ed25519", edKey}, {"ecdsa p-256", p256}} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := sign(tc.key, domainRound1, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !verifySignature(tc.key.Public(), domainRound1, msg, sig) {
				t.Fatal("does not verify")
			}
			if verifySignature(tc.key.Public(), domainRound2, msg, sig) || verifySignature(tc.key.Public(), domainTranscript, msg, sig) {
				t.Fatal("verifies under another domain")
			}
			if verifySignature(tc.key.Public(), domainRound1, []byte("other"), sig) {
				t.Fatal("verifies another message")
			}
			if verifySignature(tc.key.Public(), domainRound1, msg, nil) {
				t.Fatal("verifies an empty signature")
			}
		})
	}
	if err := checkKeyType(p384.Public()); err == nil {
		t.Fatal("P-384 accepted")
	}
	if _, err := sign(p384, domainRound1, msg); err == nil {
		t.Fatal("signed with P-384")
	}
	sig, _ := p384.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	if verifySignature(p384.Public(), domainRound1, msg, sig) {
		t.Fatal("verified P-384")
	}
}

// edIssuer is a CA (ECDSA) that issues Ed25519 leaf certificates.
type edIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newEdIssuer(t testing.TB) *edIssuer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ed CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &edIssuer{cert: cert, key: key, der: der}
}

func (ca *edIssuer) issue(dir string, id uint16) (mtls.Files, error) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	u, _ := url.Parse(testID(id))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(id) + 10), Subject: pkix.Name{CommonName: fmt.Sprint(id)},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return mtls.Files{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return mtls.Files{}, err
	}
	f := mtls.Files{Cert: filepath.Join(dir, fmt.Sprintf("ed-%d.crt", id)), Key: filepath.Join(dir, fmt.Sprintf("ed-%d.key", id)),
		CA: filepath.Join(dir, "ed-ca.crt")}
	for path, blk := range map[string]*pem.Block{f.Cert: {Type: "CERTIFICATE", Bytes: der}, f.Key: {Type: "PRIVATE KEY", Bytes: kder},
		f.CA: {Type: "CERTIFICATE", Bytes: ca.der}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			return mtls.Files{}, err
		}
	}
	return f, nil
}

func TestEd25519Participants(t *testing.T) {
	ca := newEdIssuer(t)
	u := newUnitIssued(t, 2, 3, ca.issue, nil)
	if _, ok := u.ps[1].me.key.Public().(ed25519.PublicKey); !ok {
		t.Fatal("the participant's key is not Ed25519")
	}
	st := u.begin(t)
	u.exchange(t, st)
	u.finish(t, st)
	kid := u.commit(t, st)
	if _, err := VerifyDir(filepath.Join(u.ps[2].cfg.KeysDir, kid), u.ps[2].me.roots); err != nil {
		t.Fatal(err)
	}
}
