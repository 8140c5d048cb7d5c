package attest

import (
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"google.golang.org/protobuf/proto"

	attestv1 "github.com/frostmint/frostmint/proto/frostmint/attest/v1"
)

// MaxCertTable bounds the certificate table of one Evidence: a VCEK, ASK,
// ARK and a few extras are a few kilobytes.
const MaxCertTable = 64 << 10

// Evidence is one AMD SEV-SNP attestation as the guest device returns an
// extended report: the raw report and the certificate table. On the wire
// it is attestv1.Evidence.
type Evidence struct {
	// Report is the raw ATTESTATION_REPORT (abi.ReportSize bytes).
	Report []byte
	// CertTable is the GUID-indexed certificate table (may be empty).
	CertTable []byte
}

// Proto returns e as its wire message.
func (e *Evidence) Proto() *attestv1.Evidence {
	return &attestv1.Evidence{Report: e.Report, CertTable: e.CertTable}
}

// FromProto checks the shape of a wire message and returns it as Evidence.
// A nil or empty message is ErrNoAttestation; a malformed one ErrEvidence.
func FromProto(m *attestv1.Evidence) (*Evidence, error) {
	if m == nil || (len(m.GetReport()) == 0 && len(m.GetCertTable()) == 0) {
		return nil, ErrNoAttestation
	}
	e := &Evidence{Report: m.GetReport(), CertTable: m.GetCertTable()}
	if _, err := e.attestation(); err != nil {
		return nil, err
	}
	return e, nil
}

// ParseEvidence decodes the protobuf encoding of attestv1.Evidence (what
// Marshal returns) and checks its shape: errors wrap ErrEvidence or, for
// empty evidence, ErrNoAttestation.
func ParseEvidence(b []byte) (*Evidence, error) {
	var m attestv1.Evidence
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	return FromProto(&m)
}

// Marshal encodes e as attestv1.Evidence.
func (e *Evidence) Marshal() ([]byte, error) { return proto.Marshal(e.Proto()) }

// attestation parses the report and the certificate table.
func (e *Evidence) attestation() (*spb.Attestation, error) {
	if len(e.Report) != abi.ReportSize {
		return nil, fmt.Errorf("%w: report is %d bytes, want %d", ErrEvidence, len(e.Report), abi.ReportSize)
	}
	if len(e.CertTable) > MaxCertTable {
		return nil, fmt.Errorf("%w: certificate table of %d bytes (at most %d)", ErrEvidence, len(e.CertTable), MaxCertTable)
	}
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: report: %w", ErrEvidence, err)
	}
	chain := &spb.CertificateChain{}
	if len(e.CertTable) > 0 {
		t := new(abi.CertTable)
		if err := t.Unmarshal(e.CertTable); err != nil {
			return nil, fmt.Errorf("%w: certificate table: %w", ErrEvidence, err)
		}
		chain = t.Proto()
	}
	if chain.Extras == nil {
		chain.Extras = map[string][]byte{}
	}
	return &spb.Attestation{Report: r, CertificateChain: chain}, nil
}

// errors.Is targets, one per reason a Verify refuses.
var (
	// ErrNoAttestation: the signer has no attestation (not in an SNP
	// guest, or attestation turned off).
	ErrNoAttestation = errors.New("attest: no attestation")
	// ErrEvidence: the evidence is not a well-formed report and
	// certificate table.
	ErrEvidence = errors.New("attest: malformed evidence")
	// ErrChain: the VCEK does not chain to a trusted root (unknown or
	// wrong root, missing or invalid certificates).
	ErrChain = errors.New("attest: certificate chain not trusted")
	// ErrSignature: the report is not signed by the VCEK it came with
	// (tampered report).
	ErrSignature = errors.New("attest: report signature invalid")
	// ErrReportData: REPORT_DATA does not bind the expected TLS key,
	// signer id and policy hash.
	ErrReportData = errors.New("attest: report data does not match the binding")
	// ErrDebug: the guest policy lets the host debug the guest, and
	// allow_debug is off.
	ErrDebug = errors.New("attest: guest is debuggable")
	// ErrPolicy: another guest policy bit or the ABI version is not
	// allowed.
	ErrPolicy = errors.New("attest: guest policy not allowed")
	// ErrMeasurement: the launch measurement is not in the allow-list.
	ErrMeasurement = errors.New("attest: measurement not allowed")
	// ErrTCB: the platform's TCB, firmware or guest SVN is below the
	// minimum, or inconsistent with its certificate.
	ErrTCB = errors.New("attest: TCB below the minimum")
	// ErrFetch: the chain could not be checked because fetching a
	// certificate from AMD's KDS failed: this verifier's trouble (network,
	// KDS down or rate-limiting), not the evidence's; try again later.
	ErrFetch = errors.New("attest: AMD's KDS could not be reached")
	// ErrUnavailable: no SEV-SNP guest device here (Provider).
	ErrUnavailable = errors.New("attest: no SEV-SNP guest device")
)
