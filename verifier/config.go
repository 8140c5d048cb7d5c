package verifier

import (
	"errors"
	"fmt"
	"time"

	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

const (
	// DefaultLeeway is the clock skew tolerated when a [Config] sets none.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest clock skew a [Config] may tolerate.
	MaxLeeway = 5 * time.Minute
)

// ErrConfig means a [Config] is not usable. Every error of
// [Config.Validate] and [New] wraps it.
var ErrConfig = errors.New("verifier: invalid config")

// Issuer is an issuer the verifier trusts and the keys its tokens are
// verified with. A token is only ever verified with the keys of the issuer
// its iss claim names.
type Issuer struct {
	// Issuer is the exact iss claim of the issuer's tokens.
	Issuer string
	// Keys holds the issuer's public keys, by kid.
	Keys jwks.KeySet
}

// Config configures a [Verifier].
type Config struct {
	// Issuers are the trusted issuers, at least one, with distinct names.
	Issuers []Issuer
	// Audience is the exact aud claim a token must carry, unless the
	// [Requirements] of a Check name another. Required.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// [DefaultLeeway]; it may not be negative or exceed [MaxLeeway].
	Leeway time.Duration
	// MaxTTL caps exp - iat. Zero means [token.MaxTTL]; it may only lower
	// that cap, and may not be negative.
	MaxTTL time.Duration
	// Replay records the tokens accepted, to refuse them a second time. Nil
	// means a [MemoryReplayCache] of [DefaultReplayCacheSize] entries on
	// the clock Now. Its clock must not run ahead of Now.
	Replay ReplayCache
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem of c at once, as an errors.Join of errors
// that each wrap [ErrConfig]; nil if c is usable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if len(c.Issuers) == 0 {
		bad("no issuer")
	}
	seen := make(map[string]bool, len(c.Issuers))
	for i, iss := range c.Issuers {
		if iss.Issuer == "" {
			bad("issuer %d: empty name", i)
		} else if seen[iss.Issuer] {
			bad("issuer %d: duplicate issuer %q", i, iss.Issuer)
		}
		seen[iss.Issuer] = true
		if iss.Keys == nil {
			bad("issuer %d (%q): no key set", i, iss.Issuer)
		}
	}
	if c.Audience == "" {
		bad("no audience")
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		bad("leeway %s not in [0, %s]", c.Leeway, MaxLeeway)
	}
	if c.MaxTTL < 0 || c.MaxTTL > token.MaxTTL {
		bad("max TTL %s not in [0, %s]", c.MaxTTL, token.MaxTTL)
	}
	return errors.Join(errs...)
}
