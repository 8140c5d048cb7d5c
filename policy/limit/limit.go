// Package limit holds the abuse limits of minting: token buckets per caller
// identity and per (identity, scope), so one caller — or one stolen piece of
// evidence, while it lasts — cannot flood the signers or mint tokens by the
// thousand. The coordinator applies them first, with clear errors; each
// signer applies its own, coarser ones, so a compromised coordinator cannot
// lift them.
package limit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrLimited means a limit is exhausted; the error is a *Error.
var ErrLimited = errors.New("limit: rate limit exceeded")

// Error says which limit is exhausted and when to retry.
type Error struct {
	Kind       string // "identity" or "scope"
	Key        string // the identity, or "identity scope"
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("rate limit for %s %q exceeded; retry in %s", e.Kind, e.Key, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLimited) true.
func (e *Error) Is(target error) bool { return target == ErrLimited }

// Rate is a token bucket: PerSecond sustained, Burst at once. A zero Rate
// means no limit.
type Rate struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

func (r Rate) off() bool { return r.PerSecond == 0 && r.Burst == 0 }

// Config sets the limits.
type Config struct {
	PerIdentity Rate `json:"per_identity"`
	PerScope    Rate `json:"per_scope"`
	// MaxKeys bounds the buckets kept (default 100000); the longest idle
	// (and so, full) bucket is dropped first.
	MaxKeys int `json:"max_keys"`
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for name, r := range map[string]Rate{"per_identity": c.PerIdentity, "per_scope": c.PerScope} {
		if r.PerSecond < 0 || r.Burst < 0 || (!r.off() && (r.PerSecond == 0 || r.Burst == 0)) {
			errs = append(errs, fmt.Errorf("limits.%s: per_second and burst must both be positive (or both 0 for no limit)", name))
		}
	}
	if c.MaxKeys < 0 {
		errs = append(errs, errors.New("limits.max_keys must not be negative"))
	}
	return errors.Join(errs...)
}

type bucket struct {
	l    *rate.Limiter
	used time.Time
}

// Limiter applies a Config. It is safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns a Limiter; now may be nil for time.Now.
func New(cfg Config, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 100000
	}
	return &Limiter{cfg: cfg, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token from the identity's bucket and from each
// (identity, scope) bucket, all or nothing. It fails with a *Error when one
// is empty; then no token is taken from any bucket.
func (l *Limiter) Allow(identity string, scopes []string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	type take struct {
		kind, key string
		r         *rate.Reservation
	}
	var taken []take
	cancel := func() {
		for _, t := range taken {
			t.r.CancelAt(now)
		}
	}
	try := func(kind, key string, r Rate) error {
		if r.off() {
			return nil
		}
		b := l.bucket(kind+"\x00"+key, r, now)
		res := b.l.ReserveN(now, 1)
		if !res.OK() {
			return &Error{Kind: kind, Key: key, RetryAfter: time.Second}
		}
		if d := res.DelayFrom(now); d > 0 {
			res.CancelAt(now)
			return &Error{Kind: kind, Key: key, RetryAfter: d}
		}
		taken = append(taken, take{kind, key, res})
		return nil
	}
	if err := try("identity", identity, l.cfg.PerIdentity); err != nil {
		return err
	}
	for _, s := range scopes {
		if err := try("scope", identity+" "+s, l.cfg.PerScope); err != nil {
			cancel()
			return err
		}
	}
	return nil
}

func (l *Limiter) bucket(key string, r Rate, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxKeys {
			l.evict()
		}
		b = &bucket{l: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
		l.buckets[key] = b
	}
	b.used = now
	return b
}

// evict drops the longest-idle tenth of the buckets (at least one).
func (l *Limiter) evict() {
	n := len(l.buckets)/10 + 1
	for ; n > 0; n-- {
		var oldest string
		var t time.Time
		for k, b := range l.buckets {
			if oldest == "" || b.used.Before(t) {
				oldest, t = k, b.used
			}
		}
		delete(l.buckets, oldest)
	}
}
