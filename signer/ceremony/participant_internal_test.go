package ceremony

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
)

func TestInProcessCeremony(t *testing.T) {
	var mu sync.Mutex
	committed := map[uint16]string{}
	u := newUnit(t, 2, 3, func(c *ParticipantConfig) {
		id := c.ID
		c.Committed = func(kid string) { mu.Lock(); committed[id] = kid; mu.Unlock() }
	})
	st := u.begin(t)
	u.exchange(t, st)
	u.finish(t, st)
	kid := u.commit(t, st)
	mu.Lock()
	if len(committed) != 3 || committed[1] != kid || committed[3] != kid {
		t.Fatalf("commit hook saw %v", committed)
	}
	mu.Unlock()
	var group *frost.Group
	for id, p := range u.ps {
		dir := filepath.Join(p.cfg.KeysDir, kid)
		g, err := frost.ReadGroupFile(filepath.Join(dir, GroupFile))
		if err != nil {
			t.Fatal(err)
		}
		if group == nil {
			group = g
		} else if !bytes.Equal(g.Public().PublicKey, group.Public().PublicKey) {
			t.Fatal("participants disagree on the group key")
		}
		if k, _ := jwks.KeyID(g.Public().PublicKey); k != kid {
			t.Fatalf("directory %s is not the group key's kid %s", kid, k)
		}
		sealed, err := os.ReadFile(filepath.Join(dir, ShareFile))
		if err != nil {
			t.Fatal(err)
		}
		secret, err := u.seal[id].Unseal(sealed, ShareLabel(id, kid))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.seal[id].Unseal(sealed, ShareLabel(id%3+1, kid)); err == nil {
			t.Fatal("the share unseals under another participant's label")
		}
		s, err := frost.NewSigner(g, secret, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		// The encoded share, and its secret scalar alone (the 32 bytes
		// before the trailing group key).
		for _, v := range [][]byte{secret, secret[len(secret)-64 : len(secret)-32]} {
			for _, form := range []string{string(v), hex.EncodeToString(v), base64.StdEncoding.EncodeToString(v),
				base64.RawURLEncoding.EncodeToString(v)} {
				if bytes.Contains(u.logs.Bytes(), []byte(form)) {
					t.Fatalf("participant %d's share is in the logs", id)
				}
			}
		}
		if _, err := VerifyDir(dir, p.me.roots); err != nil {
			t.Fatal(err)
		}
		// The outputs are a key epoch as package keydir reads them.
		if kids, err := keydir.List(p.cfg.KeysDir, true); err != nil || len(kids) != 1 || kids[0] != kid {
			t.Fatalf("keydir sees %v (%v)", kids, err)
		}
		if _, err := keydir.ReadGroup(p.cfg.KeysDir, kid); err != nil {
			t.Fatal(err)
		}
		if ShareLabel(id, kid) != keydir.Label(id, kid) {
			t.Fatal("the share label is not keydir's")
		}
		fi, err := os.Stat(filepath.Join(dir, ShareFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("share file mode %v, %v", fi.Mode(), err)
		}
		// Only the committed record stays, with no secret.
		p.mu.Lock()
		s0 := p.sessions[u.params.CeremonyID]
		p.mu.Unlock()
		s0.mu.Lock()
		if s0.share != nil || s0.box != nil || s0.dkg != nil || s0.stage != stageCommitted {
			t.Fatalf("participant %d keeps secrets after commit", id)
		}
		s0.mu.Unlock()
	}
	// Commit is idempotent, and only for the same transcript.
	resp, err := call(u.ps[1].Commit(context.Background(), &ceremonyv1.CommitRequest{CeremonyId: u.params.CeremonyID,
		TranscriptSha256: st.hash, Signatures: st.sigs}))
	if err != nil || resp.GetKid() != kid {
		t.Fatalf("second commit: %v %v", resp, err)
	}
	_, err = call(u.ps[1].Commit(context.Background(), &ceremonyv1.CommitRequest{CeremonyId: u.params.CeremonyID,
		TranscriptSha256: make([]byte, 32), Signatures: st.sigs}))
	if !errors.Is(err, ErrState) {
		t.Fatalf("commit of another transcript: %v", err)
	}
	// And it cannot be aborted any more.
	if _, err := call(u.ps[1].Abort(context.Background(), &ceremonyv1.AbortRequest{CeremonyId: u.params.CeremonyID})); !errors.Is(err, ErrState) {
		t.Fatalf("abort after commit: %v", err)
	}
}

func TestBeginRefuses(t *testing.T) {
	u := newUnit(t, 2, 3, nil)
	base := u.params
	tests := []struct {
		name    string
		edit    func(*ceremonyv1.BeginRequest)
		wantErr error
		culprit bool // a *CheatError naming the relay
	}{
		{"bad ceremony id", func(r *ceremonyv1.BeginRequest) { r.CeremonyId = "a/b" }, ErrInvalid, false},
		{"empty ceremony id", func(r *ceremonyv1.BeginRequest) { r.CeremonyId = "" }, ErrInvalid, false},
		{"threshold 1", func(r *ceremonyv1.BeginRequest) { r.Threshold = 1 }, ErrInvalid, false},
		{"threshold above n", func(r *ceremonyv1.BeginRequest) { r.Threshold = 4 }, ErrInvalid, false},
		{"huge n", func(r *ceremonyv1.BeginRequest) { r.MaxSigners = 1 << 20 }, ErrInvalid, false},
		{"roster short", func(r *ceremonyv1.BeginRequest) { r.Roster = r.Roster[:2] }, ErrInvalid, false},
		{"roster duplicate identity", func(r *ceremonyv1.BeginRequest) { r.Roster[2].Identity = r.Roster[1].Identity }, ErrInvalid, false},
		{"roster not spiffe", func(r *ceremonyv1.BeginRequest) { r.Roster[2].Identity = "https://x" }, ErrInvalid, false},
		{"no start time", func(r *ceremonyv1.BeginRequest) { r.StartedAt = nil }, ErrInvalid, false},
		{"start time far off", func(r *ceremonyv1.BeginRequest) {
			r.StartedAt = timestamppb.New(base.StartedAt.Add(-time.Hour))
		}, ErrInvalid, false},
		{"roster swaps this participant", func(r *ceremonyv1.BeginRequest) {
			r.Roster[0].Identity, r.Roster[1].Identity = r.Roster[1].Identity, r.Roster[0].Identity
		}, nil, true},
		{"roster names the coordinator for this participant", func(r *ceremonyv1.BeginRequest) {
			r.Roster[0].Identity = testDomain + "/coordinator"
		}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := base.BeginRequest()
			tc.edit(req)
			_, err := call(u.ps[1].Begin(context.Background(), req))
			if tc.culprit {
				var ce *CheatError
				if !errors.As(err, &ce) || ce.Culprit != Relay || ce.Reporter != 1 {
					t.Fatalf("got %v, want the relay blamed by participant 1", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if u.ps[1].InProgress() != 0 {
				t.Fatal("a refused ceremony was kept")
			}
		})
	}
	// A ceremony id begun twice.
	if _, err := call(u.ps[1].Begin(context.Background(), base.BeginRequest())); err != nil {
		t.Fatal(err)
	}
	if _, err := call(u.ps[1].Begin(context.Background(), base.BeginRequest())); !errors.Is(err, ErrState) {
		t.Fatalf("second begin: %v", err)
	}
}

func TestOutOfOrder(t *testing.T) {
	u := newUnit(t, 2, 2, nil)
	ctx := context.Background()
	id := u.params.CeremonyID
	if _, err := call(u.ps[1].Exchange(ctx, &ceremonyv1.ExchangeRequest{CeremonyId: id})); !errors.Is(err, ErrUnknown) {
		t.Fatalf("exchange before begin: %v", err)
	}
	st := u.begin(t)
	if _, err := call(u.ps[1].Finish(ctx, &ceremonyv1.FinishRequest{CeremonyId: id})); !errors.Is(err, ErrState) {
		t.Fatalf("finish before exchange: %v", err)
	}
	if _, err := call(u.ps[1].Commit(ctx, &ceremonyv1.CommitRequest{CeremonyId: id})); !errors.Is(err, ErrState) {
		t.Fatalf("commit before finish: %v", err)
	}
	u.exchange(t, st)
	if _, err := call(u.ps[1].Exchange(ctx, &ceremonyv1.ExchangeRequest{CeremonyId: id, Packages: u.packages(st)})); !errors.Is(err, ErrState) {
		t.Fatalf("exchange twice: %v", err)
	}
}

func TestBusy(t *testing.T) {
	u := newUnit(t, 2, 2, func(c *ParticipantConfig) { c.MaxCeremonies = 1 })
	if _, err := call(u.ps[1].Begin(context.Background(), u.params.BeginRequest())); err != nil {
		t.Fatal(err)
	}
	other := u.params
	other.CeremonyID = "second"
	if _, err := call(u.ps[1].Begin(context.Background(), other.BeginRequest())); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
}

func TestExpiry(t *testing.T) {
	t.Run("by the clock", func(t *testing.T) {
		u := newUnit(t, 2, 2, func(c *ParticipantConfig) { c.TTL = time.Minute })
		st := u.begin(t)
		s := u.session(t, 1)
		box := s.box
		u.clock.Add(time.Minute)
		if n := u.ps[1].Sweep(); n != 1 {
			t.Fatalf("swept %d", n)
		}
		if !allZero(box) {
			t.Fatal("the box key was not wiped")
		}
		_, err := call(u.ps[1].Exchange(context.Background(), &ceremonyv1.ExchangeRequest{CeremonyId: u.params.CeremonyID, Packages: u.packages(st)}))
		if !errors.Is(err, ErrUnknown) {
			t.Fatalf("exchange after expiry: %v", err)
		}
	})
	t.Run("in real time", func(t *testing.T) {
		u := newUnit(t, 2, 2, func(c *ParticipantConfig) { c.TTL = 50 * time.Millisecond })
		u.begin(t)
		deadline := time.Now().Add(5 * time.Second)
		for u.ps[1].InProgress() != 0 || u.ps[2].InProgress() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("an abandoned ceremony was never wiped")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func (u *unit) session(t testing.TB, id uint16) *session {
	t.Helper()
	p := u.ps[id]
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sessions[u.params.CeremonyID]
	if s == nil {
		t.Fatalf("participant %d holds no session", id)
	}
	return s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

func TestAbortWipes(t *testing.T) {
	u := newUnit(t, 2, 3, nil)
	ctx := context.Background()
	if _, err := call(u.ps[1].Abort(ctx, &ceremonyv1.AbortRequest{CeremonyId: "never-begun"})); err != nil {
		t.Fatalf("abort of an unknown ceremony: %v", err)
	}
	st := u.begin(t)
	u.exchange(t, st)
	s := u.session(t, 2)
	box := s.box
	if _, err := call(u.ps[2].Abort(ctx, &ceremonyv1.AbortRequest{CeremonyId: u.params.CeremonyID, Reason: "test"})); err != nil {
		t.Fatal(err)
	}
	if !allZero(box) || u.ps[2].InProgress() != 0 {
		t.Fatal("abort left secrets behind")
	}
	if _, err := call(u.ps[2].Finish(ctx, &ceremonyv1.FinishRequest{CeremonyId: u.params.CeremonyID, Envelopes: st.inbox[2]})); !errors.Is(err, ErrUnknown) {
		t.Fatalf("finish after abort: %v", err)
	}
}

// TestAbortOvertakesBegin: the relay aborts while a Begin is still in
// flight, and the abort arrives first. The late Begin is refused (and its
// id stays refused after a re-abort), so nothing is held until the
// ceremony's timeout; the tombstone ends with the ceremony's time.
func TestAbortOvertakesBegin(t *testing.T) {
	u := newUnit(t, 2, 3, func(c *ParticipantConfig) { c.TTL = time.Minute; c.MaxClockSkew = time.Minute })
	ctx := context.Background()
	if _, err := call(u.ps[1].Abort(ctx, &ceremonyv1.AbortRequest{CeremonyId: u.params.CeremonyID})); err != nil {
		t.Fatal(err)
	}
	if _, err := call(u.ps[1].Begin(ctx, u.params.BeginRequest())); !errors.Is(err, ErrState) {
		t.Fatalf("begin after abort: got %v, want ErrState", err)
	}
	if u.ps[1].InProgress() != 0 {
		t.Fatal("a ceremony aborted before its Begin is held")
	}
	// Another participant, aborted after its Begin, refuses a replayed Begin.
	if _, err := call(u.ps[2].Begin(ctx, u.params.BeginRequest())); err != nil {
		t.Fatal(err)
	}
	if _, err := call(u.ps[2].Abort(ctx, &ceremonyv1.AbortRequest{CeremonyId: u.params.CeremonyID})); err != nil {
		t.Fatal(err)
	}
	if _, err := call(u.ps[2].Begin(ctx, u.params.BeginRequest())); !errors.Is(err, ErrState) {
		t.Fatalf("begin replayed after abort: got %v, want ErrState", err)
	}
	// Once a Begin that old would be refused anyway, the id is forgotten.
	u.clock.Add(3*time.Minute + time.Second)
	u.ps[1].tombstone("another")
	u.ps[1].mu.Lock()
	_, kept := u.ps[1].aborted[u.params.CeremonyID]
	u.ps[1].mu.Unlock()
	if kept {
		t.Fatal("an expired tombstone was kept")
	}
}

func TestTombstonesBounded(t *testing.T) {
	u := newUnit(t, 2, 2, nil)
	for i := range maxAborted + 10 {
		u.ps[1].tombstone(fmt.Sprintf("c%d", i))
		u.clock.Add(time.Millisecond)
	}
	u.ps[1].mu.Lock()
	n := len(u.ps[1].aborted)
	_, oldest := u.ps[1].aborted["c0"]
	_, newest := u.ps[1].aborted[fmt.Sprintf("c%d", maxAborted+9)]
	u.ps[1].mu.Unlock()
	if n != maxAborted || oldest || !newest {
		t.Fatalf("%d tombstones (oldest kept %v, newest kept %v), want %d, the oldest forgotten", n, oldest, newest, maxAborted)
	}
}

func TestCommitRefusesExistingKey(t *testing.T) {
	u := newUnit(t, 2, 2, nil)
	st := u.begin(t)
	u.exchange(t, st)
	u.finish(t, st)
	pub, err := frost.PublicGroupFromRound1(2, 2, st.set.DKGMessages())
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := jwks.KeyID(pub.PublicKey)
	existing := filepath.Join(u.ps[2].cfg.KeysDir, kid)
	if err := os.Mkdir(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	req := &ceremonyv1.CommitRequest{CeremonyId: u.params.CeremonyID, TranscriptSha256: st.hash, Signatures: st.sigs}
	if _, err := call(u.ps[2].Commit(context.Background(), req)); !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if es, _ := os.ReadDir(existing); len(es) != 0 {
		t.Fatal("the existing directory was written into")
	}
	if es, _ := os.ReadDir(u.ps[2].cfg.KeysDir); len(es) != 1 {
		t.Fatalf("leftovers in the keys directory: %v", es)
	}
	if _, err := call(u.ps[1].Commit(context.Background(), req)); err != nil {
		t.Fatal(err)
	}
}

func TestParticipantBlamesRelay(t *testing.T) {
	tests := []struct {
		name  string
		step  string
		edit  func(u *unit, st *state, req proto.Message)
		fault ceremonyv1.Fault
	}{
		{"own package altered", "exchange", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.ExchangeRequest)
			r.Packages[0] = proto.Clone(r.Packages[0]).(*ceremonyv1.Round1Package)
			r.Packages[0].Signature[3] ^= 1
		}, ceremonyv1.Fault_FAULT_MISMATCH},
		{"peer package body altered", "exchange", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.ExchangeRequest)
			r.Packages[1] = proto.Clone(r.Packages[1]).(*ceremonyv1.Round1Package)
			r.Packages[1].Body[len(r.Packages[1].Body)-1] ^= 1
		}, ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"packages out of order", "exchange", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.ExchangeRequest)
			r.Packages[1], r.Packages[2] = r.Packages[2], r.Packages[1]
		}, ceremonyv1.Fault_FAULT_WRONG_IDENTITY},
		{"package from another ceremony", "exchange", func(u *unit, st *state, m proto.Message) {
			other := u.params
			other.CeremonyID = "another"
			resp, err := call(u.ps[3].Begin(context.Background(), other.BeginRequest()))
			if err != nil {
				panic(err)
			}
			m.(*ceremonyv1.ExchangeRequest).Packages[2] = resp.GetPackage()
		}, ceremonyv1.Fault_FAULT_MISMATCH},
		{"a package missing", "exchange", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.ExchangeRequest)
			r.Packages = r.Packages[:2]
		}, ceremonyv1.Fault_FAULT_MALFORMED},
		{"ciphertext altered", "finish", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.FinishRequest)
			r.Envelopes[0] = proto.Clone(r.Envelopes[0]).(*ceremonyv1.Round2Envelope)
			r.Envelopes[0].Body[len(r.Envelopes[0].Body)-1] ^= 1
		}, ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"envelopes swapped", "finish", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.FinishRequest)
			r.Envelopes[0], r.Envelopes[1] = r.Envelopes[1], r.Envelopes[0]
		}, ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"envelope for another recipient", "finish", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.FinishRequest)
			r.Envelopes[1] = st.inbox[2][1] // 3→2 instead of 3→1
		}, ceremonyv1.Fault_FAULT_MISMATCH},
		{"transcript signature altered", "commit", func(u *unit, st *state, m proto.Message) {
			r := m.(*ceremonyv1.CommitRequest)
			r.Signatures[2] = proto.Clone(r.Signatures[2]).(*ceremonyv1.TranscriptSignature)
			r.Signatures[2].Signature[5] ^= 1
		}, ceremonyv1.Fault_FAULT_BAD_SIGNATURE},
		{"another transcript", "commit", func(u *unit, st *state, m proto.Message) {
			m.(*ceremonyv1.CommitRequest).TranscriptSha256 = make([]byte, 32)
		}, ceremonyv1.Fault_FAULT_MISMATCH},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnit(t, 2, 3, nil)
			st := u.begin(t)
			ctx := context.Background()
			var err error
			switch tc.step {
			case "exchange":
				req := &ceremonyv1.ExchangeRequest{CeremonyId: u.params.CeremonyID, Packages: u.packages(st)}
				tc.edit(u, st, req)
				_, err = call(u.ps[1].Exchange(ctx, req))
			case "finish":
				u.exchange(t, st)
				req := &ceremonyv1.FinishRequest{CeremonyId: u.params.CeremonyID, Envelopes: append([]*ceremonyv1.Round2Envelope(nil), st.inbox[1]...)}
				tc.edit(u, st, req)
				_, err = call(u.ps[1].Finish(ctx, req))
			case "commit":
				u.exchange(t, st)
				u.finish(t, st)
				req := &ceremonyv1.CommitRequest{CeremonyId: u.params.CeremonyID, TranscriptSha256: st.hash,
					Signatures: append([]*ceremonyv1.TranscriptSignature(nil), st.sigs...)}
				tc.edit(u, st, req)
				_, err = call(u.ps[1].Commit(ctx, req))
			}
			var ce *CheatError
			if !errors.As(err, &ce) || ce.Culprit != Relay || ce.Reporter != 1 || ce.Fault != tc.fault {
				t.Fatalf("got %v, want the relay blamed by participant 1 for %v", err, tc.fault)
			}
			if u.ps[1].InProgress() != 0 {
				t.Fatal("the ceremony survived detected cheating")
			}
			if w := u.written(t); len(w) != 0 {
				t.Fatalf("written: %v", w)
			}
		})
	}
}

func TestNewParticipantRefuses(t *testing.T) {
	u := newUnit(t, 2, 2, nil)
	good := u.ps[1].cfg
	tests := []struct {
		name string
		edit func(*ParticipantConfig)
	}{
		{"id 0", func(c *ParticipantConfig) { c.ID = 0 }},
		{"no sealer", func(c *ParticipantConfig) { c.Sealer = nil }},
		{"no keys dir", func(c *ParticipantConfig) { c.KeysDir = "" }},
		{"missing key", func(c *ParticipantConfig) { c.TLS.Key = filepath.Join(u.dir, "nope.key") }},
		{"key of another certificate", func(c *ParticipantConfig) { c.TLS.Key = u.files[2].Key }},
		{"no CA", func(c *ParticipantConfig) { c.TLS.CA = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := NewParticipant(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzParamsFromBegin feeds arbitrary Begin requests to the parameter
// checks: nothing may panic, and accepted parameters are valid.
func FuzzParamsFromBegin(f *testing.F) {
	u := newUnit(f, 2, 3, nil)
	good, _ := proto.Marshal(u.params.BeginRequest())
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ceremonyv1.BeginRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		p, err := ParamsFromBegin(&req)
		if err != nil {
			return
		}
		if p.Validate() != nil || len(p.Roster) != int(p.MaxSigners) {
			t.Fatalf("accepted invalid parameters %+v", p)
		}
	})
}

// FuzzEnvelope feeds arbitrary round-2 envelopes from participant 2 to
// participant 1's checks and decryption: nothing may panic, and only the
// genuine body may ever decrypt.
func FuzzEnvelope(f *testing.F) {
	u := newUnit(f, 2, 2, nil)
	st := u.begin(f)
	u.exchange(f, st)
	genuine := st.inbox[1][0]
	f.Add(genuine.GetBody(), genuine.GetSignature())
	f.Add(genuine.GetBody()[:10], genuine.GetSignature())
	f.Add([]byte{}, []byte{})
	s := u.session(f, 1)
	f.Fuzz(func(t *testing.T, body, sig []byte) {
		b, err := VerifyEnvelope(&ceremonyv1.Round2Envelope{Body: body, Signature: sig}, st.set[2], 1, u.params, st.digest)
		if err != nil {
			var ce *CheatError
			if !errors.As(err, &ce) || ce.Culprit != 2 {
				t.Fatalf("unattributed error %v", err)
			}
			return
		}
		msg, err := open(s.box, st.set[2].BoxKey, s.boxPub, u.params, 2, 1, st.digest, b)
		if err != nil {
			return
		}
		wipe(msg)
		if !bytes.Equal(body, genuine.GetBody()) {
			t.Fatal("a body other than the genuine one decrypted")
		}
	})
}

// TestIdentityFollowsRotation: a participant signs with the certificate
// its files hold at Begin, as its mTLS server does after a rotation, and
// keeps that identity for the whole ceremony, even when another Begin
// loads a newer one mid-way.
func TestIdentityFollowsRotation(t *testing.T) {
	ca, err := mtls.NewDevCA("unit CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(dir string, id uint16) (mtls.Files, error) {
		return ca.Issue(dir, fmt.Sprintf("signer-%d", id), mtls.Leaf{ID: testID(id), Lifetime: time.Hour})
	}
	u := newUnitIssued(t, 2, 2, issue, nil)
	first := Chain(u.ps[1])[0]
	if _, err := issue(u.dir, 1); err != nil {
		t.Fatal(err)
	}
	st := u.begin(t)
	if bytes.Equal(st.set[1].Package.GetCertificateChain()[0], first) {
		t.Fatal("round 1 is signed with the certificate loaded at start, not the rotated one")
	}
	// Rotated again, and loaded by another ceremony's Begin.
	if _, err := issue(u.dir, 1); err != nil {
		t.Fatal(err)
	}
	other := u.params
	other.CeremonyID = "unit-ceremony-2"
	if _, err := call(u.ps[1].Begin(context.Background(), other.BeginRequest())); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(Chain(u.ps[1])[0], st.set[1].Package.GetCertificateChain()[0]) {
		t.Fatal("the second Begin did not load the newer certificate")
	}
	u.exchange(t, st)
	u.finish(t, st)
	if kid := u.commit(t, st); kid == "" {
		t.Fatal("no kid")
	}
}
