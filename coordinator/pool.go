package coordinator

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// pooled is a commitment fetched ahead of time, for one key epoch.
type pooled struct {
	c       frost.Commitment
	kid     string
	fetched time.Time
}

// pool is one signer: its connection and its commitments. It is safe for
// concurrent use. A guardian's pool has no connection of its own: it has a
// client while the guardian's stream is up (see attach).
type pool struct {
	ep     Endpoint
	conn   *grpc.ClientConn // nil for a guardian
	size   int
	maxAge time.Duration
	now    func() time.Time

	mu       sync.Mutex
	client   signv1.SignerServiceClient // nil while a guardian is away
	approver bool                       // from Info: a human can approve through it
	items    []pooled
	bootID   string
	healthy  bool
	lastErr  error
	retryAt  time.Time
	failures int
	// badUntil quarantines a signer that returned an invalid share: a
	// reachable signer that signs wrongly is worse than one that is down,
	// and answering Info does not end it.
	badUntil time.Time
	strikes  int
	policy   string     // the signer's policy hash, from Info
	refill   sync.Mutex // one refill at a time
	// low wakes the pool's background refill when take leaves room for a
	// batch (refill.go); made on first use, under mu.
	low chan struct{}
	// drops counts drop calls: a fetch under way when the pool is dropped
	// discards what it gets, which may come from a process that is gone.
	drops uint64

	// slowUntil keeps a signer that hedged mints keep leaving behind at
	// the back of the queue: answering Info does not end it, a share
	// within hedge_after resets its count (see leftBehind).
	slowUntil time.Time
	lags      int

	// attested gates the signer on its attestation verdict (attest.go);
	// false when the coordinator has no attestation section.
	attested bool
	att      attestState
}

func newPool(ep Endpoint, files mtls.Files, size int, maxAge time.Duration, now func() time.Time, attested bool, extra ...grpc.DialOption) (*pool, error) {
	if ep.Guardian {
		return &pool{ep: ep, size: size, maxAge: maxAge, now: now, attested: attested}, nil
	}
	// The signer must present the identity configured for it: chain
	// verification alone would accept any cluster certificate. The chain
	// is checked against the CA bundle as it is on disk now, and the
	// client certificate follows its files too (mtls reloads them).
	want := ep.Identity
	tc, err := mtls.ClientConfigFor(files, func(id string) error {
		if id != want {
			return fmt.Errorf("signer at %s is %q, want %q", ep.Addr, id, want)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The pool, once made: every handshake tells it the signer's key.
	var self *pool
	check := tc.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := check(cs); err != nil {
			return err
		}
		if self != nil {
			self.sawKey(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
		}
		return nil
	}
	conn, err := grpc.NewClient(ep.Addr, append(extra,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))...,
	)
	if err != nil {
		return nil, fmt.Errorf("signer %d: %w", ep.ID, err)
	}
	self = &pool{ep: ep, conn: conn, client: signv1.NewSignerServiceClient(conn),
		size: size, maxAge: maxAge, now: now, healthy: true, attested: attested}
	return self, nil
}

// errAway is the error of a call to a guardian that is not connected.
var errAway = status.Error(codes.Unavailable, "guardian not connected")

// rpc returns the signer's client, or nil while a guardian is away.
func (p *pool) rpc() signv1.SignerServiceClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// attach makes a connected guardian's stream the pool's client. It fails
// when another stream of that guardian is attached.
func (p *pool) attach(c signv1.SignerServiceClient) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return false
	}
	p.client, p.items, p.healthy, p.lastErr, p.failures = c, nil, true, nil, 0
	p.drops++ // a fetch under way on an earlier stream discards what it gets
	return true
}

// detach forgets a guardian's stream that ended, and its commitments.
func (p *pool) detach(c signv1.SignerServiceClient) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == c {
		p.client, p.items, p.healthy, p.lastErr = nil, nil, false, errAway
		p.drops++
	}
}

// canApprove reports whether a human can approve through this signer now.
func (p *pool) canApprove() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client != nil && p.approver
}

// take removes and returns one fresh commitment of epoch kid, if any;
// commitments of other epochs (before a key rotation) are dropped.
func (p *pool) take(kid string) (frost.Commitment, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.wakeRefillLocked()
	cutoff := p.now().Add(-p.maxAge)
	for len(p.items) > 0 {
		it := p.items[len(p.items)-1]
		p.items = p.items[:len(p.items)-1]
		if it.kid == kid && it.fetched.After(cutoff) {
			return it.c, true
		}
	}
	return frost.Commitment{}, false
}

// drop forgets every pooled commitment (the signer restarted or refused one).
func (p *pool) drop() {
	p.mu.Lock()
	p.items = nil
	p.drops++
	p.mu.Unlock()
}

func (p *pool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items)
}

// usable reports whether the pool should be tried now.
func (p *pool) usable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.badUntil) || p.client == nil {
		return false
	}
	if p.attested && !p.admittedLocked() {
		return false
	}
	return p.healthy || !now.Before(p.retryAt)
}

// quarantine leaves the signer out for a while after an invalid share:
// 30 s, doubling with every repeat up to 10 min.
func (p *pool) quarantine(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items = nil
	p.healthy, p.lastErr = false, err
	d := 30 * time.Second << min(p.strikes, 5)
	if d > 10*time.Minute {
		d = 10 * time.Minute
	}
	p.strikes++
	p.badUntil = p.now().Add(d)
}

func (p *pool) markOK() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); now.Before(p.badUntil) || now.Before(p.slowUntil) {
		return
	}
	p.healthy, p.lastErr, p.failures = true, nil, 0
}

// leftBehind marks a signer that had not answered within hedge_after when
// another quorum signed: unhealthy, so that quorums are made of other
// signers first, for 1 s, doubling each time it lags again afterwards, up
// to 30 s. It is still asked when no quorum can be made without it.
func (p *pool) leftBehind(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy, p.lastErr = false, err
	now := p.now()
	if now.Before(p.slowUntil) {
		return // the mints that were waiting for it together count once
	}
	p.slowUntil = now.Add(min(time.Second<<min(p.lags, 5), 30*time.Second))
	p.lags++
}

// prompt records a share that came within hedge_after: the signer is no
// longer lagging.
func (p *pool) prompt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lags = 0
}

// markFailed marks the signer unhealthy after a failed call, to be
// retried after a backoff. A signer found unreachable loses its pooled
// commitments: its process may be gone, and one that replaces it knows
// none of them, so none is ever sent to it.
func (p *pool) markFailed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy, p.lastErr = false, err
	if status.Code(err) == codes.Unavailable {
		p.items = nil
		p.drops++ // and so does a fetch under way (see drops)
	}
	p.failures++
	wait := time.Duration(p.failures) * 200 * time.Millisecond
	if wait > 2*time.Second {
		wait = 2 * time.Second
	}
	p.retryAt = p.now().Add(wait)
}

func (p *pool) status() (healthy bool, n int, lastErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healthy, len(p.items), p.lastErr
}

// fetch gets need commitments of key k from the signer, with one Commit
// call, returns keep of them to the caller and adds the others to the
// pool; need ≤ 0 does nothing. A signer whose boot id changed lost its
// nonces, so the pool is dropped before the new ones are added. Callers
// hold p.refill. (The background refill and the hot path ask for a few at
// a time: see refill.go.)
func (p *pool) fetch(ctx context.Context, timeout time.Duration, k *activeKey, need, keep int) ([]frost.Commitment, error) {
	if need <= 0 {
		return nil, nil
	}
	client := p.rpc()
	if client == nil {
		return nil, errAway
	}
	p.mu.Lock()
	drops := p.drops
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.Commit(ctx, &signv1.CommitRequest{Count: uint32(need), KeyId: k.kid})
	if err != nil {
		p.markFailed(err)
		return nil, err
	}
	if resp.GetSignerId() != uint32(p.ep.ID) {
		err := fmt.Errorf("signer at %s says it is %d, configured as %d", p.ep.Addr, resp.GetSignerId(), p.ep.ID)
		p.markFailed(err)
		return nil, err
	}
	if resp.GetKeyId() != k.kid {
		err := fmt.Errorf("signer %d sent commitments for key %q, asked for %q", p.ep.ID, resp.GetKeyId(), k.kid)
		p.markFailed(err)
		return nil, err
	}
	if n := len(resp.GetCommitments()); n == 0 || n > need {
		err := fmt.Errorf("signer %d sent %d commitments, asked for %d", p.ep.ID, n, need)
		p.markFailed(err)
		return nil, err
	}
	items := make([]pooled, 0, len(resp.GetCommitments()))
	now := p.now()
	for _, enc := range resp.GetCommitments() {
		c, err := k.group.DecodeCommitment(enc)
		if err != nil || c.SignerID != p.ep.ID {
			err = fmt.Errorf("signer %d sent an invalid commitment: %v", p.ep.ID, err)
			p.markFailed(err)
			return nil, err
		}
		items = append(items, pooled{c: c, kid: k.kid, fetched: now})
	}
	var kept []frost.Commitment
	for keep > 0 && len(items) > 0 {
		kept = append(kept, items[len(items)-1].c)
		items = items[:len(items)-1]
		keep--
	}
	p.mu.Lock()
	if p.drops != drops {
		p.mu.Unlock()
		return nil, fmt.Errorf("signer %d failed while its commitments were fetched: discarded", p.ep.ID)
	}
	if p.bootID != resp.GetBootId() {
		p.items = nil
		p.bootID = resp.GetBootId()
	}
	p.items = append(p.items, items...)
	p.mu.Unlock()
	p.markOK()
	return kept, nil
}

// checkBoot asks the signer for its boot id and drops the pool when the
// signer restarted.
func (p *pool) checkBoot(ctx context.Context, timeout time.Duration) {
	client := p.rpc()
	if client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := client.Info(ctx, &signv1.InfoRequest{})
	if err != nil {
		p.markFailed(err)
		p.drop()
		return
	}
	p.mu.Lock()
	if p.bootID != "" && p.bootID != info.GetBootId() {
		p.items = nil
		p.drops++ // a fetch under way may be answered by the old process
	}
	p.bootID = info.GetBootId()
	p.policy = info.GetPolicyHash()
	p.approver = info.GetApprover()
	p.mu.Unlock()
	p.markOK()
}

func (p *pool) policyHash() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.policy
}
