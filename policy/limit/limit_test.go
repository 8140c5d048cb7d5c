package limit

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestIdentityAndScopeBuckets(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	l := New(Config{PerIdentity: Rate{PerSecond: 1, Burst: 3}, PerScope: Rate{PerSecond: 1, Burst: 2}}, c.now)
	// Two per scope.
	for i := 0; i < 2; i++ {
		if err := l.Allow("alice", []string{"read"}); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Allow("alice", []string{"read"})
	var le *Error
	if !errors.As(err, &le) || le.Kind != "scope" || !errors.Is(err, ErrLimited) || le.RetryAfter <= 0 {
		t.Fatalf("third read: %v", err)
	}
	// The refused call took nothing from the identity bucket: one left.
	if err := l.Allow("alice", []string{"write"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Allow("alice", []string{"other"}); !errors.As(err, &le) || le.Kind != "identity" {
		t.Fatalf("identity exhausted: %v", err)
	}
	// Other identities are independent.
	if err := l.Allow("bob", []string{"read"}); err != nil {
		t.Fatal(err)
	}
	// Refill.
	c.t = c.t.Add(3 * time.Second)
	if err := l.Allow("alice", []string{"read"}); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestZeroMeansUnlimited(t *testing.T) {
	l := New(Config{}, nil)
	for i := 0; i < 1000; i++ {
		if err := l.Allow("x", []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBoundedKeys(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	l := New(Config{PerIdentity: Rate{PerSecond: 1, Burst: 1}, MaxKeys: 10}, c.now)
	for i := 0; i < 100; i++ {
		c.t = c.t.Add(time.Millisecond)
		if err := l.Allow(string(rune('a'+i%26))+string(rune(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.buckets) > 10 {
		t.Fatalf("%d buckets kept, max 10", len(l.buckets))
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c  Config
		ok bool
	}{
		{Config{}, true},
		{Config{PerIdentity: Rate{1, 5}, PerScope: Rate{0.5, 2}}, true},
		{Config{PerIdentity: Rate{1, 0}}, false},
		{Config{PerScope: Rate{-1, 1}}, false},
		{Config{MaxKeys: -1}, false},
	} {
		if err := tc.c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.c, err)
		}
	}
}

func TestConcurrentExactBudget(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	l := New(Config{PerIdentity: Rate{PerSecond: 0.001, Burst: 10}}, c.now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Allow("x", nil) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 10 {
		t.Fatalf("%d allowed, want exactly the burst of 10", ok)
	}
}
