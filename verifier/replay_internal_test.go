package verifier

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// checkInvariants checks the structures of c: every live key has a slot
// whose key it is, every slot is live or free exactly once, and the heap
// orders the live slots by expiry with their positions up to date.
func (c *MemoryReplayCache) checkInvariants(t *testing.T) {
	t.Helper()
	if len(c.live) != len(c.heap) || len(c.live)+len(c.free) != len(c.entries) {
		t.Fatalf("%d live, %d in the heap, %d free, %d slots", len(c.live), len(c.heap), len(c.free), len(c.entries))
	}
	used := make([]bool, len(c.entries))
	for _, i := range c.free {
		if used[i] {
			t.Fatalf("slot %d free twice", i)
		}
		used[i] = true
	}
	for key, i := range c.live {
		if used[i] || c.entries[i].key != key {
			t.Fatalf("slot %d of a live key is free, shared, or holds another key", i)
		}
		used[i] = true
	}
	for pos, i := range c.heap {
		if c.entries[i].pos != pos {
			t.Fatalf("slot %d at heap position %d records %d", i, pos, c.entries[i].pos)
		}
		if pos > 0 && c.less(pos, (pos-1)/2) {
			t.Fatalf("heap position %d is before its parent", pos)
		}
	}
}

func TestMemoryReplayCacheInvariants(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	at := time.Unix(1_700_000_000, 0)
	c := NewMemoryReplayCache(64, func() time.Time { return at })
	for i := range 20000 {
		if rng.IntN(8) == 0 {
			at = at.Add(time.Duration(rng.IntN(5)) * time.Second)
		}
		exp := at.Add(time.Duration(rng.IntN(40)-5) * time.Second)
		if _, err := c.Seen(ctx, strconv.Itoa(rng.IntN(200)), exp); err != nil && rng.IntN(100) == 0 {
			at = at.Add(time.Minute) // let a full cache drain now and then
		}
		c.checkInvariants(t)
		if t.Failed() {
			t.Fatalf("after operation %d", i)
		}
	}
}

// TestSeenKeyIsSeen checks that the verifier's way into the memory cache
// (seenKey on the hash of appendReplayKey) names tokens exactly as Seen
// with replayKey does.
func TestSeenKeyIsSeen(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	c := NewMemoryReplayCache(16, func() time.Time { return at })
	exp := at.Add(time.Minute)
	for _, tc := range []struct{ iss, jti string }{
		{"https://a.example", "AAAAAAAAAAAAAAAAAAAAAA"},
		{"", ""},
		{"https://" + string(make([]byte, 300)), "long"},
	} {
		var stack [256]byte
		if seen, err := c.seenKey(sha256.Sum256(appendReplayKey(stack[:0], tc.iss, tc.jti)), exp); seen || err != nil {
			t.Fatalf("first seenKey = %v, %v", seen, err)
		}
		if seen, err := c.Seen(context.Background(), replayKey(tc.iss, tc.jti), exp); !seen || err != nil {
			t.Fatalf("Seen after seenKey = %v, %v", seen, err)
		}
	}
	// Length prefixes keep (iss, jti) pairs apart.
	if replayKey("a:b", "c") == replayKey("a", "b:c") {
		t.Fatal("replay keys collide")
	}
}
