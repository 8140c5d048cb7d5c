//go:build !cgo

package keystore

import (
	"fmt"
	"net/url"
)

// Without cgo no PKCS#11 library can be loaded: both entry points say so
// plainly instead of failing later in a confusing way.

func openPKCS11(*url.URL) (Backend, error) { return nil, errPKCS11NoCgo() }

// InitPKCS11Key creates the sealing key a pkcs11: keystore URI names; this
// build has no cgo, so it always fails with an error wrapping [ErrConfig].
func InitPKCS11Key(string) error { return errPKCS11NoCgo() }

func errPKCS11NoCgo() error {
	return fmt.Errorf("%w: pkcs11: this build has no cgo; rebuild with CGO_ENABLED=1", ErrConfig)
}
