package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
)

// MeasurementSize is the size of an SEV-SNP launch measurement (SHA-384).
const MeasurementSize = abi.MeasurementSize

// Config says which attestations a Verifier accepts. The zero value is not
// usable: start from DefaultConfig. Unknown JSON keys are an error.
type Config struct {
	// Roots are the trusted AMD roots, one entry per product line; empty
	// means the AMD roots built into go-sev-guest (Milan, Genoa, Turin).
	Roots []Root `json:"roots,omitempty"`
	// KDS, when set, fetches certificates the evidence lacks (the VCEK)
	// from AMD's Key Distribution Service, caching them on disk. Off by
	// default: the guest then has to supply them (extended report).
	KDS *KDSConfig `json:"kds,omitempty"`
	// Measurements is the allow-list of launch measurements (hex, 48
	// bytes each). Required unless AllowAnyMeasurement.
	Measurements []string `json:"measurements,omitempty"`
	// AllowAnyMeasurement accepts any launch measurement (for a policy
	// that decides on the measurement itself, or for a first look).
	AllowAnyMeasurement bool `json:"allow_any_measurement,omitempty"`
	// MinTCB is the minimum reported TCB (security patch levels).
	MinTCB TCB `json:"min_tcb"`
	// MinGuestSVN is the minimum guest security version number.
	MinGuestSVN uint32 `json:"min_guest_svn,omitempty"`
	// AllowDebug accepts guests the host may debug (read): test setups
	// only. Off by default.
	AllowDebug bool `json:"allow_debug,omitempty"`
	// AllowMigrationAgent accepts guests that allow a migration agent.
	AllowMigrationAgent bool `json:"allow_migration_agent,omitempty"`
	// RequireNoSMT refuses guests that allow simultaneous multithreading.
	RequireNoSMT bool `json:"require_no_smt,omitempty"`
	// MinABI is the minimum guest policy ABI version, "major.minor".
	MinABI string `json:"min_abi,omitempty"`
}

// Root is one product line's ARK and ASK.
type Root struct {
	// ProductLine is "Milan", "Genoa" or "Turin".
	ProductLine string `json:"product_line"`
	// File is a PEM file holding the ASK then the ARK, as KDS serves
	// them at /vcek/v1/<product>/cert_chain.
	File string `json:"file"`
}

// KDSConfig configures fetching from AMD's Key Distribution Service.
type KDSConfig struct {
	// CacheDir keeps fetched certificates (required): VCEKs and product
	// chains do not change, and KDS rate-limits.
	CacheDir string `json:"cache_dir"`
	// Timeout bounds one fetch (default 10s).
	Timeout Duration `json:"timeout,omitempty"`
}

// TCB is a minimum TCB: security patch levels of the platform's parts.
type TCB struct {
	Bootloader uint8 `json:"bootloader,omitempty"`
	TEE        uint8 `json:"tee,omitempty"`
	SNP        uint8 `json:"snp,omitempty"`
	Microcode  uint8 `json:"microcode,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration time.Duration

// UnmarshalJSON parses "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10s\": %w", err)
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

// DefaultConfig returns a Config with the defaults: AMD's built-in roots,
// no fetching, no debuggable guests. Measurements must still be set.
func DefaultConfig() Config { return Config{} }

// UnmarshalJSON decodes strictly: unknown keys are an error, also when
// the Config is part of a larger document.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	p := plain(*c)
	if err := d.Decode(&p); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	*c = Config(p)
	return nil
}

// UnmarshalJSON decodes strictly.
func (k *KDSConfig) UnmarshalJSON(b []byte) error {
	type plain KDSConfig
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	p := plain(*k)
	if err := d.Decode(&p); err != nil {
		return fmt.Errorf("kds: %w", err)
	}
	*k = KDSConfig(p)
	return nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for i, r := range c.Roots {
		switch r.ProductLine {
		case "Milan", "Genoa", "Turin":
		default:
			errs = append(errs, fmt.Errorf("roots[%d]: product_line must be Milan, Genoa or Turin, got %q", i, r.ProductLine))
		}
		if r.File == "" {
			errs = append(errs, fmt.Errorf("roots[%d]: file is required", i))
		}
	}
	if c.KDS != nil {
		if c.KDS.CacheDir == "" {
			errs = append(errs, errors.New("kds.cache_dir is required"))
		}
		if c.KDS.Timeout < 0 || time.Duration(c.KDS.Timeout) > 5*time.Minute {
			errs = append(errs, errors.New("kds.timeout must be in [0, 5m] (0: 10s)"))
		}
	}
	if len(c.Measurements) == 0 && !c.AllowAnyMeasurement {
		errs = append(errs, errors.New("measurements: at least one allowed launch measurement is required (or allow_any_measurement)"))
	}
	if len(c.Measurements) > 0 && c.AllowAnyMeasurement {
		errs = append(errs, errors.New("measurements and allow_any_measurement are exclusive"))
	}
	for i, m := range c.Measurements {
		if b, err := hex.DecodeString(m); err != nil || len(b) != MeasurementSize {
			errs = append(errs, fmt.Errorf("measurements[%d]: must be %d bytes in hex", i, MeasurementSize))
		}
	}
	if c.MinABI != "" {
		if _, _, err := parseABI(c.MinABI); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func parseABI(s string) (major, minor uint8, err error) {
	a, b, ok := strings.Cut(s, ".")
	ma, err1 := strconv.ParseUint(a, 10, 8)
	mi, err2 := strconv.ParseUint(b, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("min_abi must be \"major.minor\", got %q", s)
	}
	return uint8(ma), uint8(mi), nil
}
