package keystore

import (
	"fmt"
	"net/url"
)

// openPIV opens the YubiKey PIV backend (placeholder until it lands).
func openPIV(u *url.URL) (Backend, error) {
	return nil, fmt.Errorf("%w: piv: not built yet", ErrConfig)
}
