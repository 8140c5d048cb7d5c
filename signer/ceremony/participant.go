package ceremony

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/curve25519"
	"google.golang.org/protobuf/proto"

	"github.com/frostmint/frostmint/attest"
	attestv1 "github.com/frostmint/frostmint/proto/frostmint/attest/v1"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Defaults of [ParticipantConfig].
const (
	DefaultTTL           = 10 * time.Minute
	DefaultMaxCeremonies = 2
	DefaultMaxClockSkew  = 5 * time.Minute
)

// ShareLabel is the keystore label of participant id's share of key kid.
func ShareLabel(id uint16, kid string) string { return fmt.Sprintf("frostmint-share-%d@%s", id, kid) }

// ParticipantConfig configures a [Participant].
type ParticipantConfig struct {
	// ID is this signer's participant id (1..n).
	ID uint16
	// TLS names the signer's certificate chain and key (the same as its
	// mTLS server's: the key signs the ceremony messages, the chain's SPIFFE
	// ID must be the roster's for ID) and the CA bundle peers chain to.
	// They are read again at every Begin, so rotations need no restart.
	TLS mtls.Files
	// KeysDir is where outputs go, in <KeysDir>/<kid>/ (created 0700 if
	// missing).
	KeysDir string
	// Sealer seals the secret share.
	Sealer keystore.Sealer
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Log receives events; never secrets (default: discarded).
	Log *slog.Logger
	// TTL bounds a ceremony's life from Begin: after it, its state and
	// secrets are wiped whatever the coordinator does (default 10m).
	TTL time.Duration
	// MaxCeremonies bounds the ceremonies in progress (default 2).
	MaxCeremonies int
	// MaxClockSkew bounds how far a ceremony's start time may be from this
	// signer's clock (default 5m).
	MaxClockSkew time.Duration
	// Committed, if set, is called with the kid once a ceremony's outputs
	// are written, before Commit answers (for example the signer daemon's
	// ReloadKeys, to load the new epoch at once). It must not block long.
	Committed func(kid string)
	// Attestation puts this signer's SEV-SNP evidence in its round-1
	// packages (Provider) and checks its peers' (Verifier, Required). The
	// zero value does neither.
	Attestation Attestation
}

// Participant is a signer's side of the key ceremony: it implements
// ceremonyv1.CeremonyParticipantServiceServer. It is safe for concurrent
// use; each ceremony's calls are serialised.
type Participant struct {
	ceremonyv1.UnimplementedCeremonyParticipantServiceServer

	cfg ParticipantConfig
	log *slog.Logger
	now func() time.Time

	// mu guards me, sessions and closed. It is a leaf lock: nothing else
	// is ever taken while holding it.
	mu sync.Mutex
	// me is the TLS identity last loaded (see [Participant.identity]).
	me       *identity
	sessions map[string]*session
	closed   bool
	// aborted remembers, until the ceremony's time would be up, the ids
	// of ceremonies aborted here: an abort can overtake the Begin it
	// cancels (the relay aborts as soon as one participant fails, while
	// its other Begins are in flight), and that late Begin must not hold
	// a ceremony (and its secrets) until it times out. Bounded by
	// maxAborted.
	aborted map[string]time.Time

	// writeMu serialises writes into KeysDir.
	writeMu sync.Mutex

	// faults are set by tests only (export_test.go) to make this
	// participant cheat.
	faults faults
}

type faults struct {
	round1Key   crypto.Signer
	round1Chain [][]byte
	dkgRound1   func([]byte) []byte
	share       func(to uint16, msg []byte) []byte
	ciphertext  func(to uint16, ct []byte) []byte
}

type stage int

const (
	stageBegun stage = iota + 1
	stageExchanged
	stageFinished
	stageCommitted
)

// session is one ceremony in progress. Its mutex serialises the calls.
// params and deadline never change once registered; committed may be read
// without the mutex.
type session struct {
	params    Params
	deadline  time.Time
	committed atomic.Bool
	// me signs this ceremony's messages and anchors its peers': the
	// identity as of Begin, for the whole ceremony.
	me *identity

	mu    sync.Mutex
	stage stage
	timer *time.Timer
	gone  bool

	dkg    *frost.DKG
	box    []byte // X25519 private key, wiped when done
	boxPub []byte
	own    *ceremonyv1.Round1Package
	set    Round1Set
	digest []byte
	share  *frost.KeyShare
	tr     *Transcript
	kid    string
}

// wipe drops every secret of s. The caller holds s.mu.
func (s *session) wipe() {
	if s.dkg != nil {
		s.dkg.Close()
		s.dkg = nil
	}
	wipe(s.box)
	s.box = nil
	if s.share != nil {
		wipe(s.share.Secret)
		s.share = nil
	}
}

// NewParticipant loads the TLS identity, checks the configuration and
// returns a Participant. It fails when the key pair or CA bundle cannot be
// read, the key is neither Ed25519 nor ECDSA P-256, the certificate has no
// SPIFFE ID, or KeysDir cannot be created.
func NewParticipant(cfg ParticipantConfig) (*Participant, error) {
	if cfg.ID == 0 || cfg.ID > MaxParticipants {
		return nil, fmt.Errorf("%w: participant id %d", ErrInvalid, cfg.ID)
	}
	if cfg.Sealer == nil {
		return nil, fmt.Errorf("%w: no sealer", ErrInvalid)
	}
	if cfg.KeysDir == "" {
		return nil, fmt.Errorf("%w: no keys directory", ErrInvalid)
	}
	if err := cfg.Attestation.Validate(); err != nil {
		return nil, err
	}
	me, err := loadIdentity(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.KeysDir, 0o700); err != nil {
		return nil, fmt.Errorf("ceremony: keys directory: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxCeremonies <= 0 {
		cfg.MaxCeremonies = DefaultMaxCeremonies
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	return &Participant{cfg: cfg, me: me, log: cfg.Log.With("participant", cfg.ID), now: cfg.Clock,
		sessions: map[string]*session{}, aborted: map[string]time.Time{}}, nil
}

// Identity returns the SPIFFE ID this participant signs as.
func (p *Participant) Identity() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.me.id
}

// identity loads the TLS identity again, so that a ceremony signs with,
// and trusts, what the daemon's mTLS serves after a certificate or CA
// rotation (package mtls follows the files too). Files that do not load
// (a rotation half written) leave the last identity in use, as mtls does.
func (p *Participant) identity() *identity {
	me, err := loadIdentity(p.cfg.TLS)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.log.Warn("TLS identity does not load; the last one signs", "err", err)
		return p.me
	}
	p.me = me
	return me
}

// Close wipes every ceremony in progress; later calls fail.
func (p *Participant) Close() {
	p.mu.Lock()
	ss := p.sessions
	p.sessions, p.closed = map[string]*session{}, true
	p.mu.Unlock()
	for _, s := range ss {
		p.drop(s)
	}
}

// Sweep wipes the ceremonies whose time is up by the configured clock and
// returns how many. Every call does it; a timer per ceremony also does it
// in real time, so an abandoned ceremony never pins its secrets.
func (p *Participant) Sweep() int {
	now := p.now()
	p.mu.Lock()
	var expired []*session
	for id, s := range p.sessions {
		if !now.Before(s.deadline) {
			expired = append(expired, s)
			delete(p.sessions, id)
		}
	}
	p.mu.Unlock()
	for _, s := range expired {
		p.drop(s)
		p.log.Warn("ceremony expired", "ceremony", s.params.CeremonyID)
	}
	return len(expired)
}

// InProgress returns the number of ceremonies held (committed ones
// included until they expire).
func (p *Participant) InProgress() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

func (p *Participant) drop(s *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.wipe()
	s.gone = true
}

// remove forgets s (if still registered) and wipes it.
func (p *Participant) remove(s *session) {
	p.mu.Lock()
	if p.sessions[s.params.CeremonyID] == s {
		delete(p.sessions, s.params.CeremonyID)
	}
	p.mu.Unlock()
	p.drop(s)
}

// lookup returns the locked session of a ceremony.
func (p *Participant) lookup(id string) (*session, error) {
	p.Sweep()
	p.mu.Lock()
	s, ok := p.sessions[id]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, id)
	}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrUnknown, id)
	}
	return s, nil
}

// fail ends a ceremony at this participant after it detected cheating (or
// could not go on): its state is wiped and the error returned. The caller
// holds s.mu, which fail releases.
func (p *Participant) fail(s *session, err error) error {
	var ce *CheatError
	if errors.As(err, &ce) {
		p.log.Warn("ceremony aborted: cheating detected", "ceremony", s.params.CeremonyID,
			"culprit", ce.Culprit, "fault", FaultName(ce.Fault), "reason", ce.Reason)
	} else {
		p.log.Error("ceremony failed", "ceremony", s.params.CeremonyID, "err", err)
	}
	s.mu.Unlock()
	p.remove(s)
	return err
}

// blameRelay re-attributes a public fault detected by this participant to
// the relay, which must have refused it (see [CheatError]).
func (p *Participant) blameRelay(err error) error {
	var ce *CheatError
	if !errors.As(err, &ce) {
		return err
	}
	return &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ce.Fault,
		Reason: fmt.Sprintf("relayed as participant %d's: %s", ce.Culprit, ce.Reason)}
}

// Begin implements ceremonyv1.CeremonyParticipantServiceServer.
func (p *Participant) Begin(ctx context.Context, req *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	resp, err := p.begin(ctx, req)
	return resp, p.status("begin", req.GetCeremonyId(), err)
}

// Exchange implements ceremonyv1.CeremonyParticipantServiceServer.
func (p *Participant) Exchange(ctx context.Context, req *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	resp, err := p.exchange(ctx, req)
	return resp, p.status("exchange", req.GetCeremonyId(), err)
}

// Finish implements ceremonyv1.CeremonyParticipantServiceServer.
func (p *Participant) Finish(_ context.Context, req *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	resp, err := p.finish(req)
	return resp, p.status("finish", req.GetCeremonyId(), err)
}

// Commit implements ceremonyv1.CeremonyParticipantServiceServer.
func (p *Participant) Commit(_ context.Context, req *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	resp, err := p.commit(req)
	return resp, p.status("commit", req.GetCeremonyId(), err)
}

// Abort implements ceremonyv1.CeremonyParticipantServiceServer.
func (p *Participant) Abort(_ context.Context, req *ceremonyv1.AbortRequest) (*ceremonyv1.AbortResponse, error) {
	err := p.abort(req)
	if err != nil {
		return nil, p.status("abort", req.GetCeremonyId(), err)
	}
	return &ceremonyv1.AbortResponse{}, nil
}

func (p *Participant) status(call, ceremony string, err error) error {
	if err == nil {
		return nil
	}
	st := statusOf(err)
	var ce *CheatError
	if !errors.As(err, &ce) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrState) &&
		!errors.Is(err, ErrBusy) && !errors.Is(err, ErrExists) {
		p.log.Error("ceremony call failed", "call", call, "ceremony", ceremony, "err", err)
	}
	return st
}

func (p *Participant) begin(ctx context.Context, req *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	prm, err := ParamsFromBegin(req)
	if err != nil {
		return nil, err
	}
	now := p.now()
	if d := now.Sub(prm.StartedAt); d > p.cfg.MaxClockSkew || d < -p.cfg.MaxClockSkew {
		return nil, fmt.Errorf("%w: the ceremony's start time is %s away from this signer's clock", ErrInvalid, d.Round(time.Second))
	}
	me := p.identity()
	if p.cfg.ID > prm.MaxSigners {
		return nil, &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
			Reason: fmt.Sprintf("a %d-participant ceremony cannot include participant %d", prm.MaxSigners, p.cfg.ID)}
	}
	if got := prm.Roster[p.cfg.ID]; got != me.id {
		return nil, &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_WRONG_IDENTITY,
			Reason: fmt.Sprintf("the roster names %s for participant %d, which is %s", got, p.cfg.ID, me.id)}
	}
	if err := p.checkKeysDir(); err != nil {
		return nil, err
	}
	p.Sweep()

	s := &session{params: prm, stage: stageBegun, deadline: now.Add(p.cfg.TTL), me: me}
	// Locked before it is visible, so no other call sees it half made.
	s.mu.Lock()
	if err := p.register(s); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	pkg, err := p.round1(ctx, s)
	if err != nil {
		return nil, p.fail(s, err)
	}
	s.own = pkg
	s.timer = time.AfterFunc(p.cfg.TTL, func() {
		p.log.Warn("ceremony timed out", "ceremony", prm.CeremonyID)
		p.remove(s)
	})
	s.mu.Unlock()
	p.log.Info("ceremony begun", "ceremony", prm.CeremonyID, "threshold", prm.Threshold, "participants", prm.MaxSigners)
	return &ceremonyv1.BeginResponse{Package: pkg}, nil
}

func (p *Participant) checkKeysDir() error {
	fi, err := os.Stat(p.cfg.KeysDir)
	if err != nil {
		return fmt.Errorf("ceremony: keys directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ceremony: keys directory %s is not a directory", p.cfg.KeysDir)
	}
	return nil
}

func (p *Participant) register(s *session) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: participant closed", ErrState)
	}
	if _, dup := p.sessions[s.params.CeremonyID]; dup {
		return fmt.Errorf("%w: ceremony %q was already begun", ErrState, s.params.CeremonyID)
	}
	if _, gone := p.aborted[s.params.CeremonyID]; gone {
		return fmt.Errorf("%w: ceremony %q was aborted", ErrState, s.params.CeremonyID)
	}
	live := 0
	for _, o := range p.sessions {
		if !o.committed.Load() {
			live++
		}
	}
	if live >= p.cfg.MaxCeremonies {
		return fmt.Errorf("%w: %d in progress", ErrBusy, live)
	}
	p.sessions[s.params.CeremonyID] = s
	return nil
}

// round1 draws the DKG polynomial and the box key, gets this signer's
// attestation when it has a provider, and signs the package.
func (p *Participant) round1(ctx context.Context, s *session) (*ceremonyv1.Round1Package, error) {
	prm := s.params
	d, err := frost.NewDKG(p.cfg.ID, prm.Threshold, prm.MaxSigners)
	if err != nil {
		return nil, err
	}
	s.dkg = d
	msg, err := d.Round1()
	if err != nil {
		return nil, err
	}
	s.box = make([]byte, curve25519.ScalarSize)
	if _, err := rand.Read(s.box); err != nil {
		return nil, err
	}
	if s.boxPub, err = curve25519.X25519(s.box, curve25519.Basepoint); err != nil {
		return nil, err
	}
	if p.faults.dkgRound1 != nil {
		msg = p.faults.dkgRound1(msg)
	}
	ev, err := p.evidence(ctx, s.me, prm)
	if err != nil {
		return nil, err
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ceremonyv1.Round1Body{
		CeremonyId: prm.CeremonyID, ParticipantId: uint32(p.cfg.ID), Threshold: uint32(prm.Threshold),
		MaxSigners: uint32(prm.MaxSigners), StartedAtUnix: prm.StartedAt.Unix(), RosterSha256: prm.Roster.Hash(),
		DkgRound1: msg, BoxPublicKey: s.boxPub, Attestation: ev,
	})
	if err != nil {
		return nil, err
	}
	key, chain := s.me.key, s.me.chain
	if p.faults.round1Key != nil {
		key, chain = p.faults.round1Key, p.faults.round1Chain
	}
	sig, err := sign(key, domainRound1, body)
	if err != nil {
		return nil, err
	}
	return &ceremonyv1.Round1Package{Body: body, Signature: sig, CertificateChain: chain}, nil
}

// evidence returns this signer's attestation for ceremony prm, bound to
// the key of its certificate (see [ReportData]), or nil when it has none.
func (p *Participant) evidence(ctx context.Context, me *identity, prm Params) (*attestv1.Evidence, error) {
	if p.cfg.Attestation.Provider == nil {
		return nil, nil
	}
	ev, err := p.cfg.Attestation.Provider.Report(ctx, ReportData(me.leaf.RawSubjectPublicKeyInfo, p.cfg.ID, prm))
	if errors.Is(err, attest.ErrUnavailable) {
		p.log.Info("no attestation for the round-1 package", "ceremony", prm.CeremonyID, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ceremony: attestation: %w", err)
	}
	if ev == nil {
		return nil, nil
	}
	return ev.Proto(), nil
}

// checkPeers judges every peer's attestation in set (see
// [VerifyAttestation]); a refusal names the peer, reported by this
// participant.
func (p *Participant) checkPeers(ctx context.Context, prm Params, set Round1Set) error {
	a := p.cfg.Attestation
	if a.Verifier == nil && !a.Required {
		return nil
	}
	for id := uint16(1); id <= prm.MaxSigners; id++ {
		if id == p.cfg.ID {
			continue
		}
		res, err := VerifyAttestation(ctx, set[id], prm, a.Verifier, a.Required)
		var ce *CheatError
		if errors.As(err, &ce) {
			ce.Reporter = p.cfg.ID
			return ce
		}
		if err != nil {
			return err
		}
		if res != nil {
			p.log.Info("peer attested", "ceremony", prm.CeremonyID, "peer", id, "measurement", res.Measurement)
		}
	}
	return nil
}

func (p *Participant) exchange(ctx context.Context, req *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	s, err := p.lookup(req.GetCeremonyId())
	if err != nil {
		return nil, err
	}
	if s.stage != stageBegun {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: exchange after round 1", ErrState)
	}
	prm := s.params
	if len(req.GetPackages()) != int(prm.MaxSigners) {
		return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_MALFORMED,
			Reason: fmt.Sprintf("%d round-1 packages for %d participants", len(req.GetPackages()), prm.MaxSigners)})
	}
	own := req.GetPackages()[p.cfg.ID-1]
	if !proto.Equal(own, s.own) {
		return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
			Reason: "this participant's own round-1 package was altered"})
	}
	set := make(Round1Set, prm.MaxSigners)
	for i, pkg := range req.GetPackages() {
		id := uint16(i + 1)
		r, err := VerifyRound1(pkg, id, prm, s.me.roots, p.now())
		if err != nil {
			return nil, p.fail(s, p.blameRelay(err))
		}
		set[id] = r
	}
	// After every package is authentic: a public fault is the relay's
	// first. An attestation refusal is the sender's (its signature covers
	// the evidence).
	if err := p.checkPeers(ctx, prm, set); err != nil {
		return nil, p.fail(s, err)
	}
	digest := set.Digest()
	r2, err := s.dkg.Round2From(set.DKGMessages())
	if err != nil {
		var ce *frost.CheaterError
		if errors.As(err, &ce) {
			err = &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_BAD_PROOF,
				Reason: fmt.Sprintf("relayed as participant %d's: %s", ce.Participant, ce.Reason)}
		}
		return nil, p.fail(s, err)
	}
	defer func() {
		for _, m := range r2 {
			wipe(m)
		}
	}()
	resp := &ceremonyv1.ExchangeResponse{}
	for to := uint16(1); to <= prm.MaxSigners; to++ {
		if to == p.cfg.ID {
			continue
		}
		msg := r2[to]
		if p.faults.share != nil {
			msg = p.faults.share(to, msg)
		}
		b, err := seal(s.box, s.boxPub, set[to].BoxKey, prm, p.cfg.ID, to, digest, msg)
		if err != nil {
			// A low-order box key: public, so the relay forwarded it.
			return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: p.cfg.ID, Fault: ceremonyv1.Fault_FAULT_MALFORMED,
				Reason: fmt.Sprintf("relayed as participant %d's: unusable box key", to)})
		}
		if p.faults.ciphertext != nil {
			b.Ciphertext = p.faults.ciphertext(to, b.Ciphertext)
		}
		body, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
		if err != nil {
			return nil, p.fail(s, err)
		}
		sig, err := sign(s.me.key, domainRound2, body)
		if err != nil {
			return nil, p.fail(s, err)
		}
		resp.Envelopes = append(resp.Envelopes, &ceremonyv1.Round2Envelope{Body: body, Signature: sig})
	}
	s.set, s.digest, s.stage = set, digest, stageExchanged
	s.mu.Unlock()
	p.log.Info("ceremony round 2 sent", "ceremony", prm.CeremonyID)
	return resp, nil
}

func (p *Participant) finish(req *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	s, err := p.lookup(req.GetCeremonyId())
	if err != nil {
		return nil, err
	}
	if s.stage != stageExchanged {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: finish before exchange, or twice", ErrState)
	}
	prm, me := s.params, p.cfg.ID
	if len(req.GetEnvelopes()) != int(prm.MaxSigners)-1 {
		return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: me, Fault: ceremonyv1.Fault_FAULT_MALFORMED,
			Reason: fmt.Sprintf("%d round-2 envelopes for %d peers", len(req.GetEnvelopes()), prm.MaxSigners-1)})
	}
	inbox := make(map[uint16][]byte, prm.MaxSigners-1)
	defer func() {
		for _, m := range inbox {
			wipe(m)
		}
	}()
	i := 0
	for from := uint16(1); from <= prm.MaxSigners; from++ {
		if from == me {
			continue
		}
		env := req.GetEnvelopes()[i]
		i++
		b, err := VerifyEnvelope(env, s.set[from], me, prm, s.digest)
		if err != nil {
			return nil, p.fail(s, p.blameRelay(err))
		}
		msg, err := open(s.box, s.set[from].BoxKey, s.boxPub, prm, from, me, s.digest, b)
		if err != nil {
			return nil, p.fail(s, &CheatError{Culprit: from, Reporter: me, Fault: ceremonyv1.Fault_FAULT_BAD_CIPHERTEXT,
				Reason: "its signed round-2 ciphertext does not decrypt"})
		}
		inbox[from] = msg
	}
	ks, err := s.dkg.FinalizeFrom(inbox)
	if err != nil {
		var ce *frost.CheaterError
		if errors.As(err, &ce) {
			err = &CheatError{Culprit: ce.Participant, Reporter: me, Fault: ceremonyv1.Fault_FAULT_BAD_SHARE, Reason: ce.Reason}
		}
		return nil, p.fail(s, err)
	}
	s.dkg = nil
	s.share = ks
	wipe(s.box)
	s.box = nil
	tr, err := BuildTranscript(prm, s.set, ks.Public)
	if err != nil {
		return nil, p.fail(s, err)
	}
	sig, err := sign(s.me.key, domainTranscript, tr.Digest())
	if err != nil {
		return nil, p.fail(s, err)
	}
	s.tr, s.kid, s.stage = tr, tr.KeyID, stageFinished
	s.mu.Unlock()
	p.log.Info("ceremony finished; waiting for every transcript signature", "ceremony", prm.CeremonyID, "kid", tr.KeyID)
	return &ceremonyv1.FinishResponse{GroupPublicKey: bytes.Clone(ks.Public.PublicKey), PublicKeyShare: bytes.Clone(ks.Public.Shares[me]),
		TranscriptSha256: tr.Digest(), TranscriptSignature: sig}, nil
}

func (p *Participant) commit(req *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	s, err := p.lookup(req.GetCeremonyId())
	if err != nil {
		return nil, err
	}
	if s.stage == stageCommitted {
		kid, same := s.kid, bytes.Equal(req.GetTranscriptSha256(), s.tr.Digest())
		s.mu.Unlock()
		if !same {
			return nil, fmt.Errorf("%w: already committed another transcript", ErrState)
		}
		return &ceremonyv1.CommitResponse{Kid: kid}, nil
	}
	if s.stage != stageFinished {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: commit before finish", ErrState)
	}
	prm, me := s.params, p.cfg.ID
	hash := s.tr.Digest()
	if !bytes.Equal(req.GetTranscriptSha256(), hash) {
		return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: me, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
			Reason: "commit names another transcript than this participant's"})
	}
	if len(req.GetSignatures()) != int(prm.MaxSigners) {
		return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: me, Fault: ceremonyv1.Fault_FAULT_MALFORMED,
			Reason: fmt.Sprintf("%d transcript signatures for %d participants", len(req.GetSignatures()), prm.MaxSigners)})
	}
	sigs := make(map[uint16][]byte, prm.MaxSigners)
	for i, ts := range req.GetSignatures() {
		id := uint16(i + 1)
		if ts.GetParticipantId() != uint32(id) || !VerifyTranscriptSignature(s.set[id], hash, ts.GetSignature()) {
			return nil, p.fail(s, &CheatError{Culprit: Relay, Reporter: me, Fault: ceremonyv1.Fault_FAULT_BAD_SIGNATURE,
				Reason: fmt.Sprintf("relayed as participant %d's: transcript signature does not verify", id)})
		}
		sigs[id] = ts.GetSignature()
	}
	out, err := s.tr.WithSignatures(s.set, sigs).Marshal()
	if err != nil {
		return nil, p.fail(s, err)
	}
	if err := p.write(s.kid, s.share, out); err != nil {
		return nil, p.fail(s, err)
	}
	s.wipe()
	s.stage = stageCommitted
	s.committed.Store(true)
	kid := s.kid
	s.mu.Unlock()
	p.log.Info("ceremony committed: key written", "ceremony", prm.CeremonyID, "kid", kid,
		"dir", filepath.Join(p.cfg.KeysDir, kid))
	if p.cfg.Committed != nil {
		p.cfg.Committed(kid)
	}
	return &ceremonyv1.CommitResponse{Kid: kid}, nil
}

func (p *Participant) abort(req *ceremonyv1.AbortRequest) error {
	s, err := p.lookup(req.GetCeremonyId())
	if errors.Is(err, ErrUnknown) {
		p.tombstone(req.GetCeremonyId())
		return nil
	}
	if err != nil {
		return err
	}
	if s.stage == stageCommitted {
		kid := s.kid
		s.mu.Unlock()
		return fmt.Errorf("%w: ceremony already committed key %s; its outputs stay", ErrState, kid)
	}
	reason := req.GetReason()
	if len(reason) > 512 {
		reason = reason[:512]
	}
	p.log.Warn("ceremony aborted by the coordinator", "ceremony", s.params.CeremonyID, "reason", reason)
	s.mu.Unlock()
	p.remove(s)
	p.tombstone(s.params.CeremonyID)
	return nil
}

// maxAborted bounds the aborted-ceremony ids remembered; past it the
// oldest are forgotten first (a Begin that late is then held until its
// own timeout, as without the tombstone).
const maxAborted = 1024

// tombstone remembers that ceremony id was aborted, so that a Begin for it
// arriving after the abort is refused.
func (p *Participant) tombstone(id string) {
	if id == "" || len(id) > 128 {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, until := range p.aborted {
		if !now.Before(until) {
			delete(p.aborted, k)
		}
	}
	for len(p.aborted) >= maxAborted {
		oldest, first := "", time.Time{}
		for k, until := range p.aborted {
			if oldest == "" || until.Before(first) {
				oldest, first = k, until
			}
		}
		delete(p.aborted, oldest)
	}
	// A Begin is refused anyway once its start time is MaxClockSkew old.
	p.aborted[id] = now.Add(p.cfg.TTL + 2*p.cfg.MaxClockSkew)
}

// write puts the outputs of key kid in <KeysDir>/<kid>/ all at once: the
// files go into a fresh temporary directory beside it, each written
// atomically and synced, and the directory is renamed into place. An
// existing directory for kid is never touched ([ErrExists]).
func (p *Participant) write(kid string, ks *frost.KeyShare, transcript []byte) error {
	if kid == "" || strings.ContainsAny(kid, `/\`) || strings.HasPrefix(kid, ".") {
		return fmt.Errorf("ceremony: unusable kid %q", kid)
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	target := filepath.Join(p.cfg.KeysDir, kid)
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, target)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ceremony: %w", err)
	}
	group, err := json.Marshal(ks.Public)
	if err != nil {
		return err
	}
	sealed, err := p.cfg.Sealer.Seal(ks.Secret, ShareLabel(ks.ID, kid))
	if err != nil {
		return fmt.Errorf("ceremony: sealing the share: %w", err)
	}
	tmp, err := os.MkdirTemp(p.cfg.KeysDir, ".ceremony-*")
	if err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeFile(filepath.Join(tmp, GroupFile), group, 0o644); err != nil {
		return err
	}
	if err := keystore.WriteSealed(filepath.Join(tmp, ShareFile), sealed); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(tmp, TranscriptFile), transcript, 0o644); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, target)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	return syncDir(p.cfg.KeysDir)
}

// writeFile writes data atomically: a synced temporary file renamed over
// path.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("ceremony: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("ceremony: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ceremony: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ceremony: syncing %s: %w", dir, err)
	}
	return nil
}
