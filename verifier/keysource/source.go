package keysource

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frostmint/frostmint/verifier/jwks"
)

// Source is an issuer's key set, kept fresh as the package documentation
// describes. It implements [jwks.KeySet] and is safe for concurrent use.
type Source struct {
	issuer      string
	jwksURL     string // "" means discovery
	static      bool   // read from a file: never refreshed
	refresh     time.Duration
	minInterval time.Duration
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger

	keys atomic.Pointer[keySet] // nil until a fetch succeeds

	mu        sync.Mutex
	attempted time.Time     // start of the last fetch; zero = never
	lastErr   error         // of the last finished fetch
	failures  int           // consecutive failed fetches
	inflight  chan struct{} // closed when the running fetch ends; nil = none
}

// keySet is an immutable set of keys.
type keySet struct {
	keys map[string]ed25519.PublicKey
	kids []string // in document order
}

func newKeySet(s *jwks.Static) *keySet {
	ks := &keySet{kids: s.KeyIDs()}
	ks.keys = make(map[string]ed25519.PublicKey, len(ks.kids))
	for _, kid := range ks.kids {
		pub, err := s.Key(kid)
		if err != nil { // cannot happen: kid is one of s's
			continue
		}
		ks.keys[kid] = slices.Clip(pub)
	}
	return ks
}

// New returns the Source of cfg, with defaults filled in.
//
// With cfg.File, New reads and parses the file ([jwks.Load]), and fails if
// it cannot, with the error of jwks.Load; the Source then never changes.
//
// Otherwise New makes the first fetch at once, bounded by ctx and
// [FetchTimeout], and returns the Source whether or not that fetch
// succeeds: the issuer may come up later. Until a fetch succeeds (one made
// by a lookup, at most once per MinInterval, or by [Source.Run]), every
// [Source.Key] fails with [ErrUnavailable]; [Source.Ready] and
// [Source.LastError] tell whether it did.
//
// New fails, with the error of [Config.Validate], if cfg is not usable.
func New(ctx context.Context, cfg Config) (*Source, error) {
	s, err := newSource(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.init(ctx, cfg.File); err != nil {
		return nil, err
	}
	return s, nil
}

// newSource returns the Source of cfg without fetching anything.
func newSource(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{
		issuer:      cfg.Issuer,
		jwksURL:     cfg.JWKSURL,
		static:      cfg.File != "",
		refresh:     cfg.Refresh,
		minInterval: cfg.MinInterval,
		client:      cfg.HTTPClient,
		now:         cfg.Now,
		log:         cfg.Log,
	}
	if s.refresh == 0 {
		s.refresh = DefaultRefresh
	}
	if s.minInterval == 0 {
		s.minInterval = DefaultMinInterval
	}
	if s.client == nil {
		s.client = defaultClient()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// init loads file, or makes the first fetch.
func (s *Source) init(ctx context.Context, file string) error {
	if file == "" {
		s.update(ctx, false, "initial")
		return nil
	}
	set, err := jwks.Load(ctx, file, nil)
	if err != nil {
		return fmt.Errorf("keysource: issuer %s: %w", clip(s.issuer), err)
	}
	s.keys.Store(newKeySet(set))
	s.log.Info("keysource: keys loaded", "issuer", s.issuer, "file", file, "kids", set.KeyIDs())
	return nil
}

// Issuer returns the issuer of the keys: [Config.Issuer].
func (s *Source) Issuer() string { return s.issuer }

// Key returns the issuer's public key of the given kid.
//
// A kid of the current set is answered without I/O, lock or allocation.
// The key returned is shared: the caller must not modify it.
//
// For any other kid, if MinInterval has passed since the start of the last
// fetch, Key fetches the issuer's keys again and looks again; concurrent
// lookups, and lookups made while [Source.Run] fetches, wait for the fetch
// in flight instead of starting another. A source read from a file never
// fetches.
//
// Key fails with an error wrapping [ErrUnavailable] (and the error of the
// last fetch) if no fetch has succeeded yet, and with one wrapping
// [jwks.ErrUnknownKey] if the set has no such kid.
func (s *Source) Key(kid string) (ed25519.PublicKey, error) {
	if ks := s.keys.Load(); ks != nil {
		if pub, ok := ks.keys[kid]; ok {
			return pub, nil
		}
	}
	return s.miss(kid)
}

// miss is [Source.Key] for a kid that the current set lacks.
func (s *Source) miss(kid string) (ed25519.PublicKey, error) {
	if !s.static {
		s.update(context.Background(), true, "unknown kid")
	}
	ks := s.keys.Load()
	if ks == nil {
		return nil, s.unavailable()
	}
	if pub, ok := ks.keys[kid]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("keysource: %w: issuer %s has no kid %s", jwks.ErrUnknownKey, clip(s.issuer), clip(kid))
}

func (s *Source) unavailable() error {
	err := s.LastError()
	if err == nil { // a fetch is yet to finish
		return fmt.Errorf("keysource: %w: issuer %s: no key fetched yet", ErrUnavailable, clip(s.issuer))
	}
	return fmt.Errorf("keysource: %w: issuer %s: %w", ErrUnavailable, clip(s.issuer), err)
}

// Ready reports whether the source has keys: whether a fetch ever
// succeeded, or its file was read. A source that is ready stays ready.
func (s *Source) Ready() bool { return s.keys.Load() != nil }

// LastError returns the error of the last fetch, nil if it succeeded, if
// none finished yet or if the source was read from a file. Whatever it
// returns, a ready source keeps answering with the keys of its last
// successful fetch.
func (s *Source) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Run refreshes the keys every Refresh (less up to a tenth, at random, so
// that verifiers started together do not fetch together) until ctx ends,
// and returns ctx.Err(). After a failed fetch it retries sooner: after
// MinInterval, then twice that, and so on up to Refresh. A failed fetch
// keeps the last good keys. A source read from a file has nothing to
// refresh, and Run only waits for ctx. Run is meant to be called once per
// Source; every call runs its own loop.
func (s *Source) Run(ctx context.Context) error {
	if s.static {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTimer(s.nextDelay())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		s.update(ctx, false, "scheduled")
		t.Reset(s.nextDelay())
	}
}

// nextDelay returns the delay before the next scheduled fetch, with jitter.
func (s *Source) nextDelay() time.Duration {
	s.mu.Lock()
	failures := s.failures
	s.mu.Unlock()
	d := backoff(failures, s.minInterval, s.refresh)
	return d - rand.N(d/10+1)
}

// backoff returns the delay before the next scheduled fetch after failures
// consecutive failed fetches, before jitter: refresh after a success,
// minInterval after one failure, doubling after each further failure, never
// over refresh.
func backoff(failures int, minInterval, refresh time.Duration) time.Duration {
	if failures == 0 {
		return refresh
	}
	d := minInterval
	for i := 1; i < failures && d < refresh; i++ {
		d *= 2
	}
	return min(d, refresh)
}

// update fetches the keys, unless a fetch is in flight, in which case it
// waits for that one (or for ctx), or, if rateLimited, unless MinInterval
// has not passed since the start of the last fetch. A successful fetch
// replaces the key set; a failed one keeps it.
func (s *Source) update(ctx context.Context, rateLimited bool, reason string) {
	s.mu.Lock()
	if ch := s.inflight; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	now := s.now()
	if rateLimited && !s.attempted.IsZero() {
		if since := now.Sub(s.attempted); since >= 0 && since < s.minInterval {
			s.mu.Unlock()
			return
		}
	}
	ch := make(chan struct{})
	s.inflight, s.attempted = ch, now
	s.mu.Unlock()

	ks, err := s.fetch(ctx)

	s.mu.Lock()
	old := s.keys.Load()
	if err == nil {
		s.keys.Store(ks)
		s.failures = 0
	} else {
		s.failures++
	}
	s.lastErr = err
	s.inflight = nil
	close(ch)
	s.mu.Unlock()

	switch {
	case err != nil:
		s.log.Warn("keysource: fetching keys failed", "issuer", s.issuer, "reason", reason, "keeping_old_keys", old != nil, "err", err)
	case old == nil || !slices.Equal(old.kids, ks.kids):
		s.log.Info("keysource: keys updated", "issuer", s.issuer, "reason", reason, "kids", ks.kids)
	}
}

// fetch fetches and parses the issuer's keys, through discovery unless a
// JWKS URL is set.
func (s *Source) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	u := s.jwksURL
	if u == "" {
		var err error
		if u, err = discover(ctx, s.client, s.issuer); err != nil {
			return nil, fmt.Errorf("keysource: issuer %s: %w", clip(s.issuer), err)
		}
	}
	set, err := jwks.Load(ctx, u, s.client)
	if err != nil {
		return nil, fmt.Errorf("keysource: issuer %s: %w", clip(s.issuer), err)
	}
	return newKeySet(set), nil
}
