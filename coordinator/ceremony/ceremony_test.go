package ceremony_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
	"github.com/frostmint/frostmint/signer/frost"
)

// recorder collects progress events.
type recorder struct {
	mu     sync.Mutex
	events []relay.Event
}

func (r *recorder) add(e relay.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count(k ceremonyv1.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func TestCeremony(t *testing.T) {
	for _, tc := range []struct{ th, n uint16 }{{2, 3}, {3, 5}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.th, tc.n), func(t *testing.T) {
			logs := &lockedBuffer{}
			c := ceremonytest.Start(t, ceremonytest.Options{N: int(tc.n), Log: logs})
			var rec recorder
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := c.Relay(t, 20*time.Second).Run(ctx, c.Participants(t), tc.th, rec.add)
			if err != nil {
				t.Fatal(err)
			}
			for kind, want := range map[ceremonyv1.EventKind]int{
				ceremonyv1.EventKind_EVENT_KIND_STARTED: 1, ceremonyv1.EventKind_EVENT_KIND_ROUND1: int(tc.n),
				ceremonyv1.EventKind_EVENT_KIND_ROUND2: int(tc.n), ceremonyv1.EventKind_EVENT_KIND_FINISHED: int(tc.n),
				ceremonyv1.EventKind_EVENT_KIND_COMMITTED: int(tc.n), ceremonyv1.EventKind_EVENT_KIND_DONE: 1,
				ceremonyv1.EventKind_EVENT_KIND_ABORTED: 0,
			} {
				if got := rec.count(kind); got != want {
					t.Errorf("%v events: %d, want %d", kind, got, want)
				}
			}
			group, err := frost.NewGroup(res.Group)
			if err != nil {
				t.Fatal(err)
			}
			var secrets [][]byte
			signers := map[uint16]*frost.Signer{}
			for id, m := range c.Members {
				dir := filepath.Join(m.KeysDir, res.Kid)
				g, err := frost.ReadGroupFile(filepath.Join(dir, sceremony.GroupFile))
				if err != nil {
					t.Fatal(err)
				}
				pub := g.Public()
				if !bytes.Equal(pub.PublicKey, res.Group.PublicKey) || pub.Threshold != tc.th || pub.MaxSigners != tc.n {
					t.Fatalf("participant %d wrote another group", id)
				}
				for sid, s := range res.Group.Shares {
					if !bytes.Equal(pub.Shares[sid], s) {
						t.Fatalf("participant %d: public share %d differs", id, sid)
					}
				}
				tr, err := os.ReadFile(filepath.Join(dir, sceremony.TranscriptFile))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(tr, res.Transcript) {
					t.Fatalf("participant %d's transcript differs from the relay's", id)
				}
				if _, err := sceremony.VerifyDir(dir, c.Roots); err != nil {
					t.Fatal(err)
				}
				sealed, err := os.ReadFile(filepath.Join(dir, sceremony.ShareFile))
				if err != nil {
					t.Fatal(err)
				}
				secret, err := m.Sealer.Unseal(sealed, fmt.Sprintf("frostmint-share-%d@%s", id, res.Kid))
				if err != nil {
					t.Fatalf("participant %d's share does not unseal: %v", id, err)
				}
				secrets = append(secrets, secret)
				s, err := frost.NewSigner(group, secret, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				signers[id] = s
			}
			// A real FROST signature by t of them, checked with crypto/ed25519.
			ids := make([]uint16, 0, len(signers))
			for id := range signers {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, quorum := range [][]uint16{ids[:tc.th], ids[len(ids)-int(tc.th):]} {
				msg := fmt.Appendf(nil, "signed by %v", quorum)
				sig := frostSign(t, group, signers, quorum, msg)
				if !ed25519.Verify(res.Group.PublicKey, msg, sig) {
					t.Fatalf("quorum %v: signature does not verify", quorum)
				}
			}
			// No log line and no file anywhere holds a share in plain text.
			for i, s := range secrets {
				for _, form := range plainForms(s) {
					if bytes.Contains(logs.Bytes(), form) {
						t.Fatalf("share %d is in the logs", i)
					}
				}
			}
			if len(logs.Bytes()) == 0 {
				t.Fatal("no logs captured")
			}
			for _, f := range c.Files(t) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range secrets {
					for _, form := range plainForms(s) {
						if bytes.Contains(b, form) {
							t.Fatalf("%s holds share %d in plain text", f, i)
						}
					}
				}
			}
		})
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// plainForms are the ways a secret share could leak into a file: its
// encoding, and the secret scalar alone (in the encoding, the 32 bytes
// before the trailing 32-byte group key), raw, hex or base64.
func plainForms(s []byte) [][]byte {
	scalar := s[len(s)-64 : len(s)-32]
	var out [][]byte
	for _, v := range [][]byte{s, scalar} {
		out = append(out, v, []byte(hex.EncodeToString(v)))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			out = append(out, []byte(enc.EncodeToString(v)))
		}
	}
	return out
}

func frostSign(t *testing.T, g *frost.Group, signers map[uint16]*frost.Signer, quorum []uint16, msg []byte) []byte {
	t.Helper()
	var cs []frost.Commitment
	for _, id := range quorum {
		enc, err := signers[id].Commit(1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.DecodeCommitment(enc[0])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	list, err := g.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	var shares []frost.Share
	for _, id := range quorum {
		s, err := signers[id].Sign(msg, list)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, frost.Share{SignerID: id, Encoded: s})
	}
	sig, err := g.Aggregate(msg, cs, shares)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// tamper wraps a participant: the relay's messages to it (after the
// relay's own checks) pass through the edit functions, as a malicious
// relay would alter them.
type tamper struct {
	relay.Participant
	begin    func(*ceremonyv1.BeginRequest)
	exchange func(*ceremonyv1.ExchangeRequest)
	finish   func(*ceremonyv1.FinishRequest)
	commit   func(*ceremonyv1.CommitRequest)
	block    chan struct{} // if set, Exchange waits for it (or the context)
}

func (w *tamper) Begin(ctx context.Context, r *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	if w.begin != nil {
		r = proto.Clone(r).(*ceremonyv1.BeginRequest)
		w.begin(r)
	}
	return w.Participant.Begin(ctx, r)
}

func (w *tamper) Exchange(ctx context.Context, r *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if w.exchange != nil {
		r = proto.Clone(r).(*ceremonyv1.ExchangeRequest)
		w.exchange(r)
	}
	return w.Participant.Exchange(ctx, r)
}

func (w *tamper) Finish(ctx context.Context, r *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	if w.finish != nil {
		r = proto.Clone(r).(*ceremonyv1.FinishRequest)
		w.finish(r)
	}
	return w.Participant.Finish(ctx, r)
}

func (w *tamper) Commit(ctx context.Context, r *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	if w.commit != nil {
		r = proto.Clone(r).(*ceremonyv1.CommitRequest)
		w.commit(r)
	}
	return w.Participant.Commit(ctx, r)
}

// keysWritten lists what the members wrote into their keys directories.
func keysWritten(t *testing.T, c *ceremonytest.Cluster) []string {
	t.Helper()
	var out []string
	for _, m := range c.Members {
		es, err := os.ReadDir(m.KeysDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, filepath.Join(m.KeysDir, e.Name()))
		}
	}
	return out
}

func waitIdle(t *testing.T, c *ceremonytest.Cluster) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := 0
		for _, m := range c.Members {
			busy += m.Participant.InProgress()
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ceremonies still held after the abort", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRelayTampering alters messages between the relay and participant 2:
// participant 2 detects it, the ceremony aborts naming the relay, and
// nothing is written anywhere.
func TestRelayTampering(t *testing.T) {
	tests := []struct {
		name  string
		wrap  func(w *tamper)
		stage string
		fault ceremonyv1.Fault
	}{
		{"ciphertext altered", func(w *tamper) {
			w.finish = func(r *ceremonyv1.FinishRequest) {
				b := r.Envelopes[1].Body
				b[len(b)-3] ^= 0x40
			}
		}, "finish", ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"ciphertexts swapped", func(w *tamper) {
			w.finish = func(r *ceremonyv1.FinishRequest) { r.Envelopes[0], r.Envelopes[1] = r.Envelopes[1], r.Envelopes[0] }
		}, "finish", ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"roster swapped", func(w *tamper) {
			w.begin = func(r *ceremonyv1.BeginRequest) {
				r.Roster[1].Identity, r.Roster[2].Identity = r.Roster[2].Identity, r.Roster[1].Identity
			}
		}, "begin", ceremonyv1.Fault_FAULT_WRONG_IDENTITY},
		{"relay put itself in the roster", func(w *tamper) {
			w.begin = func(r *ceremonyv1.BeginRequest) { r.Roster[1].Identity = ceremonytest.CoordinatorID }
		}, "begin", ceremonyv1.Fault_FAULT_WRONG_IDENTITY},
		{"round-1 package altered", func(w *tamper) {
			w.exchange = func(r *ceremonyv1.ExchangeRequest) { r.Packages[0].Body[7] ^= 1 }
		}, "exchange", ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"round-1 packages reordered", func(w *tamper) {
			w.exchange = func(r *ceremonyv1.ExchangeRequest) { r.Packages[0], r.Packages[2] = r.Packages[2], r.Packages[0] }
		}, "exchange", ceremonyv1.Fault_FAULT_WRONG_IDENTITY},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
			parts := c.Participants(t)
			w := &tamper{Participant: parts[2]}
			tc.wrap(w)
			parts[2] = w
			var rec recorder
			_, err := c.Relay(t, 20*time.Second).Run(context.Background(), parts, 2, rec.add)
			var ce *sceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != sceremony.Relay || ce.Reporter != 2 || ce.Fault != tc.fault {
				t.Fatalf("got %v, want the relay blamed by participant 2 for %v", err, tc.fault)
			}
			var ae *relay.AbortError
			if !errors.As(err, &ae) || ae.Stage != tc.stage || ae.Participant != 2 {
				t.Fatalf("got %v, want an abort at %s by participant 2", err, tc.stage)
			}
			if rec.count(ceremonyv1.EventKind_EVENT_KIND_ABORTED) != 1 || rec.count(ceremonyv1.EventKind_EVENT_KIND_DONE) != 0 {
				t.Fatal("no ABORTED event")
			}
			if w := keysWritten(t, c); len(w) != 0 {
				t.Fatalf("written: %v", w)
			}
			waitIdle(t, c)
		})
	}
}

// TestRelayTamperingAtCommit: once participants hold every signature, a
// relay that alters one participant's commit can split the outcome (the
// others committed), but the one it tampered with writes nothing and the
// relay is named.
func TestRelayTamperingAtCommit(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	parts := c.Participants(t)
	parts[3] = &tamper{Participant: parts[3], commit: func(r *ceremonyv1.CommitRequest) { r.Signatures[0].Signature[4] ^= 1 }}
	_, err := c.Relay(t, 20*time.Second).Run(context.Background(), parts, 2, nil)
	var ce *sceremony.CheatError
	var ae *relay.AbortError
	if !errors.As(err, &ce) || ce.Culprit != sceremony.Relay || ce.Reporter != 3 || !errors.As(err, &ae) {
		t.Fatalf("got %v", err)
	}
	if !slices.Equal(ae.Committed, []uint16{1, 2}) {
		t.Fatalf("committed %v, want [1 2]", ae.Committed)
	}
	if es, _ := os.ReadDir(c.Members[3].KeysDir); len(es) != 0 {
		t.Fatal("participant 3 wrote despite the bad signature")
	}
}

func TestRoundTimeout(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	parts := c.Participants(t)
	parts[3] = &tamper{Participant: parts[3], block: make(chan struct{})}
	start := time.Now()
	_, err := c.Relay(t, 500*time.Millisecond).Run(context.Background(), parts, 2, nil)
	var ae *relay.AbortError
	if !errors.As(err, &ae) || ae.Stage != "exchange" || ae.Participant != 3 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want participant 3 timing out at exchange", err)
	}
	var ce *sceremony.CheatError
	if errors.As(err, &ce) {
		t.Fatalf("a silent participant is not a cheater: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	waitIdle(t, c)
	if w := keysWritten(t, c); len(w) != 0 {
		t.Fatalf("written: %v", w)
	}
}

func TestOperatorLeaves(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	parts := c.Participants(t)
	block := make(chan struct{})
	parts[1] = &tamper{Participant: parts[1], block: block}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err := c.Relay(t, 20*time.Second).Run(ctx, parts, 2, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the ceremony cancelled", err)
	}
	waitIdle(t, c)
}

func TestRunRefusesParameters(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	parts := c.Participants(t)
	r := c.Relay(t, time.Second)
	gap := map[uint16]relay.Participant{1: parts[1], 2: parts[2], 4: parts[3]}
	dup := map[uint16]relay.Participant{1: parts[1], 2: parts[2], 3: &tamper{Participant: parts[2]}}
	for _, tc := range []struct {
		name  string
		parts map[uint16]relay.Participant
		t     uint16
	}{
		{"threshold 1", parts, 1},
		{"threshold above n", parts, 4},
		{"ids not 1..n", gap, 2},
		{"identity twice", dup, 2},
		{"one participant", map[uint16]relay.Participant{1: parts[1]}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			if _, err := r.Run(context.Background(), tc.parts, tc.t, rec.add); !errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if len(rec.events) != 0 {
				t.Fatal("a refused ceremony reported progress")
			}
		})
	}
	if _, err := relay.NewRelay(relay.Config{}); err == nil {
		t.Fatal("a relay without roots was accepted")
	}
}

// liar is a participant that, at one stage, answers with a blame of its
// choosing instead of taking part.
type liar struct {
	relay.Participant
	stage string
	blame *sceremony.CheatError
}

func (l *liar) lie(stage string) error {
	if stage != l.stage {
		return nil
	}
	b := *l.blame
	return &b
}

func (l *liar) Begin(ctx context.Context, r *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	if err := l.lie("begin"); err != nil {
		return nil, err
	}
	return l.Participant.Begin(ctx, r)
}

func (l *liar) Exchange(ctx context.Context, r *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	if err := l.lie("exchange"); err != nil {
		return nil, err
	}
	return l.Participant.Exchange(ctx, r)
}

func (l *liar) Finish(ctx context.Context, r *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	if err := l.lie("finish"); err != nil {
		return nil, err
	}
	return l.Participant.Finish(ctx, r)
}

// TestParticipantBlameJudged: the relay names as reporter the participant
// it heard a blame from, whatever the blame says, and a participant that
// blames a peer for what only the relay could have let through (a public
// fault it checked), or at a stage where it cannot judge it, is blamed
// itself.
func TestParticipantBlameJudged(t *testing.T) {
	const (
		attestation = ceremonyv1.Fault_FAULT_ATTESTATION
		badShare    = ceremonyv1.Fault_FAULT_BAD_SHARE
		ciphertext  = ceremonyv1.Fault_FAULT_BAD_CIPHERTEXT
		badSig      = ceremonyv1.Fault_FAULT_BAD_SIGNATURE
		mismatch    = ceremonyv1.Fault_FAULT_MISMATCH
	)
	for _, tc := range []struct {
		name              string
		stage             string
		claim             sceremony.CheatError
		culprit, reporter uint16
		fault             ceremonyv1.Fault
	}{
		{"share blamed on a peer at finish", "finish", sceremony.CheatError{Culprit: 3, Reporter: 1, Fault: badShare}, 3, 1, badShare},
		{"ciphertext blamed on a peer at finish", "finish", sceremony.CheatError{Culprit: 2, Reporter: 1, Fault: ciphertext}, 2, 1, ciphertext},
		{"attestation blamed on a peer at exchange", "exchange", sceremony.CheatError{Culprit: 3, Reporter: 1, Fault: attestation}, 3, 1, attestation},
		{"relay blamed", "exchange", sceremony.CheatError{Culprit: sceremony.Relay, Reporter: 1, Fault: badSig}, sceremony.Relay, 1, badSig},
		{"reporter forged as the relay", "finish", sceremony.CheatError{Culprit: 3, Reporter: sceremony.Relay, Fault: badShare}, 3, 1, badShare},
		{"reporter forged as a peer", "exchange", sceremony.CheatError{Culprit: sceremony.Relay, Reporter: 2, Fault: badSig}, sceremony.Relay, 1, badSig},
		{"public fault blamed on a peer", "finish", sceremony.CheatError{Culprit: 3, Reporter: 1, Fault: badSig}, 1, sceremony.Relay, mismatch},
		{"share blamed on a peer at begin", "begin", sceremony.CheatError{Culprit: 2, Reporter: 1, Fault: badShare}, 1, sceremony.Relay, mismatch},
		{"attestation blamed on a peer at finish", "finish", sceremony.CheatError{Culprit: 2, Reporter: 1, Fault: attestation}, 1, sceremony.Relay, mismatch},
		{"no such peer", "finish", sceremony.CheatError{Culprit: 9, Reporter: 1, Fault: badShare}, 1, sceremony.Relay, mismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
			parts := c.Participants(t)
			tc.claim.Reason = "made up"
			parts[1] = &liar{Participant: parts[1], stage: tc.stage, blame: &tc.claim}
			_, err := c.Relay(t, 20*time.Second).Run(context.Background(), parts, 2, nil)
			var ce *sceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != tc.culprit || ce.Reporter != tc.reporter || ce.Fault != tc.fault {
				t.Fatalf("got %v, want participant %d blamed for %v by %d", err, tc.culprit, tc.fault, tc.reporter)
			}
			var ae *relay.AbortError
			if !errors.As(err, &ae) || ae.Stage != tc.stage || ae.Participant != 1 {
				t.Fatalf("got %v, want an abort at %s by participant 1", err, tc.stage)
			}
			waitIdle(t, c)
		})
	}
}
