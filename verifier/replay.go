package verifier

import (
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
// Its structures hold no pointers, so the garbage collector does not scan
// them, and a new entry reuses the slot of an expired one.
// It is safe for concurrent use.
type MemoryReplayCache struct {
	now  func() time.Time
	max  int
	base time.Time // expiries are kept as offsets from base

	mu      sync.Mutex
	live    map[[sha256.Size]byte]int // key → slot in entries
	entries []replayEntry             // slots; those on free are unused
	free    []int
	heap    []int // slots, a min-heap on expiry
}

type replayEntry struct {
	key    [sha256.Size]byte
	expiry time.Duration // since the cache's base
	pos    int           // in the heap
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
		live: make(map[[sha256.Size]byte]int),
	}
}

// Seen implements [ReplayCache]. An entry lives while the clock is before
// its expiry; an expiry not after the current time records nothing. It
// fails, with an error wrapping [ErrReplayCacheFull], when jti is not
// recorded and the cache holds its maximum of live entries. It ignores ctx.
func (c *MemoryReplayCache) Seen(_ context.Context, jti string, expiry time.Time) (bool, error) {
	var key [sha256.Size]byte
	if len(jti) <= 256 {
		// Hash a copy on the stack: []byte(jti) would allocate.
		var stack [256]byte
		key = sha256.Sum256(stack[:copy(stack[:], jti)])
	} else {
		key = sha256.Sum256([]byte(jti))
	}
	return c.seenKey(key, expiry)
}

// seenKey is Seen for the SHA-256 of the key.
func (c *MemoryReplayCache) seenKey(key [sha256.Size]byte, expiry time.Time) (bool, error) {
	// time.Time.Sub saturates, so times more than 292 years from base
	// compare as the extreme durations, which is harmless at that distance.
	exp := expiry.Sub(c.base)
	now := c.now().Sub(c.base)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.purge(now, purgeBatch)
	if i, ok := c.live[key]; ok {
		e := &c.entries[i]
		if e.expiry > now {
			return true, nil
		}
		// Expired but not yet purged: the jti is free again.
		if exp <= now {
			c.remove(i)
			return false, nil
		}
		e.expiry = exp
		c.fix(e.pos)
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
	var i int
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		i = len(c.entries)
		c.entries = append(c.entries, replayEntry{})
	}
	c.entries[i] = replayEntry{key: key, expiry: exp, pos: len(c.heap)}
	c.heap = append(c.heap, i)
	c.up(len(c.heap) - 1)
	c.live[key] = i
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
	for ; n > 0 && len(c.heap) > 0 && c.entries[c.heap[0]].expiry <= now; n-- {
		c.remove(c.heap[0])
	}
}

// remove forgets the entry in slot i.
func (c *MemoryReplayCache) remove(i int) {
	pos, last := c.entries[i].pos, len(c.heap)-1
	if pos != last {
		c.swap(pos, last)
	}
	c.heap = c.heap[:last]
	if pos != last {
		c.fix(pos)
	}
	delete(c.live, c.entries[i].key)
	c.entries[i] = replayEntry{}
	c.free = append(c.free, i)
}

// The heap, as container/heap has it, on slots instead of an interface.

func (c *MemoryReplayCache) less(a, b int) bool {
	return c.entries[c.heap[a]].expiry < c.entries[c.heap[b]].expiry
}

func (c *MemoryReplayCache) swap(a, b int) {
	h := c.heap
	h[a], h[b] = h[b], h[a]
	c.entries[h[a]].pos = a
	c.entries[h[b]].pos = b
}

func (c *MemoryReplayCache) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !c.less(j, i) {
			break
		}
		c.swap(i, j)
		j = i
	}
}

func (c *MemoryReplayCache) down(i0 int) bool {
	i, n := i0, len(c.heap)
	for {
		j := 2*i + 1
		if j >= n || j < 0 { // j < 0: overflow
			break
		}
		if k := j + 1; k < n && c.less(k, j) {
			j = k
		}
		if !c.less(j, i) {
			break
		}
		c.swap(i, j)
		i = j
	}
	return i > i0
}

// fix restores the heap after the expiry at pos changed.
func (c *MemoryReplayCache) fix(pos int) {
	if !c.down(pos) {
		c.up(pos)
	}
}
