package keystore

import (
	"fmt"
	"net/url"
)

// openPKCS11 opens the PKCS#11 backend (placeholder until it lands).
func openPKCS11(u *url.URL) (Backend, error) {
	return nil, fmt.Errorf("%w: pkcs11: not built yet", ErrConfig)
}
