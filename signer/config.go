package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/frostmint/frostmint/policy/limit"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

// UnmarshalJSON parses "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config configures a signer daemon.
type Config struct {
	// ID is this signer's FROST participant identifier (1..n).
	ID uint16 `json:"id"`
	// Listen is the gRPC address, e.g. "127.0.0.1:7001". A guardian (see
	// Guardian) dials out instead and needs none.
	Listen string `json:"listen"`
	// TLS names the signer's certificate, key and the cluster CA.
	TLS mtls.Files `json:"tls"`
	// Coordinators lists the SPIFFE IDs allowed to call this signer.
	Coordinators []string `json:"coordinators"`
	// Issuer is the iss every token must carry.
	Issuer string `json:"issuer"`
	// KeysDir holds this signer's key epochs: one directory per kid with
	// the group and the sealed share (package keydir). New epochs (from a
	// ceremony) are picked up and retired ones dropped while running.
	KeysDir string `json:"keys_dir"`
	// Keystore is the URI of the backend that seals the shares:
	// "pkcs11:…", "piv:…", or "file:?passphrase=…" (dev only; see
	// keystore.Open).
	Keystore string `json:"keystore"`
	// Dev allows development-only settings (the file keystore).
	Dev bool `json:"dev"`
	// Guardian, when set, makes this signer a guardian: it dials out to
	// the coordinator and can ask its engineer to approve tokens.
	Guardian *GuardianConfig `json:"guardian,omitempty"`
	// Approvers are the SPIFFE IDs of the guardians whose approvals this
	// signer accepts for tokens the policy says need approval. Without
	// any, such tokens are refused.
	Approvers []string `json:"approvers"`
	// NonceTTL is how long an unused nonce lives (default 10m).
	NonceTTL Duration `json:"nonce_ttl"`
	// MaxNonces bounds outstanding nonces (default 4096).
	MaxNonces int `json:"max_nonces"`
	// ClockSkew is how far a token's iat may be from this signer's clock
	// (default 60s).
	ClockSkew Duration `json:"clock_skew"`
	// Callers says which caller evidence this signer trusts.
	Callers Callers `json:"callers"`
	// Policy is where the policy comes from; it must be the coordinator's
	// (same hash). Empty means the embedded default.
	Policy PolicySource `json:"policy"`
	// Limits are this signer's own (coarser) abuse limits.
	Limits limit.Config `json:"limits"`
	// AuditLog is this signer's append-only audit log.
	AuditLog string `json:"audit_log"`
	// MaxEvidence bounds the remembered evidence (default 1000000).
	MaxEvidence int `json:"max_evidence"`
	// MetricsListen, when set, serves /metrics, /healthz and /readyz over
	// plain HTTP on this address (keep it on loopback or a monitoring
	// network). Off by default.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// Tracing, when set, records OpenTelemetry traces of Sign requests,
	// continuing the coordinator's trace; off by default.
	Tracing *telemetry.TracingConfig `json:"tracing,omitempty"`
	// Attestation says where the signer's SEV-SNP attestation comes from
	// (default "auto": the guest device when there is one).
	Attestation AttestationConfig `json:"attestation"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		NonceTTL:    Duration(10 * time.Minute),
		MaxNonces:   4096,
		ClockSkew:   Duration(60 * time.Second),
		Limits:      limit.Config{PerIdentity: limit.Rate{PerSecond: 20, Burst: 40}},
		MaxEvidence: 1000000,
		Attestation: AttestationConfig{Provider: "auto"},
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("id is required (1..n)"))
	}
	if c.Listen == "" && c.Guardian == nil {
		errs = append(errs, errors.New("listen is required (or guardian, to dial out)"))
	}
	if c.Guardian != nil {
		if err := c.Guardian.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range c.Approvers {
		if err := mtls.CheckSPIFFE(id); err != nil {
			errs = append(errs, fmt.Errorf("approvers: %w", err))
		}
	}
	if err := c.TLS.Validate("signer"); err != nil {
		errs = append(errs, err)
	}
	if len(c.Coordinators) == 0 {
		errs = append(errs, errors.New("coordinators: at least one allowed coordinator identity is required"))
	}
	for _, id := range c.Coordinators {
		if err := mtls.CheckSPIFFE(id); err != nil {
			errs = append(errs, fmt.Errorf("coordinators: %w", err))
		}
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if c.KeysDir == "" {
		errs = append(errs, errors.New("keys_dir is required"))
	}
	switch {
	case c.Keystore == "":
		errs = append(errs, errors.New("keystore is required (pkcs11:…, piv:…, or file:?passphrase=… in dev mode)"))
	case strings.HasPrefix(c.Keystore, "file:") && !c.Dev:
		errs = append(errs, errors.New("keystore: the file keystore is for development only (set dev, or use pkcs11: or piv:)"))
	}
	if c.NonceTTL <= 0 {
		errs = append(errs, errors.New("nonce_ttl must be positive"))
	}
	if c.MaxNonces <= 0 {
		errs = append(errs, errors.New("max_nonces must be positive"))
	}
	if c.ClockSkew <= 0 || time.Duration(c.ClockSkew) > 5*time.Minute {
		errs = append(errs, errors.New("clock_skew must be in (0, 5m]"))
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
		errs = append(errs, errors.New("audit_log is required: a signer never signs unaudited"))
	}
	if c.MaxEvidence <= 0 {
		errs = append(errs, errors.New("max_evidence must be positive"))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen must be host:port: %w", err))
		}
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

// RunConfigFile loads, validates and runs a signer from a config file
// until ctx is done.
func RunConfigFile(ctx context.Context, path string, log *slog.Logger) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
