package evidence

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"sync"
	"time"
)

// UseStore remembers evidence that has minted, so each piece mints at most
// one token. A retry of the SAME token (same bound value, e.g. the token's
// jti) is allowed; any other use is refused.
//
// Each signer keeps its own store, and so does the coordinator. When every
// two quorums share a signer (2t > n), no piece of evidence can mint two
// different tokens even through a compromised coordinator; with smaller
// thresholds the signers must share one store.
type UseStore interface {
	// Use records key as bound to bound until until. It returns an error
	// wrapping ErrReused when key is already recorded with a different bound
	// value; it fails closed (other error) when it cannot decide.
	// Recording and checking are one atomic step: of concurrent calls with
	// one key and different bound values, at most one succeeds.
	Use(ctx context.Context, key string, bound string, until time.Time) error
}

// DefaultUseStoreSize is the number of live entries of a [MemoryUseStore]
// made with max <= 0.
const DefaultUseStoreSize = 1 << 20

// MemoryUseStore is a [UseStore] in memory, for one process. Its memory is
// bounded and it never forgets a live entry: when full of live entries it
// refuses new ones (ErrStoreFull) instead of evicting any. Keys and bound
// values are kept as SHA-256 digests, so every entry takes the same room;
// expiry goes through a min-heap, so Use is O(log n). It is safe for
// concurrent use.
type MemoryUseStore struct {
	now  func() time.Time
	max  int
	base time.Time // expiries are kept as offsets from base

	mu   sync.Mutex
	live map[[sha256.Size]byte]*useEntry
	heap useHeap
}

type useEntry struct {
	key   [sha256.Size]byte
	bound [sha256.Size]byte
	until time.Duration // since the store's base
	index int           // in the heap
}

// purgeBatch bounds the expired entries one Use removes while the store is
// not full, so that a burst of expiries does not stall one caller.
const purgeBatch = 8

// NewMemoryUseStore returns an empty store of at most max live entries
// (max <= 0 means [DefaultUseStoreSize]) on the clock now (nil means
// time.Now).
func NewMemoryUseStore(max int, now func() time.Time) *MemoryUseStore {
	if max <= 0 {
		max = DefaultUseStoreSize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryUseStore{
		now:  now,
		max:  max,
		base: now(),
		live: make(map[[sha256.Size]byte]*useEntry),
	}
}

// Use implements [UseStore]. An entry lives while the clock is before its
// until. Use fails with an error wrapping
//   - [ErrInvalid] for an empty key or bound value;
//   - [ErrExpired] when until is not after now: the evidence expires (or
//     expired) before the use could be remembered, and an unremembered use
//     could be repeated;
//   - [ErrReused] when key is live with another bound value;
//   - [ErrStoreFull] when key is not live and the store holds max live
//     entries.
//
// A use with the same bound value as the live entry succeeds and extends it
// to until if that is later. Use ignores ctx.
func (s *MemoryUseStore) Use(_ context.Context, key string, bound string, until time.Time) error {
	if key == "" || bound == "" {
		return fmt.Errorf("%w: empty use key or bound value", ErrInvalid)
	}
	k := sha256.Sum256([]byte(key))
	b := sha256.Sum256([]byte(bound))

	s.mu.Lock()
	defer s.mu.Unlock()
	// time.Time.Sub saturates, so times more than 292 years from base
	// compare as the extreme durations, which is harmless at that distance.
	now := s.now().Sub(s.base)
	exp := until.Sub(s.base)
	if exp <= now {
		return fmt.Errorf("%w: the evidence expires at %s, before its use could be recorded", ErrExpired, until.UTC().Format(time.RFC3339))
	}
	s.purge(now, purgeBatch)
	if e, ok := s.live[k]; ok && e.until > now {
		if e.bound != b {
			return fmt.Errorf("%w: it is bound to another token", ErrReused)
		}
		if exp > e.until {
			e.until = exp
			heap.Fix(&s.heap, e.index)
		}
		return nil
	} else if ok {
		// Expired but not yet purged: the key is free again.
		e.bound, e.until = b, exp
		heap.Fix(&s.heap, e.index)
		return nil
	}
	if len(s.live) >= s.max {
		s.purge(now, math.MaxInt)
		if len(s.live) >= s.max {
			return fmt.Errorf("%w: %d live entries", ErrStoreFull, s.max)
		}
	}
	e := &useEntry{key: k, bound: b, until: exp}
	s.live[k] = e
	heap.Push(&s.heap, e)
	return nil
}

// Len returns the number of entries held, including expired entries not yet
// purged.
func (s *MemoryUseStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// purge removes up to n entries that expired at or before now.
func (s *MemoryUseStore) purge(now time.Duration, n int) {
	for ; n > 0 && len(s.heap) > 0 && s.heap[0].until <= now; n-- {
		e := heap.Pop(&s.heap).(*useEntry)
		delete(s.live, e.key)
	}
}

// useHeap is a min-heap of entries on until (container/heap).
type useHeap []*useEntry

func (h useHeap) Len() int           { return len(h) }
func (h useHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h useHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *useHeap) Push(x any) {
	e := x.(*useEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *useHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
