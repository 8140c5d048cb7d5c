package ceremony

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/frostmint/frostmint/verifier/mtls"
)

// Domain-separation prefixes of everything a participant signs with its
// TLS key. They cannot collide with each other nor with TLS 1.3's own
// CertificateVerify content (64 spaces, then a context string).
const (
	domainRound1     = "frostmint ceremony v1 round1\x00"
	domainRound2     = "frostmint ceremony v1 round2\x00"
	domainTranscript = "frostmint ceremony v1 transcript\x00"
)

// Bounds on what a peer may send.
const (
	maxChain     = 4
	maxCertBytes = 16 << 10
	maxSigBytes  = 256
)

// identity is a participant's TLS identity: the key that signs its
// ceremony messages and the certificate chain that names it.
type identity struct {
	key   crypto.Signer
	chain [][]byte
	leaf  *x509.Certificate
	id    string
	roots *x509.CertPool
}

// loadIdentity reads the key pair and CA bundle of f. The key must be
// Ed25519 or ECDSA P-256 and the leaf must carry one SPIFFE ID.
func loadIdentity(f mtls.Files) (*identity, error) {
	if err := f.Validate("ceremony participant"); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("ceremony: loading the TLS key pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("ceremony: TLS certificate: %w", err)
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("ceremony: the TLS key cannot sign")
	}
	if err := checkKeyType(leaf.PublicKey); err != nil {
		return nil, err
	}
	id, err := mtls.IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("ceremony: TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("ceremony: reading the CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ceremony: no certificate in CA bundle %s", f.CA)
	}
	return &identity{key: key, chain: cert.Certificate, leaf: leaf, id: id, roots: roots}, nil
}

func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("ceremony: certificate key is %T; want Ed25519 or ECDSA P-256", pub)
}

func signedMessage(domain string, msg []byte) []byte {
	out := make([]byte, 0, len(domain)+len(msg))
	return append(append(out, domain...), msg...)
}

// sign signs domain || msg: Ed25519 over the message, ECDSA P-256 over
// its SHA-256 (ASN.1 DER).
func sign(key crypto.Signer, domain string, msg []byte) ([]byte, error) {
	if err := checkKeyType(key.Public()); err != nil {
		return nil, err
	}
	m := signedMessage(domain, msg)
	switch key.Public().(type) {
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, m, crypto.Hash(0))
	case *ecdsa.PublicKey:
		h := sha256.Sum256(m)
		return key.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("ceremony: cannot sign with a %T key", key.Public())
}

// verifySignature checks a signature made by [sign].
func verifySignature(pub crypto.PublicKey, domain string, msg, sig []byte) bool {
	if len(sig) == 0 || len(sig) > maxSigBytes {
		return false
	}
	m := signedMessage(domain, msg)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize && ed25519.Verify(k, m, sig)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return false
		}
		h := sha256.Sum256(m)
		return ecdsa.VerifyASN1(k, h[:], sig)
	}
	return false
}

// parseChain parses a DER chain, leaf first, within the size bounds.
func parseChain(raw [][]byte) ([]*x509.Certificate, error) {
	if len(raw) == 0 || len(raw) > maxChain {
		return nil, fmt.Errorf("%d certificates in the chain", len(raw))
	}
	out := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		if len(der) > maxCertBytes {
			return nil, fmt.Errorf("certificate %d is %d bytes", i, len(der))
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse", i)
		}
		out[i] = c
	}
	return out, nil
}

// verifyChain checks that chain[0] chains to roots at time at and may sign
// (key usage), and returns its SPIFFE ID. With nil roots only the leaf's
// own form is checked: the caller anchors trust some other way.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, at time.Time) (string, error) {
	leaf := chain[0]
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return "", fmt.Errorf("certificate chain does not verify: %w", err)
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "", errors.New("certificate may not sign (no digitalSignature key usage)")
	}
	if err := checkKeyType(leaf.PublicKey); err != nil {
		return "", err
	}
	return mtls.IdentityOf(leaf)
}
