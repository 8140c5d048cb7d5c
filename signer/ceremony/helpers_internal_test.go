package ceremony

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// These helpers drive participants in-process, with no network and no
// relay package (which imports this one): tests of the participant's own
// rules, and seeds for the fuzzers.

const testDomain = "spiffe://unit.test"

func testID(id uint16) string { return fmt.Sprintf("%s/signer/%d", testDomain, id) }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

type unit struct {
	dir    string
	files  map[uint16]mtls.Files
	ps     map[uint16]*Participant
	seal   map[uint16]keystore.Sealer
	logs   *syncBuffer
	clock  *fakeClock
	params Params
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newUnit(t testing.TB, th, n uint16, adjust func(*ParticipantConfig)) *unit {
	t.Helper()
	ca, err := mtls.NewDevCA("unit CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return newUnitIssued(t, th, n, func(dir string, id uint16) (mtls.Files, error) {
		return ca.Issue(dir, fmt.Sprintf("signer-%d", id), mtls.Leaf{ID: testID(id), Lifetime: time.Hour})
	}, adjust)
}

// newUnitIssued is newUnit with participant certificates from issue.
func newUnitIssued(t testing.TB, th, n uint16, issue func(dir string, id uint16) (mtls.Files, error), adjust func(*ParticipantConfig)) *unit {
	t.Helper()
	dir := t.TempDir()
	u := &unit{dir: dir, files: map[uint16]mtls.Files{}, ps: map[uint16]*Participant{}, seal: map[uint16]keystore.Sealer{},
		logs: &syncBuffer{}, clock: &fakeClock{now: time.Now().Truncate(time.Second)}}
	log := slog.New(slog.NewTextHandler(u.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	roster := Roster{}
	for id := uint16(1); id <= n; id++ {
		f, err := issue(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := keystore.NewPassphrase(fmt.Appendf(nil, "pass-%d", id), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
		if err != nil {
			t.Fatal(err)
		}
		cfg := ParticipantConfig{ID: id, TLS: f, KeysDir: filepath.Join(dir, fmt.Sprintf("keys-%d", id)), Sealer: s,
			Clock: u.clock.Now, Log: log.With("p", id)}
		if adjust != nil {
			adjust(&cfg)
		}
		p, err := NewParticipant(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		u.files[id], u.ps[id], u.seal[id] = f, p, s
		roster[id] = testID(id)
	}
	u.params = Params{CeremonyID: "unit-ceremony", Threshold: th, MaxSigners: n, StartedAt: u.clock.Now().UTC(), Roster: roster}
	return u
}

// state is an in-process relay's view, kept between steps.
type state struct {
	set    Round1Set
	digest []byte
	inbox  map[uint16][]*ceremonyv1.Round2Envelope // by recipient, ordered by sender
	sigs   []*ceremonyv1.TranscriptSignature
	hash   []byte
}

func call[T any](resp T, err error) (T, error) { return resp, FromStatus(err) }

func (u *unit) begin(t testing.TB) *state {
	t.Helper()
	st := &state{set: Round1Set{}}
	for id, p := range u.ps {
		resp, err := call(p.Begin(context.Background(), u.params.BeginRequest()))
		if err != nil {
			t.Fatalf("begin %d: %v", id, err)
		}
		r, err := VerifyRound1(resp.GetPackage(), id, u.params, u.ca2roots(t), u.clock.Now())
		if err != nil {
			t.Fatalf("round 1 of %d: %v", id, err)
		}
		st.set[id] = r
	}
	st.digest = st.set.Digest()
	return st
}

func (u *unit) packages(st *state) []*ceremonyv1.Round1Package {
	var out []*ceremonyv1.Round1Package
	for id := uint16(1); id <= u.params.MaxSigners; id++ {
		out = append(out, st.set[id].Package)
	}
	return out
}

func (u *unit) exchange(t testing.TB, st *state) {
	t.Helper()
	n := u.params.MaxSigners
	byTo := map[uint16]map[uint16]*ceremonyv1.Round2Envelope{}
	for id, p := range u.ps {
		resp, err := call(p.Exchange(context.Background(), &ceremonyv1.ExchangeRequest{CeremonyId: u.params.CeremonyID, Packages: u.packages(st)}))
		if err != nil {
			t.Fatalf("exchange %d: %v", id, err)
		}
		i := 0
		for to := uint16(1); to <= n; to++ {
			if to == id {
				continue
			}
			if byTo[to] == nil {
				byTo[to] = map[uint16]*ceremonyv1.Round2Envelope{}
			}
			byTo[to][id] = resp.GetEnvelopes()[i]
			i++
		}
	}
	st.inbox = map[uint16][]*ceremonyv1.Round2Envelope{}
	for to := uint16(1); to <= n; to++ {
		for from := uint16(1); from <= n; from++ {
			if from != to {
				st.inbox[to] = append(st.inbox[to], byTo[to][from])
			}
		}
	}
}

func (u *unit) finish(t testing.TB, st *state) {
	t.Helper()
	for id := uint16(1); id <= u.params.MaxSigners; id++ {
		resp, err := call(u.ps[id].Finish(context.Background(), &ceremonyv1.FinishRequest{CeremonyId: u.params.CeremonyID, Envelopes: st.inbox[id]}))
		if err != nil {
			t.Fatalf("finish %d: %v", id, err)
		}
		if st.hash != nil && !bytes.Equal(st.hash, resp.GetTranscriptSha256()) {
			t.Fatalf("participant %d signed another transcript", id)
		}
		st.hash = resp.GetTranscriptSha256()
		st.sigs = append(st.sigs, &ceremonyv1.TranscriptSignature{ParticipantId: uint32(id), Signature: resp.GetTranscriptSignature()})
	}
}

func (u *unit) commit(t testing.TB, st *state) string {
	t.Helper()
	var kid string
	for id, p := range u.ps {
		resp, err := call(p.Commit(context.Background(), &ceremonyv1.CommitRequest{CeremonyId: u.params.CeremonyID,
			TranscriptSha256: st.hash, Signatures: st.sigs}))
		if err != nil {
			t.Fatalf("commit %d: %v", id, err)
		}
		kid = resp.GetKid()
	}
	return kid
}

func (u *unit) ca2roots(t testing.TB) *x509.CertPool {
	t.Helper()
	return u.ps[1].me.roots
}

// written lists every entry of every participant's keys directory.
func (u *unit) written(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, p := range u.ps {
		es, err := os.ReadDir(p.cfg.KeysDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, filepath.Join(p.cfg.KeysDir, e.Name()))
		}
	}
	return out
}
