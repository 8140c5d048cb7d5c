package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/frostmint/frostmint/policy/limit"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/token"
)

// Duration is a time.Duration written as a Go duration string.
type Duration = signer.Duration

// Endpoint is one signer as the coordinator sees it.
type Endpoint struct {
	// ID is the signer's FROST participant identifier.
	ID uint16 `json:"id"`
	// Addr is host:port. Empty for a guardian.
	Addr string `json:"addr"`
	// Identity is the SPIFFE ID the signer's certificate must carry.
	Identity string `json:"identity"`
	// Guardian marks a signer that dials in (GuardianService) instead of
	// being dialled: a workstation behind NAT. It takes part once
	// connected, and can ask its engineer to approve tokens.
	Guardian bool `json:"guardian"`
}

// Config configures a coordinator.
type Config struct {
	// Listen is the gRPC Mint API address.
	Listen string `json:"listen"`
	// HTTPListen serves /.well-known/jwks.json and openid-configuration.
	HTTPListen string `json:"http_listen"`
	// Issuer is the iss of minted tokens; the discovery document is served
	// under it.
	Issuer string `json:"issuer"`
	// TLS: the coordinator's certificate (server for callers, client for
	// signers) and the CA that callers' and signers' certificates chain to.
	TLS mtls.Files `json:"tls"`
	// HTTPTLS, when set, serves the discovery endpoints over HTTPS.
	HTTPTLS *mtls.Files `json:"http_tls,omitempty"`
	// KeysDir holds the key epochs' public groups (package keydir) and the
	// active marker; new epochs and a change of the active one are picked
	// up while running. Retired epochs' keys stay in the JWKS until their
	// last token has expired.
	KeysDir string `json:"keys_dir"`
	// CeremonyAdmins are the SPIFFE IDs allowed to run a key ceremony
	// (frostmint ceremony) through this coordinator. None: nobody can.
	CeremonyAdmins []string `json:"ceremony_admins"`
	// ApprovalTimeout bounds the wait for a guardian's engineer (2m30s;
	// keep it above the guardians' own approval_timeout).
	ApprovalTimeout Duration `json:"approval_timeout"`
	// Signers lists every signer.
	Signers []Endpoint `json:"signers"`
	// Policy is where the policy comes from (files, or a signed bundle),
	// hot-reloaded; every signer must load the same. Empty means the
	// embedded default policy.
	Policy signer.PolicySource `json:"policy"`
	// DefaultTTL is the lifetime of a token when none is asked (5m).
	DefaultTTL Duration `json:"default_ttl"`
	// MaxTTL caps lifetimes; it may only lower the hard cap of 15m.
	MaxTTL Duration `json:"max_ttl"`
	// PoolSize is the number of commitments kept per signer (32).
	PoolSize int `json:"pool_size"`
	// CommitmentMaxAge drops pooled commitments older than this (4m); keep
	// it well below the signers' nonce_ttl.
	CommitmentMaxAge Duration `json:"commitment_max_age"`
	// SignTimeout bounds one signer's answer (2s).
	SignTimeout Duration `json:"sign_timeout"`
	// HedgeAfter is how long a mint waits for a quorum's slowest member
	// before it also asks another quorum that leaves the silent signers
	// out (with commitments of its own); the first to finish makes the
	// token, and a signer left behind is marked unhealthy. 0 turns hedging
	// off: a silent signer then costs a mint sign_timeout.
	HedgeAfter Duration `json:"hedge_after"`
	// Callers says which caller evidence is trusted; the signers carry the
	// same section and verify the evidence again.
	Callers signer.Callers `json:"callers"`
	// Limits are the per-identity and per-scope abuse limits.
	Limits limit.Config `json:"limits"`
	// AuditLog is the coordinator's append-only audit log.
	AuditLog string `json:"audit_log"`
	// MaxEvidence bounds the remembered evidence (default 1000000).
	MaxEvidence int `json:"max_evidence"`
	// Tracing, when set, records OpenTelemetry traces of mints (and sends
	// the trace context on to the signers); off by default.
	Tracing *telemetry.TracingConfig `json:"tracing,omitempty"`
	// Attestation, when set, checks every signer's SEV-SNP attestation
	// when it connects and whenever its TLS key, process or the policy
	// changes, and asks the policy whether to admit it (see
	// AttestationConfig). Off by default.
	Attestation *AttestationConfig `json:"attestation,omitempty"`
}

// DefaultHedgeAfter is the default hedge_after: well above a healthy
// quorum's answer (its checks and the fsync of its audit record; measured
// on loopback under load, p99 < 25 ms, slowest < 50 ms), so that hedges
// stay rare, and well below sign_timeout.
const DefaultHedgeAfter = 250 * time.Millisecond

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		DefaultTTL:       Duration(token.DefaultTTL),
		MaxTTL:           Duration(token.MaxTTL),
		PoolSize:         32,
		CommitmentMaxAge: Duration(4 * time.Minute),
		SignTimeout:      Duration(2 * time.Second),
		HedgeAfter:       Duration(DefaultHedgeAfter),
		ApprovalTimeout:  Duration(150 * time.Second),
		Limits: limit.Config{
			PerIdentity: limit.Rate{PerSecond: 10, Burst: 20},
			PerScope:    limit.Rate{PerSecond: 5, Burst: 10},
		},
		MaxEvidence: 1000000,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen is required"))
	}
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("issuer must be an http(s) URL, got %q", c.Issuer))
	}
	if err := c.TLS.Validate("coordinator"); err != nil {
		errs = append(errs, err)
	}
	if c.KeysDir == "" {
		errs = append(errs, errors.New("keys_dir is required"))
	}
	for _, id := range c.CeremonyAdmins {
		if err := mtls.CheckSPIFFE(id); err != nil {
			errs = append(errs, fmt.Errorf("ceremony_admins: %w", err))
		}
	}
	if c.ApprovalTimeout <= 0 || time.Duration(c.ApprovalTimeout) > 30*time.Minute {
		errs = append(errs, errors.New("approval_timeout must be in (0, 30m]"))
	}
	if len(c.Signers) == 0 {
		errs = append(errs, errors.New("signers: at least one signer is required"))
	}
	seen := map[uint16]bool{}
	for i, s := range c.Signers {
		if s.ID == 0 || seen[s.ID] {
			errs = append(errs, fmt.Errorf("signers[%d]: id must be unique and non-zero", i))
		}
		seen[s.ID] = true
		switch {
		case s.Addr == "" && !s.Guardian:
			errs = append(errs, fmt.Errorf("signers[%d]: addr is required (or guardian: true for a signer that dials in)", i))
		case s.Addr != "" && s.Guardian:
			errs = append(errs, fmt.Errorf("signers[%d]: a guardian dials in and has no addr", i))
		}
		if err := mtls.CheckSPIFFE(s.Identity); err != nil {
			errs = append(errs, fmt.Errorf("signers[%d]: identity: %w", i, err))
		}
	}
	if c.MaxTTL <= 0 || time.Duration(c.MaxTTL) > token.MaxTTL {
		errs = append(errs, fmt.Errorf("max_ttl must be in (0, %s]", token.MaxTTL))
	}
	if c.DefaultTTL <= 0 || c.DefaultTTL > c.MaxTTL {
		errs = append(errs, errors.New("default_ttl must be in (0, max_ttl]"))
	}
	if c.PoolSize < 1 || c.PoolSize > 1024 {
		errs = append(errs, errors.New("pool_size must be 1..1024"))
	}
	if c.CommitmentMaxAge <= 0 {
		errs = append(errs, errors.New("commitment_max_age must be positive"))
	}
	if c.SignTimeout <= 0 {
		errs = append(errs, errors.New("sign_timeout must be positive"))
	}
	if c.HedgeAfter < 0 || (c.SignTimeout > 0 && c.HedgeAfter >= c.SignTimeout) {
		errs = append(errs, fmt.Errorf("hedge_after (%s) must be 0 (off) or below sign_timeout (%s)", time.Duration(c.HedgeAfter), time.Duration(c.SignTimeout)))
	}
	if err := c.Callers.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AuditLog == "" {
		errs = append(errs, errors.New("audit_log is required: a mint is never unaudited"))
	}
	if c.MaxEvidence <= 0 {
		errs = append(errs, errors.New("max_evidence must be positive"))
	}
	if err := c.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Attestation.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LoadConfig reads a JSON config over the defaults; unknown keys are an
// error. It does not validate.
func LoadConfig(path string) (Config, error) {
	c := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	// Nothing may follow the config: it would be silently ignored.
	if len(bytes.Trim(b[d.InputOffset():], " \t\r\n")) > 0 {
		return c, fmt.Errorf("%s: trailing data after the JSON object", path)
	}
	return c, nil
}

// RunConfigFile loads, validates and runs a coordinator from a config
// file until ctx is done.
func RunConfigFile(ctx context.Context, path string, log *slog.Logger) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	s, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
