package coordinator_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
)

// hung is a signer whose Sign never answers until released (a stopped
// process, a stuck disk): it answers Info and Commit as usual.
type hung struct {
	*signer.Server
	release chan struct{}
	calls   atomic.Int32
}

func (h *hung) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	h.calls.Add(1)
	select {
	case <-h.release:
		return h.Server.Sign(ctx, req)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// manualClock is a coordinator clock that stands still but when the test
// moves it: what the coordinator does after a while (its health checks
// every 2 s, the end of a signer's time out) happens only when the test
// says, whatever the machine's speed.
type manualClock struct {
	t0  time.Time
	off atomic.Int64
}

func newManualClock() *manualClock             { return &manualClock{t0: time.Now()} }
func (c *manualClock) now() time.Time          { return c.t0.Add(time.Duration(c.off.Load())) }
func (c *manualClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// A signer that hangs on Sign but still answers Info: with hedging every
// mint succeeds without waiting for it, and later mints leave it out at
// once; with hedging off, the mint that asks it waits for sign_timeout
// (here past the caller's deadline).
func TestHedgingRoutesAroundAHungSigner(t *testing.T) {
	for _, tc := range []struct {
		name       string
		hedgeAfter time.Duration
		// hedged: every mint succeeds, well within the caller's deadline
		// (sign_timeout is 30s); otherwise the mint that asks the hung
		// signer waits past the caller's deadline.
		hedged   bool
		deadline time.Duration
	}{
		{"hedge_after 50ms", 50 * time.Millisecond, true, 10 * time.Second},
		{"hedging off", 0, false, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hung{release: make(chan struct{})}
			c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
				Wrap: func(id uint16, s *signer.Server) signv1.SignerServiceServer {
					if id == 1 {
						h.Server = s
						return h
					}
					return s
				},
				Config: func(cc *coordinator.Config) {
					cc.SignTimeout = coordinator.Duration(30 * time.Second)
					cc.HedgeAfter = coordinator.Duration(tc.hedgeAfter)
					cc.Limits = limit.Config{}
				},
				CoordinatorOptions: []coordinator.Option{coordinator.WithClock(newManualClock().now)},
			})
			t.Cleanup(func() { close(h.release) }) // before the cluster stops
			v := verifierFor(t, c, "aud")
			cl := c.Client(t)
			// Pools are used healthy and fullest first, so signer 1 is
			// asked within a few mints.
			for i := 0; i < 6 && h.calls.Load() == 0; i++ {
				mctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				resp, err := cl.Mint(mctx, "aud", []string{"read"}, 0)
				cancel()
				if !tc.hedged && h.calls.Load() > 0 {
					if status.Code(err) != codes.DeadlineExceeded {
						t.Fatalf("without hedging, the mint that asked the hung signer: %v, want the caller's deadline", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("mint %d with a hung signer: %v", i, err)
				}
				if _, err := v.Verify(ctx(t), resp.GetToken(), "read"); err != nil {
					t.Fatal(err)
				}
			}
			if h.calls.Load() == 0 {
				t.Fatal("the hung signer was never asked")
			}
			// Left behind: later mints do not ask it again.
			asked := h.calls.Load()
			for i := 0; i < 5; i++ {
				resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := resp.GetSignerIds(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
					t.Fatalf("signers %v, want [2 3]", got)
				}
			}
			if n := h.calls.Load(); n != asked {
				t.Fatalf("the lagging signer was asked %d more times", n-asked)
			}
			st, err := cl.Status(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.GetSigners() {
				if s.GetId() == 1 && s.GetHealthy() {
					t.Fatal("a signer left behind by a hedge is reported healthy")
				}
			}
		})
	}
}

// recorder passes Sign through to a real signer, optionally late, and
// remembers what each call was sent and what the signer said.
type recorder struct {
	*signer.Server
	delay time.Duration

	mu    sync.Mutex
	lists map[string][][]byte // request id -> commitment lists
	codes []codes.Code
}

func (r *recorder) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	if r.delay > 0 {
		time.Sleep(r.delay)
		// A late signer still processes what it received, as a process
		// that resumes does: its nonce is spent even if nobody waits.
		ctx = context.WithoutCancel(ctx)
	}
	resp, err := r.Server.Sign(ctx, req)
	r.mu.Lock()
	r.lists[req.GetRequestId()] = append(r.lists[req.GetRequestId()], req.GetCommitmentList())
	r.codes = append(r.codes, status.Code(err))
	r.mu.Unlock()
	return resp, err
}

// Each attempt of a hedged mint sends commitments of its own: no signer
// is ever asked to sign with a commitment it already used (it would say
// ABORTED), and the attempts of one request carry different lists.
func TestHedgedAttemptsNeverShareCommitments(t *testing.T) {
	recs := map[uint16]*recorder{}
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		Wrap: func(id uint16, s *signer.Server) signv1.SignerServiceServer {
			r := &recorder{Server: s, lists: map[string][][]byte{}}
			if id == 1 {
				r.delay = 300 * time.Millisecond
			}
			recs[id] = r
			return r
		},
		Config: func(cc *coordinator.Config) {
			cc.HedgeAfter = coordinator.Duration(30 * time.Millisecond)
			// In one process every signer's FROST work takes turns under
			// one lock: on a busy machine under -race, a second is short.
			cc.SignTimeout = coordinator.Duration(10 * time.Second)
			cc.Limits = limit.Config{}
		},
	})
	v := verifierFor(t, c, "aud")
	cl := c.Client(t)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			resp, err := cl.Mint(context.Background(), "aud", []string{"read"}, 0)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := v.Verify(context.Background(), resp.GetToken(), "read"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	time.Sleep(400 * time.Millisecond) // the late signer finishes what it was sent
	perRequest := map[string][][]byte{}
	for id, r := range recs {
		r.mu.Lock()
		for _, code := range r.codes {
			if code == codes.Aborted {
				t.Errorf("signer %d was sent a commitment it had already used", id)
			}
		}
		for rid, ls := range r.lists {
			perRequest[rid] = append(perRequest[rid], ls...)
		}
		r.mu.Unlock()
	}
	recs[1].mu.Lock()
	late := len(recs[1].codes)
	recs[1].mu.Unlock()
	if late == 0 {
		t.Skip("the late signer was never asked") // pools are ordered; unlikely
	}
	hedged := 0
	for rid, ls := range perRequest {
		distinct := map[string]int{}
		for _, l := range ls {
			distinct[string(l)]++
		}
		// One list per attempt, sent to both of its members.
		for _, n := range distinct {
			if n > 2 {
				t.Errorf("request %s: one commitment list sent %d times", rid, n)
			}
		}
		if len(distinct) > 1 {
			hedged++
		}
	}
	if hedged == 0 {
		t.Fatal("no mint was hedged around the late signer")
	}
	t.Logf("%d of %d mints hedged around the late signer", hedged, len(perRequest))
}

func TestHedgeAfterConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hedge, sign time.Duration
		ok          bool
	}{
		{"default", coordinator.DefaultHedgeAfter, 2 * time.Second, true},
		{"off", 0, 2 * time.Second, true},
		{"negative", -time.Millisecond, 2 * time.Second, false},
		{"equal to sign_timeout", time.Second, time.Second, false},
		{"above sign_timeout", 3 * time.Second, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := coordinator.Default()
			c.HedgeAfter, c.SignTimeout = coordinator.Duration(tc.hedge), coordinator.Duration(tc.sign)
			err := c.Validate()
			if err == nil {
				t.Fatal("an empty config validated")
			}
			if mentions := strings.Contains(err.Error(), "hedge_after"); mentions == tc.ok {
				t.Fatalf("hedge_after %s with sign_timeout %s: %v", tc.hedge, tc.sign, err)
			}
		})
	}
	if coordinator.Default().HedgeAfter != coordinator.Duration(coordinator.DefaultHedgeAfter) {
		t.Fatal("the default config does not hedge")
	}
}

// A signer that dies takes its nonces with it: the first call that finds
// it unreachable (a mint's Sign, a refill's Commit) drops its pooled
// commitments, so that none is ever sent to the process that replaces it —
// even when the coordinator's periodic health check has not seen the
// restart yet and that signer is needed at once.
func TestRestartedSignerNeverGetsOldCommitments(t *testing.T) {
	clock := newManualClock()
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		Config: func(cc *coordinator.Config) {
			cc.SignTimeout = coordinator.Duration(10 * time.Second) // a busy machine is not the point
			cc.Limits = limit.Config{}
		},
		// The periodic health check (every 2 s) never comes round.
		CoordinatorOptions: []coordinator.Option{coordinator.WithClock(clock.now)},
	})
	cl := c.Client(t)
	healthy := func(id uint32) bool {
		st, err := cl.Status(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.GetSigners() {
			if s.GetId() == id {
				return s.GetHealthy()
			}
		}
		return false
	}
	for i := 0; i < 3; i++ {
		if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	c.StopSigner(3)
	// Mint until a mint has asked signer 3 and found it gone.
	for i := 0; healthy(3); i++ {
		if i == 20 {
			t.Fatal("signer 3 was never asked")
		}
		if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
			t.Fatalf("one signer down: %v", err)
		}
	}
	c.StartSigner(t, 3) // a new process: a new boot id, none of the old nonces
	// Let the coordinator's connection get past its reconnect backoff (at
	// most 1 s); signer 3 is left alone meanwhile (its retry time is in
	// the coordinator's future).
	time.Sleep(1500 * time.Millisecond)
	c.StopSigner(1) // now every quorum needs signer 3
	clock.advance(time.Second)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatalf("with signer 3 restarted and signer 1 down: %v", err)
	}
	recs, err := audit.ReadAll(c.Signers[3].Config.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Code == "stale_commitment" {
			t.Fatalf("signer 3 was sent a commitment of its previous process (request %s)", r.RequestID)
		}
	}
}
