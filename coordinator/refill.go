package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/frostmint/frostmint/signer/frost"
)

// Commitment refill.
//
// A mint takes one pooled commitment from each signer of its quorum, so
// that signing is one round trip. The pools are refilled in the
// background, continuously and a few commitments at a time: a signer
// makes each nonce under its process-wide FROST lock, and a big batch
// (the old refill fetched up to pool_size at once when a pool fell below
// half) would hold up the Signs of every mint on that signer meanwhile,
// and arrive late. A pool that still runs dry makes the mint that finds it
// empty fetch a couple of commitments for itself (takeNow).

const (
	// maxRefillBatch bounds one background Commit call; see refillBatch.
	maxRefillBatch = 8
	// hotBatch is what a mint that finds a pool empty fetches (one for
	// itself, one for the next): as little as possible on its own path.
	hotBatch = 2
	// refillPoll is how often a refill looks at its pool without being
	// woken: to catch up after a signer comes back, after a key rotation,
	// or when commitments aged out.
	refillPoll = 100 * time.Millisecond
)

// refillBatch is how many commitments one background Commit call of p
// asks for: a quarter of the pool, at least one and at most
// maxRefillBatch. A pool is topped up whenever it has room for a batch.
func (p *pool) refillBatch() int {
	return max(1, min(maxRefillBatch, p.size/4))
}

// wakeRefillLocked wakes p's refill when the pool has room for a batch.
// Callers hold p.mu.
func (p *pool) wakeRefillLocked() {
	if p.size-len(p.items) < p.refillBatch() {
		return
	}
	select {
	case p.lowLocked() <- struct{}{}:
	default: // already woken
	}
}

// lowLocked returns the channel that wakes p's refill. Callers hold p.mu.
func (p *pool) lowLocked() chan struct{} {
	if p.low == nil {
		p.low = make(chan struct{}, 1)
	}
	return p.low
}

// topUp fetches one batch of commitments of key k if the pool has room for
// it, and reports whether it did.
func (p *pool) topUp(ctx context.Context, timeout time.Duration, k *activeKey) (bool, error) {
	p.refill.Lock()
	defer p.refill.Unlock()
	n := p.refillBatch()
	if p.size-p.len() < n {
		return false, nil
	}
	if _, err := p.fetch(ctx, timeout, k, n, 0); err != nil {
		return false, err
	}
	return true, nil
}

// takeNow is the hot path's refill: a mint found the pool empty. It takes
// a commitment that a refill under way brought meanwhile, or else fetches
// hotBatch, keeps one for the mint (so that concurrent mints cannot take
// it first) and pools the rest.
func (p *pool) takeNow(ctx context.Context, timeout time.Duration, k *activeKey) (frost.Commitment, error) {
	p.refill.Lock()
	defer p.refill.Unlock()
	if c, ok := p.take(k.kid); ok {
		return c, nil
	}
	kept, err := p.fetch(ctx, timeout, k, max(1, min(hotBatch, p.size)), 1)
	if err != nil {
		return frost.Commitment{}, err
	}
	return kept[0], nil
}

// startRefills starts one background refill per pool, until ctx is done;
// the function it returns waits for them to end.
func (s *Server) startRefills(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range s.pools {
		wg.Go(func() { s.refill(ctx, p) })
	}
	return wg.Wait
}

// refill keeps p topped up: it fetches a batch whenever the pool has room
// for one, one batch after the other while there is, and otherwise waits
// until a mint takes one or refillPoll passes. A signer that fails is
// retried by the pool's own backoff (usable).
func (s *Server) refill(ctx context.Context, p *pool) {
	p.mu.Lock()
	low := p.lowLocked()
	p.mu.Unlock()
	poll := time.NewTicker(refillPoll)
	defer poll.Stop()
	timeout := time.Duration(s.cfg.SignTimeout)
	for {
		for ctx.Err() == nil {
			k := s.active()
			if k == nil || !p.usable() {
				break
			}
			fetched, err := p.topUp(ctx, timeout, k)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Debug("refill failed", "signer", p.ep.ID, "err", err)
				}
				break
			}
			if !fetched {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-low:
		case <-poll.C:
		}
	}
}
