// Package usestoretest is the conformance suite of evidence.UseStore. Every
// implementation runs it, so that the coordinator and the signers can rely
// on one contract whichever store backs them: a key is bound to the first
// value it is used with until it expires; a retry with the same value
// succeeds, any other value fails with evidence.ErrReused; expiry releases
// the key; and of concurrent uses of one key with different values exactly
// one succeeds.
package usestoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// Clock is the controllable clock Run hands to the stores it makes. It only
// moves when the suite moves it.
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

// Run runs the suite against stores made by newStore, one per subtest, each
// on a fresh clock (starting at the real time) whose Now is passed as now.
// Whenever the suite relies on an expiry having passed it both advances the
// clock past it and waits for the real clock to pass it, so a store that
// keeps time itself may ignore now. Keys are random per run, so a store that
// outlives the test needs no cleanup.
func Run(t *testing.T, newStore func(t *testing.T, now func() time.Time) evidence.UseStore) {
	t.Helper()
	type env struct {
		store evidence.UseStore
		clock *Clock
		ctx   context.Context
		key   func(string) string
	}
	setup := func(t *testing.T) env {
		clock := NewClock(time.Now())
		prefix := randomID(t)
		return env{store: newStore(t, clock.Now), clock: clock, ctx: t.Context(),
			key: func(s string) string { return "cert:spiffe://test/" + prefix + ":" + s }}
	}
	// pass moves the clock (and waits for the real one) past t.
	pass := func(e env, until time.Time) {
		if d := until.Sub(e.clock.Now()); d >= 0 {
			e.clock.Advance(d + time.Millisecond)
		}
		time.Sleep(time.Until(until) + time.Millisecond)
	}
	use := func(t *testing.T, e env, key, bound string, until time.Time, want error) {
		t.Helper()
		err := e.store.Use(e.ctx, key, bound, until)
		switch {
		case want == nil && err != nil:
			t.Fatalf("Use(%q, %q) = %v, want success", key, bound, err)
		case want != nil && !errors.Is(err, want):
			t.Fatalf("Use(%q, %q) = %v, want %v", key, bound, err, want)
		}
	}

	t.Run("same bound value is a retry", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		k := e.key("a")
		use(t, e, k, "jti-1", until, nil)
		use(t, e, k, "jti-1", until, nil)
		use(t, e, k, "jti-1", until.Add(time.Minute), nil)
	})
	t.Run("another bound value is a reuse", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		k := e.key("a")
		use(t, e, k, "jti-1", until, nil)
		use(t, e, k, "jti-2", until, evidence.ErrReused)
		use(t, e, k, "jti-2", until.Add(time.Hour), evidence.ErrReused)
		// The first binding holds.
		use(t, e, k, "jti-1", until, nil)
	})
	t.Run("keys are independent", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		use(t, e, e.key("a"), "jti-1", until, nil)
		use(t, e, e.key("b"), "jti-2", until, nil)
		use(t, e, e.key("c"), "jti-1", until, nil)
	})
	t.Run("expiry releases the key", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(50 * time.Millisecond)
		k := e.key("a")
		use(t, e, k, "jti-1", until, nil)
		use(t, e, k, "jti-2", until, evidence.ErrReused)
		pass(e, until)
		use(t, e, k, "jti-2", e.clock.Now().Add(time.Minute), nil)
		use(t, e, k, "jti-1", e.clock.Now().Add(time.Minute), evidence.ErrReused)
	})
	t.Run("a retry extends the entry", func(t *testing.T) {
		e := setup(t)
		first := e.clock.Now().Add(50 * time.Millisecond)
		k := e.key("a")
		use(t, e, k, "jti-1", first, nil)
		use(t, e, k, "jti-1", first.Add(time.Minute), nil)
		pass(e, first)
		use(t, e, k, "jti-2", e.clock.Now().Add(time.Minute), evidence.ErrReused)
	})
	t.Run("expired evidence is refused", func(t *testing.T) {
		e := setup(t)
		now := e.clock.Now()
		for _, until := range []time.Time{now, now.Add(-time.Second), {}} {
			err := e.store.Use(e.ctx, e.key("late"), "jti-1", until)
			if err == nil {
				t.Fatalf("Use(until %v, now %v) succeeded", until, now)
			}
			if errors.Is(err, evidence.ErrReused) {
				t.Fatalf("Use(until %v) = %v: refused, but not as a reuse", until, err)
			}
		}
		// Nothing was recorded.
		use(t, e, e.key("late"), "jti-2", now.Add(time.Minute), nil)
	})
	t.Run("empty key or bound value is refused", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		for _, c := range [][2]string{{"", "jti"}, {e.key("a"), ""}} {
			if err := e.store.Use(e.ctx, c[0], c[1], until); err == nil {
				t.Fatalf("Use(%q, %q) succeeded", c[0], c[1])
			}
		}
	})
	t.Run("concurrent uses: exactly one wins", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		const n = 64
		for round := range 8 {
			k := e.key(fmt.Sprintf("race-%d", round))
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for g := range n {
				wg.Go(func() {
					<-start
					errs[g] = e.store.Use(e.ctx, k, fmt.Sprintf("jti-%d", g), until)
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for g, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, evidence.ErrReused):
					t.Fatalf("goroutine %d: %v, want success or ErrReused", g, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d uses succeeded, want exactly 1", round, won)
			}
		}
	})
	t.Run("concurrent retries of the winner all succeed", func(t *testing.T) {
		e := setup(t)
		until := e.clock.Now().Add(time.Minute)
		k := e.key("retry")
		var wg sync.WaitGroup
		errs := make([]error, 32)
		for g := range errs {
			wg.Go(func() { errs[g] = e.store.Use(e.ctx, k, "jti-same", until) })
		}
		wg.Wait()
		for g, err := range errs {
			if err != nil {
				t.Fatalf("goroutine %d: %v", g, err)
			}
		}
	})
}

func randomID(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
