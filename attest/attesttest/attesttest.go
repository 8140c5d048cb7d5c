// Package attesttest makes SEV-SNP attestation evidence for tests, signed
// by go-sev-guest's test-only AMD certificate chain: fully offline, and
// never trusted by anything but a Verifier configured with this chain's
// roots (RootsFile). Import it from tests only: go-sev-guest's testing
// package registers command-line flags, and its keys are public.
package attesttest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/frostmint/frostmint/attest"
)

// signing serializes every fake's signing: go-sev-guest's test signer
// draws from one shared, unsynchronized math/rand source.
var signing sync.Mutex

// Fake is a fake AMD secure processor.
type Fake struct {
	// RootsFile is a PEM file of the fake ASK and ARK, for Config.Roots.
	RootsFile string

	mu          sync.Mutex
	signer      *sevtest.AmdSigner
	measurement [attest.MeasurementSize]byte
	policy      abi.SnpPolicy
}

// New makes a fake with the default test chain, whose reports carry
// Measurement(1) and a debuggable guest policy (as go-sev-guest's).
func New(t testing.TB) *Fake {
	t.Helper()
	s, err := sevtest.DefaultTestOnlyCertChain(sevtest.GetProductName(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{signer: s, measurement: Measurement(1), policy: abi.SnpPolicy{Debug: true, SMT: true}}
	f.RootsFile = filepath.Join(t.TempDir(), "ask_ark.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ask.Raw})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ark.Raw})...)
	if err := os.WriteFile(f.RootsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Measurement is a recognizable fake launch measurement.
func Measurement(n byte) [attest.MeasurementSize]byte {
	var m [attest.MeasurementSize]byte
	for i := range m {
		m[i] = n
	}
	return m
}

// ProductLine is the product line of the fake chain.
func ProductLine() string { return sevtest.GetProductLine() }

// Config returns a verifier config that trusts this fake's roots, allows
// Measurement(1) and debuggable guests (fake reports are).
func (f *Fake) Config() attest.Config {
	c := attest.DefaultConfig()
	c.Roots = []attest.Root{{ProductLine: ProductLine(), File: f.RootsFile}}
	m := Measurement(1)
	c.Measurements = []string{hexOf(m[:])}
	c.AllowDebug = true
	return c
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// SetMeasurement changes the measurement of later reports.
func (f *Fake) SetMeasurement(m [attest.MeasurementSize]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.measurement = m
}

// SetPolicy changes the guest policy of later reports.
func (f *Fake) SetPolicy(p abi.SnpPolicy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policy = p
}

// Evidence returns a signed report with reportData and its certificate
// table (VCEK, ASK, ARK…), as an SNP guest's extended report.
func (f *Fake) Evidence(reportData [64]byte) (*attest.Evidence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.evidence(reportData, f.measurement)
}

// evidence signs a report with reportData and measurement m. The caller
// holds f.mu.
func (f *Fake) evidence(reportData [64]byte, m [attest.MeasurementSize]byte) (*attest.Evidence, error) {
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: reportData[:]})
	report := raw[:abi.ReportSize]
	binary.LittleEndian.PutUint64(report[0x08:0x10], abi.SnpPolicyToBytes(f.policy))
	copy(report[0x90:0xC0], m[:])
	signing.Lock()
	r, s, err := f.signer.Sign(abi.SignedComponent(report))
	signing.Unlock()
	if err != nil {
		return nil, err
	}
	if err := abi.SetSignature(r, s, report); err != nil {
		return nil, err
	}
	table, err := f.signer.CertTableBytes()
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{Report: append([]byte(nil), report...), CertTable: table}, nil
}

// Provider returns a Provider that reports through this fake.
func (f *Fake) Provider() attest.Provider {
	return attest.ProviderFunc(func(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return f.Evidence(rd)
	})
}

// MeasuredProvider returns a Provider that reports through this fake with
// launch measurement m, whatever SetMeasurement says: one guest of a
// cluster that runs another image.
func (f *Fake) MeasuredProvider(m [attest.MeasurementSize]byte) attest.Provider {
	return attest.ProviderFunc(func(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.evidence(rd, m)
	})
}

// OtherRoots writes the ASK and ARK of another fake AMD (fresh keys) and
// returns the file: a root that never signed this package's VCEKs.
func OtherRoots(t testing.TB) string {
	t.Helper()
	keys := sevtest.DefaultAmdKeys()
	ark, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys.Ark, keys.Ask = ark, ark
	b := &sevtest.AmdSignerBuilder{Keys: keys, ProductName: sevtest.GetProductName(), CSPID: "other",
		ArkCreationTime: time.Now().Add(-time.Hour), AskCreationTime: time.Now().Add(-time.Hour),
		AsvkCreationTime: time.Now().Add(-time.Hour), VcekCreationTime: time.Now().Add(-time.Hour), VlekCreationTime: time.Now().Add(-time.Hour)}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other_ask_ark.pem")
	pb := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ask.Raw})
	pb = append(pb, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ark.Raw})...)
	if err := os.WriteFile(path, pb, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
