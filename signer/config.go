package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/frostmint/frostmint/policy/limit"
	"github.com/frostmint/frostmint/verifier/mtls"
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
	// Listen is the gRPC address, e.g. "127.0.0.1:7001".
	Listen string `json:"listen"`
	// TLS names the signer's certificate, key and the cluster CA.
	TLS mtls.Files `json:"tls"`
	// Coordinators lists the SPIFFE IDs allowed to call this signer.
	Coordinators []string `json:"coordinators"`
	// Issuer is the iss every token must carry.
	Issuer string `json:"issuer"`
	// Group is the public group file (threshold, group key, public shares).
	Group string `json:"group"`
	// Share is the sealed key share file.
	Share string `json:"share"`
	// Passphrase names where the sealing passphrase comes from:
	// "env:NAME" or "file:PATH". Never a literal.
	Passphrase string `json:"passphrase"`
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
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		NonceTTL:    Duration(10 * time.Minute),
		MaxNonces:   4096,
		ClockSkew:   Duration(60 * time.Second),
		Limits:      limit.Config{PerIdentity: limit.Rate{PerSecond: 20, Burst: 40}},
		MaxEvidence: 1000000,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("id is required (1..n)"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen is required"))
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
	if c.Group == "" {
		errs = append(errs, errors.New("group is required"))
	}
	if c.Share == "" {
		errs = append(errs, errors.New("share is required"))
	}
	if c.Passphrase == "" {
		errs = append(errs, errors.New("passphrase is required (env:NAME or file:PATH)"))
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
