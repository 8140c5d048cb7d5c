package verifier

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ReplayCache remembers the tokens a verifier accepted, until they expire.
type ReplayCache interface {
	// Seen records jti until expiry and reports whether it was already
	// recorded. jti is an opaque key (the verifier passes the issuer and the
	// jti claim, joined unambiguously). Recording and checking must be one
	// atomic step: of concurrent calls with the same jti, exactly one may
	// report false.
	//
	// It fails (error) when it cannot decide; the verifier then denies
	// (fail closed).
	Seen(ctx context.Context, jti string, expiry time.Time) (bool, error)
}

// DefaultReplayCacheSize is the number of live entries of the replay cache
// a [Verifier] makes when its [Config] has none: with the default 5-minute
// token lifetime and leeway it absorbs about 3,000 distinct tokens a
// second (1,100 at the 15-minute cap), in about 150 MiB when full.
const DefaultReplayCacheSize = 1 << 20

// ErrReplayCacheFull means a [MemoryReplayCache] holds its maximum of live
// entries and so cannot record another.
var ErrReplayCacheFull = errors.New("verifier: replay cache full")

// MemoryReplayCache is a [ReplayCache] in memory, for a single verifier
// process. Its memory is bounded, and it never forgets an entry before its
// expiry: when it is full of live entries it refuses new ones instead, and
// the verifier then refuses their tokens. Entries are indexed by the
// SHA-256 of their key, so an entry takes the same room however long the
// key, and are expired through a min-heap on expiry: Seen is O(log n).
// It is safe for concurrent use.
type MemoryReplayCache struct {
	now  func() time.Time
	max  int
	base time.Time // expiries are kept as offsets from base

	mu   sync.Mutex
	live map[[sha256.Size]byte]*replayEntry
	heap replayHeap
}

type replayEntry struct {
	key    [sha256.Size]byte
	expiry time.Duration // since the cache's base
	index  int           // in the heap
}

// purgeBatch bounds the expired entries one Seen removes while the cache is
// not full, so that a burst of expiries does not stall one caller.
const purgeBatch = 8

// NewMemoryReplayCache returns an empty cache of at most max live entries
// (max <= 0 means [DefaultReplayCacheSize]), on the clock now (nil means
// time.Now).
func NewMemoryReplayCache(max int, now func() time.Time) *MemoryReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{
		now:  now,
		max:  max,
		base: now(),
		live: make(map[[sha256.Size]byte]*replayEntry),
	}
}

// Seen implements [ReplayCache]. An entry lives while the clock is before
// its expiry; an expiry not after the current time records nothing. It
// fails, with an error wrapping [ErrReplayCacheFull], when jti is not
// recorded and the cache holds its maximum of live entries. It ignores ctx.
func (c *MemoryReplayCache) Seen(_ context.Context, jti string, expiry time.Time) (bool, error) {
	key := sha256.Sum256([]byte(jti))
	// time.Time.Sub saturates, so times more than 292 years from base
	// compare as the extreme durations, which is harmless at that distance.
	exp := expiry.Sub(c.base)
	now := c.now().Sub(c.base)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.purge(now, purgeBatch)
	if e, ok := c.live[key]; ok {
		if e.expiry > now {
			return true, nil
		}
		// Expired but not yet purged: the jti is free again.
		if exp <= now {
			c.remove(e)
			return false, nil
		}
		e.expiry = exp
		heap.Fix(&c.heap, e.index)
		return false, nil
	}
	if exp <= now {
		return false, nil
	}
	if len(c.live) >= c.max {
		c.purge(now, math.MaxInt)
		if len(c.live) >= c.max {
			return false, fmt.Errorf("%w: %d live entries", ErrReplayCacheFull, c.max)
		}
	}
	e := &replayEntry{key: key, expiry: exp}
	c.live[key] = e
	heap.Push(&c.heap, e)
	return false, nil
}

// Len returns the number of entries held, including expired entries not
// yet purged.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}

// purge removes up to n entries that expired at or before now.
func (c *MemoryReplayCache) purge(now time.Duration, n int) {
	for ; n > 0 && len(c.heap) > 0 && c.heap[0].expiry <= now; n-- {
		c.remove(c.heap[0])
	}
}

func (c *MemoryReplayCache) remove(e *replayEntry) {
	heap.Remove(&c.heap, e.index)
	delete(c.live, e.key)
}

// replayHeap is a min-heap of entries on expiry (container/heap).
type replayHeap []*replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h replayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *replayHeap) Push(x any) {
	e := x.(*replayEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
