//go:build !cgo

package keystore

import (
	"fmt"
	"net/url"
)

// errPIVNoCgo is why a build without cgo has no PIV backend: piv-go talks
// to pcscd through libpcsclite, a C library.
var errPIVNoCgo = fmt.Errorf("%w: piv: this build has no cgo; rebuild with CGO_ENABLED=1 and libpcsclite", ErrConfig)

// openPIV checks the URI, so its mistakes are reported in any build, then
// fails: this build cannot reach a card.
func openPIV(u *url.URL) (Backend, error) {
	if _, err := parsePIVURI(u); err != nil {
		return nil, err
	}
	return nil, errPIVNoCgo
}

// EnrollPIV needs a card, hence cgo; see the cgo build's documentation.
// This build checks the URI and options, then fails with an error
// wrapping ErrConfig.
func EnrollPIV(uri string, o PIVEnrollOptions) (*PIVEnrollment, error) {
	if _, err := parsePIVURIString(uri); err != nil {
		return nil, err
	}
	if _, err := pivEnrollAlgorithm(o.Algorithm); err != nil {
		return nil, err
	}
	return nil, errPIVNoCgo
}
