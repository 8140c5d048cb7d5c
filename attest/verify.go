package attest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// Verifier checks attestation evidence against a Config. It is safe for
// concurrent use.
type Verifier struct {
	cfg          Config
	roots        map[string][]*trust.AMDRootCerts // nil: go-sev-guest's built-in AMD roots
	measurements [][]byte
	getter       trust.ContextHTTPSGetter // nil: no fetching
	kdsClient    *http.Client
	now          func() time.Time
	minABI       [2]uint8
}

// VerifierOption adjusts a Verifier.
type VerifierOption func(*Verifier)

// WithClock sets the time certificates are checked at (default time.Now).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// WithKDSClient sets the HTTP client of KDS fetches (a proxy's, or a
// test's); its Timeout is replaced by the configured one.
func WithKDSClient(c *http.Client) VerifierOption { return func(v *Verifier) { v.kdsClient = c } }

// NewVerifier validates cfg and loads its roots. It fails when the config
// is invalid or a root file cannot be read or parsed.
func NewVerifier(cfg Config, opts ...VerifierOption) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("attestation config: %w", err)
	}
	v := &Verifier{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	if len(cfg.Roots) > 0 {
		v.roots = map[string][]*trust.AMDRootCerts{}
		for _, r := range cfg.Roots {
			pem, err := os.ReadFile(r.File)
			if err != nil {
				return nil, fmt.Errorf("attestation: roots: %w", err)
			}
			root := trust.AMDRootCertsProduct(r.ProductLine)
			root.ProductCerts = &trust.ProductCerts{}
			if err := root.ProductCerts.FromKDSCertBytes(pem); err != nil {
				return nil, fmt.Errorf("attestation: roots: %s: %w", r.File, err)
			}
			v.roots[r.ProductLine] = append(v.roots[r.ProductLine], root)
		}
	}
	for _, m := range cfg.Measurements {
		b, _ := hex.DecodeString(m) // checked by Validate
		v.measurements = append(v.measurements, b)
	}
	if cfg.MinABI != "" {
		v.minABI[0], v.minABI[1], _ = parseABI(cfg.MinABI)
	}
	if cfg.KDS != nil {
		timeout := time.Duration(cfg.KDS.Timeout)
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		if err := os.MkdirAll(cfg.KDS.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("attestation: kds cache: %w", err)
		}
		client := &http.Client{}
		if v.kdsClient != nil {
			*client = *v.kdsClient
		}
		client.Timeout = timeout
		v.getter = &cachingGetter{dir: cfg.KDS.CacheDir, client: client}
	}
	return v, nil
}

// Result is what a verified attestation says.
type Result struct {
	// Attested is true for every Result Verify returns; a caller's zero
	// Result means "not attested".
	Attested bool
	// Measurement is the launch measurement, hex.
	Measurement string
	// ChipID is the chip's id, hex (zero when the host masks it).
	ChipID string
	// HostData is the 32 bytes the host set at launch, hex.
	HostData string
	// ReportedTCB is the TCB the report (and its VCEK) is at.
	ReportedTCB TCB
	// GuestSVN is the guest's security version number.
	GuestSVN uint32
	// Policy is the guest policy.
	Policy GuestPolicy
	// ProductLine is the AMD product line whose root anchored the chain
	// ("Milan", "Genoa", "Turin"), when known.
	ProductLine string
}

// GuestPolicy is the guest policy in a report.
type GuestPolicy struct {
	Debug, MigrationAgent, SMT, SingleSocket bool
	ABI                                      string
}

// PolicyInput renders r for Rego: {"attested", "measurement", "chip_id",
// "host_data", "tcb": {"bootloader", "tee", "snp", "microcode"},
// "guest_svn", "policy": {"debug", "migration_agent", "smt",
// "single_socket", "abi"}}. A nil or zero Result gives {"attested": false,
// "measurement": ""} and nothing else.
func (r *Result) PolicyInput() map[string]any {
	if r == nil || !r.Attested {
		return map[string]any{"attested": false, "measurement": ""}
	}
	return map[string]any{
		"attested":     true,
		"measurement":  r.Measurement,
		"chip_id":      r.ChipID,
		"host_data":    r.HostData,
		"product_line": r.ProductLine,
		"guest_svn":    int(r.GuestSVN),
		"tcb": map[string]any{
			"bootloader": int(r.ReportedTCB.Bootloader), "tee": int(r.ReportedTCB.TEE),
			"snp": int(r.ReportedTCB.SNP), "microcode": int(r.ReportedTCB.Microcode),
		},
		"policy": map[string]any{
			"debug": r.Policy.Debug, "migration_agent": r.Policy.MigrationAgent,
			"smt": r.Policy.SMT, "single_socket": r.Policy.SingleSocket, "abi": r.Policy.ABI,
		},
	}
}

// Verify checks ev: its chain to a trusted root (fetching missing
// certificates only when KDS is configured), its signature, that its
// REPORT_DATA is expected (see ReportData), the guest policy, the
// measurement and the TCB. A nil ev is ErrNoAttestation; every other
// refusal wraps the sentinel of its reason (see the package doc) with the
// detail. Only a nil error comes with a Result.
func (v *Verifier) Verify(ctx context.Context, ev *Evidence, expected [64]byte) (Result, error) {
	if ev == nil {
		return Result{}, ErrNoAttestation
	}
	att, err := ev.attestation()
	if err != nil {
		return Result{}, err
	}
	opts := &verify.Options{
		DisableCertFetching: v.getter == nil,
		Now:                 v.now(),
		TrustedRoots:        v.roots,
	}
	var fetch *fetchNotes
	if v.getter != nil {
		fetch = &fetchNotes{inner: v.getter}
		opts.Getter = fetch
	}
	if err := verify.SnpAttestationContext(ctx, att, opts); err != nil {
		if ferr := fetch.failure(); ferr != nil {
			// A certificate could not be fetched: nothing is known about
			// the evidence, and its sender is not to blame.
			return Result{}, fmt.Errorf("%w: %w (%w)", ErrFetch, ferr, err)
		}
		if vcek := att.GetCertificateChain().GetVcekCert(); len(vcek) > 0 {
			if c, perr := x509.ParseCertificate(vcek); perr == nil && verify.SnpReportSignature(ev.Report, c) != nil {
				return Result{}, fmt.Errorf("%w: %w", ErrSignature, err)
			}
		}
		return Result{}, fmt.Errorf("%w: %w", ErrChain, err)
	}
	rep := att.GetReport()
	if subtle.ConstantTimeCompare(rep.GetReportData(), expected[:]) != 1 {
		return Result{}, fmt.Errorf("%w: the report binds another TLS key, signer id or policy hash", ErrReportData)
	}
	pol, err := abi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if pol.Debug && !v.cfg.AllowDebug {
		return Result{}, fmt.Errorf("%w: the guest policy allows the host to debug it (allow_debug is off)", ErrDebug)
	}
	var bad []string
	if pol.MigrateMA && !v.cfg.AllowMigrationAgent {
		bad = append(bad, "migration agent allowed")
	}
	if pol.SMT && v.cfg.RequireNoSMT {
		bad = append(bad, "SMT allowed")
	}
	if pol.ABIMajor < v.minABI[0] || (pol.ABIMajor == v.minABI[0] && pol.ABIMinor < v.minABI[1]) {
		bad = append(bad, fmt.Sprintf("ABI %d.%d below %s", pol.ABIMajor, pol.ABIMinor, v.cfg.MinABI))
	}
	if len(bad) > 0 {
		return Result{}, fmt.Errorf("%w: %v", ErrPolicy, bad)
	}
	m := rep.GetMeasurement()
	if !v.cfg.AllowAnyMeasurement && !slices.ContainsFunc(v.measurements, func(w []byte) bool { return subtle.ConstantTimeCompare(w, m) == 1 }) {
		return Result{}, fmt.Errorf("%w: %x", ErrMeasurement, m)
	}
	vo := &validate.Options{
		GuestPolicy:     abi.SnpPolicy{Debug: pol.Debug, MigrateMA: pol.MigrateMA, SMT: pol.SMT, ABIMajor: 0, ABIMinor: 0},
		MinimumGuestSvn: v.cfg.MinGuestSVN,
		MinimumTCB: kds.TCBParts{BlSpl: v.cfg.MinTCB.Bootloader, TeeSpl: v.cfg.MinTCB.TEE,
			SnpSpl: v.cfg.MinTCB.SNP, UcodeSpl: v.cfg.MinTCB.Microcode},
	}
	// The report's other bits were judged above; validate checks the rest
	// (TCB against the minimum and against the VCEK, guest SVN, firmware
	// consistency, chip id against the VCEK).
	vo.GuestPolicy.SingleSocket, vo.GuestPolicy.CXLAllowed = false, pol.CXLAllowed
	if err := validate.SnpAttestation(att, vo); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrTCB, err)
	}
	tcb := kds.DecomposeTCBVersion(kds.TCBVersion(rep.GetReportedTcb()))
	return Result{
		Attested:    true,
		Measurement: hex.EncodeToString(m),
		ChipID:      hex.EncodeToString(rep.GetChipId()),
		HostData:    hex.EncodeToString(rep.GetHostData()),
		ReportedTCB: TCB{Bootloader: tcb.BlSpl, TEE: tcb.TeeSpl, SNP: tcb.SnpSpl, Microcode: tcb.UcodeSpl},
		GuestSVN:    rep.GetGuestSvn(),
		Policy: GuestPolicy{Debug: pol.Debug, MigrationAgent: pol.MigrateMA, SMT: pol.SMT, SingleSocket: pol.SingleSocket,
			ABI: fmt.Sprintf("%d.%d", pol.ABIMajor, pol.ABIMinor)},
		ProductLine: productLine(rep),
	}, nil
}

func productLine(rep *spb.Report) string {
	if fms := rep.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms)
	}
	return ""
}

// cachingGetter fetches from AMD's KDS over HTTPS, keeping every answer
// on disk by the hash of its URL: VCEK certificates and product chains
// never change for a URL, and KDS rate-limits.
type cachingGetter struct {
	dir    string
	client *http.Client
}

func (g *cachingGetter) Get(url string) ([]byte, error) {
	return g.GetContext(context.Background(), url)
}

func (g *cachingGetter) GetContext(ctx context.Context, url string) ([]byte, error) {
	h := sha256.Sum256([]byte(url))
	path := filepath.Join(g.dir, hex.EncodeToString(h[:16]))
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return b, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kds: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kds: %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("kds: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		_ = os.Rename(tmp, path) // a cache: failing to keep it only costs a fetch
	}
	return b, nil
}

var _ trust.ContextHTTPSGetter = (*cachingGetter)(nil)

// fetchNotes passes one Verify's fetches on and remembers the first that
// failed, so that Verify tells a KDS outage (ErrFetch) from a chain that
// does not verify (ErrChain).
type fetchNotes struct {
	inner trust.ContextHTTPSGetter
	mu    sync.Mutex
	err   error
}

func (f *fetchNotes) Get(url string) ([]byte, error) { return f.GetContext(context.Background(), url) }

func (f *fetchNotes) GetContext(ctx context.Context, url string) ([]byte, error) {
	b, err := f.inner.GetContext(ctx, url)
	if err != nil {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
	return b, err
}

// failure returns the first failed fetch, if any (nil for a nil f).
func (f *fetchNotes) failure() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

var _ trust.ContextHTTPSGetter = (*fetchNotes)(nil)

// Reason reports the sentinel reason of a Verify error, for metrics and
// logs: "no_attestation", "evidence", "chain", "signature",
// "report_data", "debug", "policy", "measurement", "tcb", "fetch", or
// "error".
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{{ErrNoAttestation, "no_attestation"}, {ErrEvidence, "evidence"}, {ErrChain, "chain"}, {ErrSignature, "signature"},
		{ErrReportData, "report_data"}, {ErrDebug, "debug"}, {ErrPolicy, "policy"}, {ErrMeasurement, "measurement"},
		{ErrTCB, "tcb"}, {ErrFetch, "fetch"}, {ErrUnavailable, "unavailable"}} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "error"
}
