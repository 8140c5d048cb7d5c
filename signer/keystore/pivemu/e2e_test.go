//go:build cgo && unix

package pivemu_test

// End-to-end: piv-go drives the emulated card through libpcsclite, pcscd
// and vpcd, as it would a YubiKey.

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/frostmint/frostmint/signer/keystore/pivemu"
	"github.com/go-piv/piv-go/v2/piv"
)

func openCard(t *testing.T, c *pivemu.Card) *piv.YubiKey {
	t.Helper()
	yk, err := piv.Open(c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { yk.Close() })
	return yk
}

func TestPIVGoEndToEnd(t *testing.T) {
	c := pivemu.Start(t, pivemu.Config{Serial: 31415926})[0]
	yk := openCard(t, c)

	if s, err := yk.Serial(); err != nil || s != 31415926 {
		t.Fatalf("serial %d, %v", s, err)
	}
	if v := yk.Version(); v != (piv.Version{Major: 5, Minor: 7, Patch: 1}) {
		t.Fatalf("version %+v", v)
	}

	// PIN: retries, change, wrong tries, unblock.
	if n, err := yk.Retries(); err != nil || n != 3 {
		t.Fatalf("retries %d, %v", n, err)
	}
	if err := yk.SetPIN(piv.DefaultPIN, "87654321"); err != nil {
		t.Fatal(err)
	}
	var ae piv.AuthErr
	if err := yk.VerifyPIN("00000000"); !errors.As(err, &ae) || ae.Retries != 2 {
		t.Fatalf("wrong PIN: %v", err)
	}
	if err := yk.VerifyPIN("87654321"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		yk.VerifyPIN("00000000")
	}
	if err := yk.VerifyPIN("87654321"); !errors.As(err, &ae) || ae.Retries != 0 {
		t.Fatalf("blocked PIN accepted: %v", err)
	}
	if err := yk.Unblock(piv.DefaultPUK, "24681357"); err != nil {
		t.Fatal(err)
	}
	if err := yk.VerifyPIN("24681357"); err != nil {
		t.Fatal(err)
	}

	// Keys, attestation, ECDH and signatures.
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature,
		piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyAlways})
	if err != nil {
		t.Fatal(err)
	}
	slotCert, err := yk.Attest(piv.SlotSignature)
	if err != nil {
		t.Fatal(err)
	}
	attCert, err := yk.AttestationCertificate()
	if err != nil {
		t.Fatal(err)
	}
	v := piv.Verifier{Roots: c.Roots()}
	a, err := v.Verify(attCert, slotCert)
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != 31415926 || a.Slot != piv.SlotSignature || a.PINPolicy != piv.PINPolicyAlways ||
		a.TouchPolicy != piv.TouchPolicyAlways || a.Version.Major != 5 || a.Formfactor != piv.FormfactorUSBAKeychain {
		t.Fatalf("attestation %+v", a)
	}
	if _, err := piv.Verify(attCert, slotCert); err == nil {
		t.Fatal("the emulator's attestation verified under Yubico's roots")
	}
	if _, err := yk.Attest(piv.SlotAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Fatalf("attesting an empty slot: %v", err)
	}
	info, err := yk.KeyInfo(piv.SlotSignature)
	if err != nil || info.PINPolicy != piv.PINPolicyAlways || info.Origin != piv.OriginGenerated || !pub.(*ecdsa.PublicKey).Equal(info.PublicKey) {
		t.Fatalf("key info %+v, %v", info, err)
	}

	prompts := 0
	auth := piv.KeyAuth{PINPrompt: func() (string, error) { prompts++; return "24681357", nil }}
	priv, err := yk.PrivateKey(piv.SlotSignature, pub, auth)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("frostmint"))
	for range 2 {
		sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatal("signature does not verify")
		}
	}
	if prompts != 2 {
		t.Fatalf("PIN policy always prompted %d times for 2 signatures", prompts)
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	shared, err := priv.(*piv.ECDSAPrivateKey).ECDH(peer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.ECDH(must(pub.(*ecdsa.PublicKey).ECDH()))
	if string(shared) != string(want) {
		t.Fatal("ECDH differs")
	}

	// X25519 (firmware 5.7).
	xpub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotKeyManagement,
		piv.Key{Algorithm: piv.AlgorithmX25519, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever})
	if err != nil {
		t.Fatal(err)
	}
	xpriv, err := yk.PrivateKey(piv.SlotKeyManagement, xpub, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	xpeer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xs, err := xpriv.(*piv.X25519PrivateKey).ECDH(xpeer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if xw, _ := xpeer.ECDH(xpub.(*ecdh.PublicKey)); string(xs) != string(xw) {
		t.Fatal("X25519 differs")
	}
	xcert, err := yk.Attest(piv.SlotKeyManagement)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(attCert, xcert); err != nil {
		t.Fatalf("X25519 attestation: %v", err)
	}

	// Certificates larger than one APDU, both ways.
	large := selfSigned(t, 1500)
	if err := yk.SetCertificate(piv.DefaultManagementKey, piv.SlotSignature, large); err != nil {
		t.Fatal(err)
	}
	got, err := yk.Certificate(piv.SlotSignature)
	if err != nil || !got.Equal(large) {
		t.Fatalf("certificate read back: %v", err)
	}

	// Management key: change it (AES-256), the old one is refused.
	nk := make([]byte, 32)
	rand.Read(nk)
	if err := yk.SetManagementKey(piv.DefaultManagementKey, nk); err != nil {
		t.Fatal(err)
	}
	if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}); err == nil {
		t.Fatal("old management key accepted")
	}
	if _, err := yk.GenerateKey(nk, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}); err != nil {
		t.Fatal(err)
	}

	// Reset blocks PIN and PUK first, then wipes the keys.
	if err := yk.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := yk.Attest(piv.SlotSignature); !errors.Is(err, piv.ErrNotFound) {
		t.Fatalf("key survived reset: %v", err)
	}
	if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
		t.Fatal(err)
	}
}

// TestTwoCards inserts both vpcd readers' cards at once.
func TestTwoCards(t *testing.T) {
	cs := pivemu.Start(t, pivemu.Config{}, pivemu.Config{})
	if cs[0].Reader() == cs[1].Reader() {
		t.Fatal("both cards in one reader")
	}
	for _, c := range cs {
		if s, err := openCard(t, c).Serial(); err != nil || s != c.Serial() {
			t.Fatalf("serial %d, %v; want %d", s, err, c.Serial())
		}
	}
}

// TestReinsert checks that a card pulled out and another inserted into
// the same reader right after (the next test's Start) is seen.
func TestReinsert(t *testing.T) {
	for range 3 {
		t.Run("", func(t *testing.T) {
			c := pivemu.Start(t)[0]
			if s, err := openCard(t, c).Serial(); err != nil || s != c.Serial() {
				t.Fatalf("serial %d, %v; want %d", s, err, c.Serial())
			}
		})
	}
}

// selfSigned returns a certificate of at least extra bytes (padded with
// a private extension), larger than a short APDU.
func selfSigned(t *testing.T, extra int) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, extra)
	rand.Read(pad)
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: "pivemu big certificate"},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: []int{1, 3, 6, 1, 4, 1, 99999, 1}, Value: pad}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
