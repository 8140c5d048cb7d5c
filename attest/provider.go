package attest

import "context"

// Provider obtains this machine's attestation.
type Provider interface {
	// Report returns evidence whose REPORT_DATA is reportData. It fails
	// with an error wrapping ErrUnavailable when there is no SEV-SNP guest
	// device here (attestation is then absent), and with another error
	// when the device failed.
	Report(ctx context.Context, reportData [64]byte) (*Evidence, error)
}

// ProviderFunc adapts a function to a Provider.
type ProviderFunc func(ctx context.Context, reportData [64]byte) (*Evidence, error)

// Report calls f.
func (f ProviderFunc) Report(ctx context.Context, reportData [64]byte) (*Evidence, error) {
	return f(ctx, reportData)
}
