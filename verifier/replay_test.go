package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/replaytest"
)

func TestMemoryReplayCacheConformance(t *testing.T) {
	replaytest.Run(t, func(t *testing.T, now func() time.Time) verifier.ReplayCache {
		return verifier.NewMemoryReplayCache(1024, now)
	})
}

func TestMemoryReplayCacheFull(t *testing.T) {
	ctx := context.Background()
	clock := replaytest.NewClock(now())
	c := verifier.NewMemoryReplayCache(3, clock.Now)
	base := clock.Now()
	for i, exp := range []time.Duration{time.Minute, 2 * time.Minute, time.Hour} {
		if seen, err := c.Seen(ctx, strconv.Itoa(i), base.Add(exp)); seen || err != nil {
			t.Fatalf("Seen(%d) = %v, %v", i, seen, err)
		}
	}
	// Full of live entries: refuse, and forget nothing.
	if _, err := c.Seen(ctx, "new", base.Add(time.Hour)); !errors.Is(err, verifier.ErrReplayCacheFull) {
		t.Fatalf("Seen on a full cache = %v, want ErrReplayCacheFull", err)
	}
	for i := range 3 {
		if seen, err := c.Seen(ctx, strconv.Itoa(i), base.Add(time.Hour)); !seen || err != nil {
			t.Fatalf("a full cache forgot entry %d: %v, %v", i, seen, err)
		}
	}
	// Once one entry expires, there is room for one more.
	clock.Advance(time.Minute)
	if seen, err := c.Seen(ctx, "new", base.Add(time.Hour)); seen || err != nil {
		t.Fatalf("Seen after an expiry = %v, %v", seen, err)
	}
	if _, err := c.Seen(ctx, "newer", base.Add(time.Hour)); !errors.Is(err, verifier.ErrReplayCacheFull) {
		t.Fatalf("Seen = %v, want ErrReplayCacheFull", err)
	}
	if seen, err := c.Seen(ctx, "1", base.Add(time.Hour)); !seen || err != nil {
		t.Fatalf("a full cache forgot a live entry: %v, %v", seen, err)
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
}

func TestMemoryReplayCachePastExpiry(t *testing.T) {
	ctx := context.Background()
	clock := replaytest.NewClock(now())
	c := verifier.NewMemoryReplayCache(1, clock.Now)
	for range 3 {
		if seen, err := c.Seen(ctx, "old", clock.Now()); seen || err != nil {
			t.Fatalf("Seen with a past expiry = %v, %v", seen, err)
		}
	}
	if c.Len() != 0 {
		t.Fatal("an expired entry was recorded")
	}
	// And it took no room.
	if seen, err := c.Seen(ctx, "live", clock.Now().Add(time.Second)); seen || err != nil {
		t.Fatalf("Seen = %v, %v", seen, err)
	}
}

func TestMemoryReplayCacheExtremeTimes(t *testing.T) {
	ctx := context.Background()
	clock := &replaytest.Clock{}                     // the zero time
	c := verifier.NewMemoryReplayCache(0, clock.Now) // default size
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if seen, err := c.Seen(ctx, "far", far); seen || err != nil {
		t.Fatalf("Seen = %v, %v", seen, err)
	}
	clock.Advance(100 * 365 * 24 * time.Hour)
	if seen, err := c.Seen(ctx, "far", far); !seen || err != nil {
		t.Fatalf("a far expiry was forgotten: %v, %v", seen, err)
	}
	if seen, err := c.Seen(ctx, "ancient", time.Time{}); seen || err != nil {
		t.Fatalf("Seen(zero time) = %v, %v", seen, err)
	}
}

// TestMemoryReplayCacheModel runs random operations against the cache and
// a trivially correct model of it.
func TestMemoryReplayCacheModel(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const max = 50
	clock := replaytest.NewClock(now())
	c := verifier.NewMemoryReplayCache(max, clock.Now)
	model := map[string]time.Time{}
	for i := range 20000 {
		if rng.IntN(10) == 0 {
			clock.Advance(time.Duration(rng.IntN(10)) * time.Second)
		}
		now := clock.Now()
		for k, exp := range model {
			if !now.Before(exp) {
				delete(model, k)
			}
		}
		key := strconv.Itoa(rng.IntN(120))
		exp := now.Add(time.Duration(rng.IntN(60)-5) * time.Second)
		seen, err := c.Seen(ctx, key, exp)

		_, wantSeen := model[key]
		var wantErr bool
		switch {
		case wantSeen:
		case !exp.After(now):
		case len(model) >= max:
			wantErr = true
		default:
			model[key] = exp
		}
		if seen != wantSeen || (err != nil) != wantErr {
			t.Fatalf("op %d: Seen(%s) = %v, %v; want %v, error %v", i, key, seen, err, wantSeen, wantErr)
		}
		if wantErr && !errors.Is(err, verifier.ErrReplayCacheFull) {
			t.Fatalf("op %d: error %v", i, err)
		}
	}
}

// TestVerifyConcurrent verifies under -race: of many concurrent uses of one
// token exactly one is accepted, and distinct tokens never interfere.
func TestVerifyConcurrent(t *testing.T) {
	v := newVerifier(t)
	const n = 32
	same := good(t)
	distinct := make([]string, n)
	for i := range distinct {
		distinct[i] = good(t)
	}
	type result struct {
		sameErr, distinctErr error
	}
	results := make([]result, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			_, results[i].sameErr = v.Verify(t.Context(), same, "read")
			_, results[i].distinctErr = v.Verify(t.Context(), distinct[i], "write")
		}()
	}
	close(start)
	for range n {
		<-done
	}
	accepted := 0
	for i, r := range results {
		switch code := verifier.CodeOf(r.sameErr); {
		case r.sameErr == nil:
			accepted++
		case code != verifier.CodeReplayed:
			t.Errorf("goroutine %d: %v", i, r.sameErr)
		}
		if r.distinctErr != nil {
			t.Errorf("goroutine %d: distinct token: %v", i, r.distinctErr)
		}
	}
	if accepted != 1 {
		t.Fatalf("one token was accepted %d times", accepted)
	}
}

// BenchmarkVerifyBadSignature is the cost of refusing a forged token.
func BenchmarkVerifyBadSignature(b *testing.B) {
	v := newVerifier(b, func(c *verifier.Config) { c.Replay = nopCache{} })
	tok := mint(b, testKey("evil"), header(b, testKey("a1")), claims())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); verifier.CodeOf(err) != verifier.CodeBadSignature {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryReplayCache(b *testing.B) {
	clock := replaytest.NewClock(now())
	c := verifier.NewMemoryReplayCache(1<<16, clock.Now)
	ctx := context.Background()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("%d:%s:%043d", len(issuerA), issuerA, i)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		// Entries live 1<<15 operations: the cache stays half full, and
		// every operation inserts one entry and expires one.
		clock.Advance(time.Nanosecond)
		if _, err := c.Seen(ctx, keys[i%len(keys)], clock.Now().Add(1<<15)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
