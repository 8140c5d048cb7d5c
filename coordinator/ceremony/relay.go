package ceremony

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/frost"
)

// ErrInvalid means a ceremony was asked for with unusable parameters: a
// threshold out of range, participant ids that are not exactly 1..n, or
// identities that are malformed or repeated. It is the signer side's
// sceremony.ErrInvalid, so one errors.Is covers both.
var ErrInvalid = sceremony.ErrInvalid

// Defaults of [Config].
const (
	DefaultRoundTimeout = 30 * time.Second
	abortTimeout        = 5 * time.Second
)

// Config configures a [Relay].
type Config struct {
	// Roots returns the CAs participants' certificates chain to (the
	// coordinator's CA bundle as it is now: mtls.Keys.Roots follows
	// rotations), asked once per ceremony. Required: the relay checks
	// every public message before forwarding it.
	Roots func() *x509.CertPool
	// RoundTimeout bounds each round, all participants together (default
	// 30s).
	RoundTimeout time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Log receives the ceremony's events (default: discarded).
	Log *slog.Logger
	// Attestation, when set, checks the SEV-SNP evidence of every round-1
	// package that carries some before forwarding it
	// (sceremony.VerifyAttestation); a refusal aborts the ceremony naming
	// the sender (FAULT_ATTESTATION). Unset: evidence is forwarded
	// unjudged, for the participants to judge.
	Attestation sceremony.EvidenceVerifier
	// RequireAttestation also refuses round-1 packages without evidence.
	// It needs Attestation.
	RequireAttestation bool
}

// Relay drives ceremonies: it moves messages between participants,
// verifies everything public on the way, times out rounds, and aborts
// every participant on the first failure, naming the culprit when there is
// one. It is safe for concurrent use, though a coordinator should run one
// ceremony at a time ([Service] does).
type Relay struct{ cfg Config }

// NewRelay checks cfg and returns a Relay. It fails without Roots.
func NewRelay(cfg Config) (*Relay, error) {
	if cfg.Roots == nil {
		return nil, errors.New("ceremony: the relay needs the participants' CA roots")
	}
	if cfg.RequireAttestation && cfg.Attestation == nil {
		return nil, errors.New("ceremony: the relay requires attestation without a verifier")
	}
	if cfg.RoundTimeout <= 0 {
		cfg.RoundTimeout = DefaultRoundTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg}, nil
}

// Event is one step of a ceremony, for progress reports.
type Event struct {
	Kind       ceremonyv1.EventKind
	CeremonyID string
	// Participant is the participant the event is about (0: the ceremony).
	Participant uint16
	Threshold   uint16
	MaxSigners  uint16
	// Kid and GroupKey are set on DONE.
	Kid      string
	GroupKey ed25519.PublicKey
	// Err is set on ABORTED: an *AbortError, wrapping a
	// *sceremony.CheatError when someone is to blame.
	Err error
}

// Result is a completed ceremony.
type Result struct {
	CeremonyID string
	Kid        string
	Group      frost.PublicGroup
	// Transcript is the transcript.json every participant wrote.
	Transcript []byte
}

// AbortError is a ceremony that did not complete. Every participant was
// told to abort (those that had committed keep their outputs: see
// Committed). errors.As finds a *sceremony.CheatError in it when someone
// is to blame.
type AbortError struct {
	CeremonyID string
	// Stage is "begin", "exchange", "finish" or "commit".
	Stage string
	// Participant is the participant whose call or message failed.
	Participant uint16
	// Committed lists the participants that wrote their outputs before a
	// failure at the commit stage.
	Committed []uint16
	Err       error
}

func (e *AbortError) Error() string {
	msg := fmt.Sprintf("ceremony %s aborted at %s (participant %d): %v", e.CeremonyID, e.Stage, e.Participant, e.Err)
	if len(e.Committed) > 0 {
		msg += fmt.Sprintf("; participants %v had already written their outputs", e.Committed)
	}
	return msg
}

func (e *AbortError) Unwrap() error { return e.Err }

// Run performs a t-of-n ceremony among participants (keyed by participant
// id, exactly 1..n) and reports each step to progress (if not nil), which
// is called from Run's goroutine only. It returns the result once every
// participant committed. It fails with an error wrapping [ErrInvalid] for
// unusable parameters (before anything is sent), and otherwise with an
// *[AbortError] after aborting every participant: a participant that
// failed, did not answer within the round timeout, or cheated (the error
// then wraps a *sceremony.CheatError naming the culprit). Cancelling ctx
// aborts the ceremony, unless every participant already signed the
// transcript: the commit then goes on, so that a departing operator never
// leaves some participants committed and others not.
func (r *Relay) Run(ctx context.Context, participants map[uint16]Participant, t uint16, progress func(Event)) (*Result, error) {
	if progress == nil {
		progress = func(Event) {}
	}
	if len(participants) > sceremony.MaxParticipants {
		return nil, fmt.Errorf("%w: %d participants, at most %d", ErrInvalid, len(participants), sceremony.MaxParticipants)
	}
	for id := uint16(1); id <= uint16(len(participants)); id++ {
		if _, ok := participants[id]; !ok {
			return nil, fmt.Errorf("%w: the participants' ids must be exactly 1..%d (FROST identifiers); %d is missing",
				ErrInvalid, len(participants), id)
		}
	}
	roster := sceremony.Roster{}
	for id, p := range participants {
		if p == nil {
			return nil, fmt.Errorf("%w: participant %d is nil", ErrInvalid, id)
		}
		roster[id] = p.Identity()
	}
	idb := make([]byte, 16)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	prm := sceremony.Params{CeremonyID: hex.EncodeToString(idb), Threshold: t, MaxSigners: uint16(len(participants)),
		StartedAt: r.cfg.Clock().UTC().Truncate(time.Second), Roster: roster}
	if err := prm.Validate(); err != nil {
		return nil, err // wraps ErrInvalid
	}
	c := &ceremony{r: r, prm: prm, parts: participants, progress: progress,
		log: r.cfg.Log.With("ceremony", prm.CeremonyID)}
	c.log.Info("ceremony started", "threshold", t, "participants", prm.MaxSigners)
	progress(Event{Kind: ceremonyv1.EventKind_EVENT_KIND_STARTED, CeremonyID: prm.CeremonyID, Threshold: t, MaxSigners: prm.MaxSigners})
	res, err := c.run(ctx)
	if err != nil {
		c.abortAll(err)
		var ce *sceremony.CheatError
		if errors.As(err, &ce) {
			c.log.Warn("ceremony aborted: cheating", "culprit", ce.Culprit, "reporter", ce.Reporter,
				"fault", sceremony.FaultName(ce.Fault), "reason", ce.Reason)
		} else {
			c.log.Warn("ceremony aborted", "err", err)
		}
		progress(Event{Kind: ceremonyv1.EventKind_EVENT_KIND_ABORTED, CeremonyID: prm.CeremonyID, Threshold: t,
			MaxSigners: prm.MaxSigners, Err: err})
		return nil, err
	}
	c.log.Info("ceremony done", "kid", res.Kid)
	progress(Event{Kind: ceremonyv1.EventKind_EVENT_KIND_DONE, CeremonyID: prm.CeremonyID, Threshold: t, MaxSigners: prm.MaxSigners,
		Kid: res.Kid, GroupKey: bytes.Clone(res.Group.PublicKey)})
	return res, nil
}

// ceremony is one run of the relay.
type ceremony struct {
	r        *Relay
	prm      sceremony.Params
	parts    map[uint16]Participant
	progress func(Event)
	log      *slog.Logger
}

func (c *ceremony) event(kind ceremonyv1.EventKind, id uint16) {
	c.progress(Event{Kind: kind, CeremonyID: c.prm.CeremonyID, Participant: id, Threshold: c.prm.Threshold, MaxSigners: c.prm.MaxSigners})
}

func (c *ceremony) ids() []uint16 {
	ids := make([]uint16, 0, len(c.parts))
	for id := uint16(1); id <= c.prm.MaxSigners; id++ {
		ids = append(ids, id)
	}
	return ids
}

func (c *ceremony) run(ctx context.Context) (*Result, error) {
	prm := c.prm
	n := prm.MaxSigners

	// Round 1: every participant's signed package, checked here first.
	roots := c.r.cfg.Roots()
	set := make(sceremony.Round1Set, n)
	err := fanout(ctx, c, "begin",
		func(ctx context.Context, p Participant) (*ceremonyv1.BeginResponse, error) {
			return p.Begin(ctx, prm.BeginRequest())
		},
		func(id uint16, resp *ceremonyv1.BeginResponse) error {
			r1, err := sceremony.VerifyRound1(resp.GetPackage(), id, prm, roots, c.r.cfg.Clock())
			if err != nil {
				return err
			}
			if err := c.checkAttestation(ctx, r1); err != nil {
				return err
			}
			set[id] = r1
			c.event(ceremonyv1.EventKind_EVENT_KIND_ROUND1, id)
			return nil
		})
	if err != nil {
		return nil, err
	}
	digest := set.Digest()
	pub, err := frost.PublicGroupFromRound1(prm.Threshold, n, set.DKGMessages())
	if err != nil {
		return nil, &AbortError{CeremonyID: prm.CeremonyID, Stage: "begin", Err: err}
	}
	tr, err := sceremony.BuildTranscript(prm, set, pub)
	if err != nil {
		return nil, &AbortError{CeremonyID: prm.CeremonyID, Stage: "begin", Err: err}
	}

	// Round 2: every participant's envelopes, checked and sorted by
	// recipient.
	packages := make([]*ceremonyv1.Round1Package, 0, n)
	for _, id := range c.ids() {
		packages = append(packages, set[id].Package)
	}
	inbox := make(map[uint16]map[uint16]*ceremonyv1.Round2Envelope, n)
	for _, id := range c.ids() {
		inbox[id] = make(map[uint16]*ceremonyv1.Round2Envelope, n-1)
	}
	err = fanout(ctx, c, "exchange",
		func(ctx context.Context, p Participant) (*ceremonyv1.ExchangeResponse, error) {
			return p.Exchange(ctx, &ceremonyv1.ExchangeRequest{CeremonyId: prm.CeremonyID, Packages: packages})
		},
		func(id uint16, resp *ceremonyv1.ExchangeResponse) error {
			envs := resp.GetEnvelopes()
			if len(envs) != int(n)-1 {
				return &sceremony.CheatError{Culprit: id, Reporter: sceremony.Relay, Fault: ceremonyv1.Fault_FAULT_MALFORMED,
					Reason: fmt.Sprintf("%d round-2 envelopes for %d peers", len(envs), n-1)}
			}
			i := 0
			for _, to := range c.ids() {
				if to == id {
					continue
				}
				if _, err := sceremony.VerifyEnvelope(envs[i], set[id], to, prm, digest); err != nil {
					return err
				}
				inbox[to][id] = envs[i]
				i++
			}
			c.event(ceremonyv1.EventKind_EVENT_KIND_ROUND2, id)
			return nil
		})
	if err != nil {
		return nil, err
	}

	// Finish: every participant's results must be the public computation's.
	hash := tr.Digest()
	sigs := make(map[uint16][]byte, n)
	err = fanoutEach(ctx, c, "finish", false,
		func(ctx context.Context, id uint16, p Participant) (*ceremonyv1.FinishResponse, error) {
			req := &ceremonyv1.FinishRequest{CeremonyId: prm.CeremonyID}
			for _, from := range c.ids() {
				if from != id {
					req.Envelopes = append(req.Envelopes, inbox[id][from])
				}
			}
			return p.Finish(ctx, req)
		},
		func(id uint16, resp *ceremonyv1.FinishResponse) error {
			mismatch := func(what string) error {
				return &sceremony.CheatError{Culprit: id, Reporter: sceremony.Relay, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
					Reason: what + " is not the one the round-1 commitments yield"}
			}
			switch {
			case !bytes.Equal(resp.GetGroupPublicKey(), pub.PublicKey):
				return mismatch("its group key")
			case !bytes.Equal(resp.GetPublicKeyShare(), pub.Shares[id]):
				return mismatch("its public key share")
			case !bytes.Equal(resp.GetTranscriptSha256(), hash):
				return mismatch("its transcript hash")
			case !sceremony.VerifyTranscriptSignature(set[id], hash, resp.GetTranscriptSignature()):
				return &sceremony.CheatError{Culprit: id, Reporter: sceremony.Relay, Fault: ceremonyv1.Fault_FAULT_BAD_SIGNATURE,
					Reason: "its transcript signature does not verify"}
			}
			sigs[id] = resp.GetTranscriptSignature()
			c.event(ceremonyv1.EventKind_EVENT_KIND_FINISHED, id)
			return nil
		})
	if err != nil {
		return nil, err
	}

	// Commit: everyone signed the same transcript; no operator departure
	// stops it now.
	req := &ceremonyv1.CommitRequest{CeremonyId: prm.CeremonyID, TranscriptSha256: hash}
	for _, id := range c.ids() {
		req.Signatures = append(req.Signatures, &ceremonyv1.TranscriptSignature{ParticipantId: uint32(id), Signature: sigs[id]})
	}
	var committed []uint16
	err = fanoutEach(context.WithoutCancel(ctx), c, "commit", true,
		func(ctx context.Context, _ uint16, p Participant) (*ceremonyv1.CommitResponse, error) {
			return p.Commit(ctx, req)
		},
		func(id uint16, resp *ceremonyv1.CommitResponse) error {
			committed = append(committed, id)
			if resp.GetKid() != tr.KeyID {
				return &sceremony.CheatError{Culprit: id, Reporter: sceremony.Relay, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
					Reason: fmt.Sprintf("committed kid %q, want %q", resp.GetKid(), tr.KeyID)}
			}
			c.event(ceremonyv1.EventKind_EVENT_KIND_COMMITTED, id)
			return nil
		})
	if err != nil {
		var ae *AbortError
		if errors.As(err, &ae) {
			slices.Sort(committed)
			ae.Committed = committed
		}
		return nil, err
	}
	out, err := tr.WithSignatures(set, sigs).Marshal()
	if err != nil {
		return nil, err
	}
	return &Result{CeremonyID: prm.CeremonyID, Kid: tr.KeyID, Group: pub, Transcript: out}, nil
}

// checkAttestation judges r's evidence when the relay is configured to.
func (c *ceremony) checkAttestation(ctx context.Context, r *sceremony.Round1) error {
	cfg := c.r.cfg
	if cfg.Attestation == nil {
		return nil
	}
	res, err := sceremony.VerifyAttestation(ctx, r, c.prm, cfg.Attestation, cfg.RequireAttestation)
	if err != nil {
		return err
	}
	if res != nil {
		c.log.Info("participant attested", "participant", r.ID, "measurement", res.Measurement)
	} else {
		c.log.Info("participant not attested (not required)", "participant", r.ID)
	}
	return nil
}

// fanout calls every participant at once with the same call.
func fanout[T any](ctx context.Context, c *ceremony, stage string, call func(context.Context, Participant) (T, error), check func(uint16, T) error) error {
	return fanoutEach(ctx, c, stage, false, func(ctx context.Context, _ uint16, p Participant) (T, error) { return call(ctx, p) }, check)
}

type reply[T any] struct {
	id  uint16
	v   T
	err error
}

// fanoutEach calls every participant at once, within the round timeout,
// and checks each answer in this goroutine as it comes. The first failure
// is returned as an *AbortError; it cancels the round, unless all is set:
// then every call runs to its end and every successful answer is still
// checked (the commit, where each success is a key written).
func fanoutEach[T any](ctx context.Context, c *ceremony, stage string, all bool, call func(context.Context, uint16, Participant) (T, error), check func(uint16, T) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.r.cfg.RoundTimeout)
	defer cancel()
	ch := make(chan reply[T], len(c.parts))
	for id, p := range c.parts {
		go func() {
			v, err := call(ctx, id, p)
			ch <- reply[T]{id: id, v: v, err: err}
		}()
	}
	var first error
	for range c.parts {
		rep := <-ch
		if first != nil && (!all || rep.err != nil) {
			continue
		}
		var err error
		if rep.err != nil {
			err = c.callError(ctx, stage, rep.id, rep.err)
		} else if cerr := check(rep.id, rep.v); cerr != nil {
			err = &AbortError{CeremonyID: c.prm.CeremonyID, Stage: stage, Participant: rep.id, Err: cerr}
		}
		if err != nil && first == nil {
			first = err
			if !all {
				cancel()
			}
		}
	}
	return first
}

func (c *ceremony) callError(ctx context.Context, stage string, id uint16, err error) error {
	err = sceremony.FromStatus(err)
	var ce *sceremony.CheatError
	switch {
	case errors.As(err, &ce):
		err = c.participantBlame(stage, id, ce)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("participant %d did not answer within %s: %w", id, c.r.cfg.RoundTimeout, context.DeadlineExceeded)
	default:
		err = fmt.Errorf("participant %d: %w", id, err)
	}
	return &AbortError{CeremonyID: c.prm.CeremonyID, Stage: stage, Participant: id, Err: err}
}

// participantBlame judges the blame participant id returned at stage. The
// relay heard it from id, so id is the reporter whatever the message
// says. The relay checked everything public before forwarding it, so an
// honest participant names a peer only for what needs its own secret or
// judgement: at exchange, the peer's attestation; at finish, the peer's
// ciphertext or share. Any other blame of a peer (or of no such
// participant) is false, and its reporter is the culprit.
func (c *ceremony) participantBlame(stage string, id uint16, ce *sceremony.CheatError) *sceremony.CheatError {
	out := *ce
	out.Reporter = id
	if out.Culprit == sceremony.Relay || out.Culprit == id {
		return &out
	}
	f := out.Fault
	if out.Culprit <= c.prm.MaxSigners &&
		(stage == "exchange" && f == ceremonyv1.Fault_FAULT_ATTESTATION ||
			stage == "finish" && (f == ceremonyv1.Fault_FAULT_BAD_CIPHERTEXT || f == ceremonyv1.Fault_FAULT_BAD_SHARE)) {
		return &out
	}
	return &sceremony.CheatError{Culprit: id, Reporter: sceremony.Relay, Fault: ceremonyv1.Fault_FAULT_MISMATCH,
		Reason: fmt.Sprintf("it blamed participant %d for %s at %s, which the relay had checked or which it cannot judge: %s",
			out.Culprit, sceremony.FaultName(f), stage, out.Reason)}
}

// abortAll tells every participant to abort, at once, whatever ctx the
// ceremony had (it may be why we abort).
func (c *ceremony) abortAll(cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	reason := cause.Error()
	if len(reason) > 400 {
		reason = reason[:400]
	}
	reason = strings.ToValidUTF8(reason, "?")
	done := make(chan struct{}, len(c.parts))
	for id, p := range c.parts {
		go func() {
			defer func() { done <- struct{}{} }()
			if _, err := p.Abort(ctx, &ceremonyv1.AbortRequest{CeremonyId: c.prm.CeremonyID, Reason: reason}); err != nil {
				c.log.Warn("abort not acknowledged", "participant", id, "err", err)
			}
		}()
	}
	for range c.parts {
		<-done
	}
}
