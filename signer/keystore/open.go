package keystore

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// ErrConfig means a keystore URI is not usable; the error says why.
var ErrConfig = errors.New("keystore: invalid keystore URI")

// Backend is a [Sealer] that holds resources (a PKCS#11 session, a smart
// card) until closed. Close releases them; it fails only when the device
// reports an error on release.
type Backend interface {
	Sealer
	io.Closer
}

// Options adjust [Open].
type Options struct {
	// Dev allows the passphrase ("file:") backend, which is for development
	// only: a production signer refuses it.
	Dev bool
}

// Open returns the backend a keystore URI names. The URI chooses the
// backend by its scheme:
//
//	file:?passphrase=env:NAME          passphrase-sealed (dev only)
//	file:?passphrase=file:/path
//	pkcs11:token=LABEL;object=KEY?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path
//	piv:?serial=12345678&slot=9d&pin-source=env:NAME&touch=always
//
// Secrets (passphrases, PINs) are only ever named by a source, "env:NAME"
// or "file:PATH", never written in the URI itself. Open fails with an
// error wrapping [ErrConfig] for a bad URI, and with the backend's error
// when the device cannot be opened; errors never carry a secret.
func Open(uri string, o Options) (Backend, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %q does not parse", ErrConfig, Redact(uri))
	}
	switch u.Scheme {
	case "file":
		if !o.Dev {
			return nil, fmt.Errorf("%w: the passphrase (file:) keystore is for development only; start the signer in dev mode or use pkcs11: or piv:", ErrConfig)
		}
		return openFile(u)
	case "pkcs11":
		return openPKCS11(u)
	case "piv":
		return openPIV(u)
	case "":
		return nil, fmt.Errorf("%w: no scheme (want file:, pkcs11: or piv:)", ErrConfig)
	default:
		return nil, fmt.Errorf("%w: unknown scheme %q (want file:, pkcs11: or piv:)", ErrConfig, u.Scheme)
	}
}

// SecretSource checks that src names a secret by source ("env:NAME" or
// "file:PATH") rather than holding it.
func SecretSource(name, src string) error {
	switch {
	case src == "":
		return fmt.Errorf("%w: %s is required (env:NAME or file:PATH)", ErrConfig, name)
	case strings.HasPrefix(src, "env:") && len(src) > len("env:"):
		return nil
	case strings.HasPrefix(src, "file:") && len(src) > len("file:"):
		return nil
	default:
		return fmt.Errorf("%w: %s must be env:NAME or file:PATH, never the secret itself", ErrConfig, name)
	}
}

// fileBackend is the passphrase backend opened from a URI.
type fileBackend struct{ *Passphrase }

func (fileBackend) Close() error { return nil }

func openFile(u *url.URL) (Backend, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: file: query does not parse", ErrConfig)
	}
	for k := range q {
		if k != "passphrase" {
			return nil, fmt.Errorf("%w: file: unknown attribute %q", ErrConfig, k)
		}
	}
	src := q.Get("passphrase")
	if err := SecretSource("file: passphrase", src); err != nil {
		return nil, err
	}
	pass, err := ReadPassphrase(src)
	if err != nil {
		return nil, err
	}
	defer Wipe(pass)
	p, err := NewPassphrase(pass, ScryptParams{})
	if err != nil {
		return nil, err
	}
	return fileBackend{p}, nil
}

// Redact returns uri without its query (where PIN and passphrase sources,
// module paths and other attributes go), for logs and errors: what a
// keystore URI may say about where its secrets are is not printed.
func Redact(uri string) string {
	if i := strings.IndexAny(uri, "?"); i >= 0 {
		return uri[:i] + "?…"
	}
	return uri
}
