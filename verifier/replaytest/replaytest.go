// Package replaytest is the conformance suite of verifier.ReplayCache. Every
// implementation runs it, so that a verifier can rely on the same contract
// whichever store backs it: the first Seen of a jti reports false, every
// later one until its expiry reports true, distinct jtis are independent,
// expiry releases a jti, and of concurrent calls with one jti exactly one
// reports false.
package replaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
)

// Clock is the controllable clock Run hands to the caches it makes. It only
// moves forward, and only when the suite moves it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Run runs the suite against caches made by newCache, one per subtest, each
// on a fresh clock whose Now is passed as now. The clock starts at the real
// time, and whenever the suite relies on an expiry having passed it both
// advances the clock past it and waits for the real clock to pass it, so a
// cache that keeps time itself (a Redis server, say) may ignore now. Keys
// are random per run, so a cache that outlives the test (a shared server)
// needs no cleanup between runs.
func Run(t *testing.T, newCache func(t *testing.T, now func() time.Time) verifier.ReplayCache) {
	t.Helper()
	type env struct {
		cache verifier.ReplayCache
		clock *Clock
		ctx   context.Context
		id    func(string) string
	}
	setup := func(t *testing.T) env {
		clock := NewClock(time.Now())
		prefix := randomID(t)
		return env{
			cache: newCache(t, clock.Now),
			clock: clock,
			ctx:   t.Context(),
			id:    func(s string) string { return prefix + ":" + s },
		}
	}
	seen := func(t *testing.T, e env, jti string, expiry time.Time, want bool) {
		t.Helper()
		got, err := e.cache.Seen(e.ctx, jti, expiry)
		if err != nil {
			t.Fatalf("Seen(%q) = %v", jti, err)
		}
		if got != want {
			t.Fatalf("Seen(%q) = %v, want %v", jti, got, want)
		}
	}

	t.Run("FirstSeenFalse", func(t *testing.T) {
		e := setup(t)
		seen(t, e, e.id("a"), e.clock.Now().Add(time.Hour), false)
	})

	t.Run("SecondSeenTrue", func(t *testing.T) {
		e := setup(t)
		exp := e.clock.Now().Add(time.Hour)
		seen(t, e, e.id("a"), exp, false)
		seen(t, e, e.id("a"), exp, true)
		seen(t, e, e.id("a"), exp, true)
		// A later call with another expiry is still a replay.
		seen(t, e, e.id("a"), exp.Add(time.Hour), true)
	})

	t.Run("DistinctIndependent", func(t *testing.T) {
		e := setup(t)
		exp := e.clock.Now().Add(time.Hour)
		// Keys that share prefixes, differ by one byte, or hold bytes that
		// are special somewhere (separators, NUL, non-ASCII) are distinct.
		ids := []string{"a", "b", "ab", "a:b", "a:c", "a\x00b", "a\x00c", "é", strings.Repeat("x", 8<<10)}
		for _, id := range ids {
			seen(t, e, e.id(id), exp, false)
		}
		for _, id := range ids {
			seen(t, e, e.id(id), exp, true)
		}
	})

	t.Run("LiveUntilExpiry", func(t *testing.T) {
		e := setup(t)
		exp := e.clock.Now().Add(time.Hour)
		seen(t, e, e.id("a"), exp, false)
		e.clock.Advance(59 * time.Minute)
		seen(t, e, e.id("a"), exp, true)
	})

	t.Run("ExpiryReleases", func(t *testing.T) {
		e := setup(t)
		const ttl = 200 * time.Millisecond
		exp := e.clock.Now().Add(ttl)
		seen(t, e, e.id("a"), exp, false)
		seen(t, e, e.id("b"), exp, false)
		e.clock.Advance(time.Hour)
		waitUntil(exp.Add(100 * time.Millisecond))
		seen(t, e, e.id("a"), e.clock.Now().Add(time.Hour), false)
		seen(t, e, e.id("a"), e.clock.Now().Add(time.Hour), true)
		seen(t, e, e.id("b"), e.clock.Now().Add(time.Hour), false)
	})

	t.Run("ConcurrentSameID", func(t *testing.T) {
		e := setup(t)
		const n = 64
		exp := e.clock.Now().Add(time.Hour)
		results := make([]bool, n)
		errs := make([]error, n)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range n {
			wg.Go(func() {
				start.Wait()
				results[i], errs[i] = e.cache.Seen(e.ctx, e.id("same"), exp)
			})
		}
		start.Done()
		wg.Wait()
		first := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Seen = %v", errs[i])
			}
			if !results[i] {
				first++
			}
		}
		if first != 1 {
			t.Fatalf("%d of %d concurrent calls reported a first sighting, want exactly 1", first, n)
		}
	})

	t.Run("ConcurrentDistinctIDs", func(t *testing.T) {
		e := setup(t)
		const n = 64
		exp := e.clock.Now().Add(time.Hour)
		var wg sync.WaitGroup
		errs := make(chan string, 2*n)
		for i := range n {
			wg.Go(func() {
				id := e.id("distinct-" + hex.EncodeToString([]byte{byte(i)}))
				for round, want := range []bool{false, true} {
					got, err := e.cache.Seen(e.ctx, id, exp)
					if err != nil || got != want {
						errs <- id + ": round " + string(rune('0'+round)) + ": wrong answer or error"
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Error(msg)
		}
	})
}

func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func waitUntil(deadline time.Time) {
	if d := time.Until(deadline); d > 0 {
		time.Sleep(d)
	}
}
