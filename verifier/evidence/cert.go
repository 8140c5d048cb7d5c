package evidence

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/frostmint/frostmint/verifier/mtls"
)

// Bounds of a certificate proof.
const (
	// MaxChainLength bounds the certificates of a proof, leaf included.
	MaxChainLength = 8
	// MaxCertificateSize bounds one DER certificate.
	MaxCertificateSize = 16 << 10
)

func (v *Verifier) verifyCertificate(req Request, chain [][]byte, sig []byte) (*Identity, error) {
	msg, err := Canonical(req)
	if err != nil {
		return nil, err
	}
	switch {
	case len(chain) == 0:
		return nil, fmt.Errorf("%w: certificate proof without a certificate", ErrInvalid)
	case len(sig) == 0:
		return nil, fmt.Errorf("%w: certificate proof without a signature", ErrInvalid)
	case len(chain) > MaxChainLength:
		return nil, fmt.Errorf("%w: chain of %d certificates, at most %d allowed", ErrInvalid, len(chain), MaxChainLength)
	case len(sig) > MaxSignatureSize:
		return nil, fmt.Errorf("%w: signature of %d bytes, at most %d allowed", ErrInvalid, len(sig), MaxSignatureSize)
	}
	if v.roots == nil {
		return nil, fmt.Errorf("%w: certificate callers are not trusted here (no roots configured)", ErrUntrusted)
	}

	// The window first: it is cheap, and a stale proof is refused whatever
	// else it holds.
	now := v.now()
	ts := req.Timestamp
	expiry := ts.Add(v.maxAge)
	if now.Before(ts.Add(-v.maxAge)) || !now.Before(expiry) {
		return nil, fmt.Errorf("%w: proof made at %s, now is %s: more than %s apart",
			ErrExpired, ts.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.maxAge)
	}

	key := chainKey(chain)
	if vc := v.chains.get(key, now, ts); vc != nil {
		return identify(vc.leaf, vc.id, req, msg, sig, expiry)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		if len(der) == 0 || len(der) > MaxCertificateSize {
			return nil, fmt.Errorf("%w: certificate %d is %d bytes", ErrInvalid, i, len(der))
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrInvalid, i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		if ci, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ci.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: certificate chain: %w", ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: certificate chain: %w", ErrUntrusted, err)
	}
	// The proof must also have been made while the chain was valid.
	if !slices.ContainsFunc(chains, func(ch []*x509.Certificate) bool {
		return !slices.ContainsFunc(ch, func(c *x509.Certificate) bool {
			return ts.Before(c.NotBefore) || ts.After(c.NotAfter)
		})
	}) {
		return nil, fmt.Errorf("%w: the certificate chain was not valid at the proof time %s",
			ErrExpired, ts.UTC().Format(time.RFC3339))
	}

	// An X509-SVID leaf: not a CA, for digital signatures, for clients.
	switch {
	case leaf.IsCA:
		return nil, fmt.Errorf("%w: the leaf certificate is a CA", ErrUntrusted)
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return nil, fmt.Errorf("%w: the leaf certificate does not allow digital signatures", ErrUntrusted)
	case leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return nil, fmt.Errorf("%w: the leaf certificate may sign certificates or CRLs", ErrUntrusted)
	case !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth):
		return nil, fmt.Errorf("%w: the leaf certificate does not list client authentication", ErrUntrusted)
	}
	id, err := mtls.IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	v.chains.put(key, leaf, id, chains)
	return identify(leaf, id, req, msg, sig, expiry)
}

// identify checks the request signature of a leaf whose chain verified,
// with SPIFFE ID id, and returns the identity it proves.
func identify(leaf *x509.Certificate, id string, req Request, msg, sig []byte, expiry time.Time) (*Identity, error) {
	if err := verifySignature(leaf.PublicKey, msg, sig); err != nil {
		return nil, fmt.Errorf("%w: request signature of %s: %w", ErrUntrusted, id, err)
	}
	return &Identity{
		Kind:     KindCertificate,
		Subject:  id,
		ClientID: id,
		Claims: map[string]any{
			"spiffe_id": id,
			"serial":    leaf.SerialNumber.Text(16),
			"not_after": leaf.NotAfter.Unix(),
		},
		UseKey: "cert:" + id + ":" + base64.RawURLEncoding.EncodeToString(req.Nonce),
		Expiry: expiry,
	}, nil
}
