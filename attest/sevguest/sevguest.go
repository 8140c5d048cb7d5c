// Package sevguest is the attest.Provider of a real AMD SEV-SNP guest: it
// asks the guest's secure processor for an extended report, through the
// kernel's configfs-tsm report interface or the older /dev/sev-guest
// device (whichever go-sev-guest finds; Linux only).
//
// It lives apart from package attest because go-sev-guest's client
// registers command-line flags (sev_guest_device_path, default_vmpl, …)
// on the standard flag set when imported: only the signer daemon, which
// needs the device, imports it; the coordinator does not.
package sevguest

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"

	"github.com/frostmint/frostmint/attest"
)

// Provider gets reports from the guest device. Reports are serialized:
// the device serves one request at a time.
type Provider struct {
	mu sync.Mutex
	qp client.QuoteProvider
}

// Open finds the guest's SEV-SNP report interface. It fails with an error
// wrapping attest.ErrUnavailable when there is none (not an SNP guest, or
// the kernel lacks the driver).
func Open() (*Provider, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", attest.ErrUnavailable, err)
	}
	return &Provider{qp: qp}, nil
}

// Report implements attest.Provider. The context is checked before the
// call only: the device call itself cannot be cancelled.
func (p *Provider) Report(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	raw, err := p.qp.GetRawQuote(reportData)
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sev-snp report: %w", err)
	}
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("sev-snp report: %d bytes, want at least %d", len(raw), abi.ReportSize)
	}
	return &attest.Evidence{Report: raw[:abi.ReportSize:abi.ReportSize], CertTable: raw[abi.ReportSize:]}, nil
}
