package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/frostmint/frostmint/policy/audit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/token"
)

// denial is a refused mint: the status for the caller, a stable reason
// code for the audit log, and the detail for our log.
type denial struct {
	code   codes.Code
	reason string
	msg    string
	err    error
}

func (d *denial) Error() string {
	if d.err != nil {
		return d.reason + ": " + d.err.Error()
	}
	return d.reason + ": " + d.msg
}

func (d *denial) Unwrap() error { return d.err }

func deny(code codes.Code, reason string, err error, format string, a ...any) error {
	return &denial{code: code, reason: reason, msg: fmt.Sprintf(format, a...), err: err}
}

// Mint implements mintv1.MintServiceServer. Every outcome is audited
// before the caller hears of it; if the audit record cannot be written the
// mint fails. Callers get fixed, helpful messages; details go to the log
// under the request id.
func (s *Server) Mint(ctx context.Context, req *mintv1.MintRequest) (_ *mintv1.MintResponse, err error) {
	rid := newRequestID()
	log := s.log.With("request_id", rid)
	pol := signer.Snapshot(s.policy)
	rec := audit.Record{Daemon: "coordinator", RequestID: rid, PolicyHash: pol.Hash()}
	ctx, done := s.obs.startMint(ctx, rid)
	var auditErr error
	defer func() { done(&rec, err, auditErr != nil) }()
	resp, err := s.mint(ctx, log, pol, rid, req, &rec)
	if err != nil {
		var d *denial
		if !errors.As(err, &d) {
			d = &denial{code: codes.Internal, reason: "internal", msg: "internal error; request " + rid, err: err}
		}
		log.Info("mint refused", "reason", d.reason, "sub", rec.Subject, "err", err)
		rec.Decision, rec.Code = "deny", d.reason
		if len(rec.Reasons) == 0 {
			rec.Reasons = []string{d.msg}
		}
		if auditErr = s.appendAudit(ctx, rec); auditErr != nil {
			log.Error("audit write failed", "err", auditErr)
			return nil, status.Errorf(codes.Unavailable, "the coordinator cannot write its audit log; request %s", rid)
		}
		return nil, status.Error(d.code, d.msg)
	}
	rec.Decision = "allow"
	if auditErr = s.appendAudit(ctx, rec); auditErr != nil {
		log.Error("audit write failed; token withheld", "err", auditErr)
		return nil, status.Errorf(codes.Unavailable, "the coordinator cannot write its audit log; request %s", rid)
	}
	return resp, nil
}

func (s *Server) mint(ctx context.Context, log *slog.Logger, pol Policy, rid string, req *mintv1.MintRequest, rec *audit.Record) (*mintv1.MintResponse, error) {
	ttl, err := s.requestedTTL(req)
	if err != nil {
		return nil, deny(codes.InvalidArgument, "bad_request", err, "%v", err)
	}
	scopes := req.GetScopes()
	if err := checkRequest(req.GetAudience(), scopes); err != nil {
		return nil, deny(codes.InvalidArgument, "bad_request", err, "%v", err)
	}
	er, ev, err := signer.CallerEvidence(req)
	if err != nil {
		return nil, deny(codes.Unauthenticated, "no_evidence", err, "a mint request must carry your evidence: a certificate proof over mTLS, or an OIDC ID token (%v)", err)
	}
	rec.Requested = &audit.Requested{Audience: er.Audience, Scopes: er.Scopes, TTLSeconds: er.TTLSeconds}
	if ev.CertChain != nil {
		// A certificate proof must arrive over a connection authenticated
		// with the same certificate.
		if leaf, ok := peerLeaf(ctx); !ok || len(ev.CertChain) == 0 || !bytes.Equal(leaf, ev.CertChain[0]) {
			return nil, deny(codes.Unauthenticated, "evidence_invalid", nil,
				"a certificate proof must come over mTLS with the same client certificate")
		}
	}
	actx, endAuth := s.obs.stage(ctx, "authenticate")
	id, err := s.evidence.Verify(actx, er, ev)
	endAuth(err)
	if err != nil {
		if errors.Is(err, evidence.ErrUnavailable) {
			return nil, deny(codes.Unavailable, "evidence_unverifiable", err, "cannot verify the evidence now; try again")
		}
		reason := "evidence_invalid"
		switch {
		case errors.Is(err, evidence.ErrExpired):
			reason = "evidence_expired"
		case errors.Is(err, evidence.ErrUntrusted):
			reason = "evidence_untrusted"
		}
		return nil, deny(codes.Unauthenticated, reason, err, "the evidence does not prove who you are (%s)", reason)
	}
	rec.Subject, rec.ClientID, rec.EvidenceKind = id.Subject, id.ClientID, string(id.Kind)
	log = log.With("sub", id.Subject)

	if err := s.limits.Allow(id.Subject, scopes); err != nil {
		return nil, deny(codes.ResourceExhausted, "rate_limited", err, "%v", err)
	}
	now := s.now()
	pctx, endPolicy := s.obs.stage(ctx, "policy")
	dec, err := pol.Evaluate(pctx, signer.PolicyInput(id, er, ttl, now, 0))
	endPolicy(err)
	if err != nil {
		return nil, deny(codes.Internal, "policy_error", err, "policy could not decide; request %s refused", rid)
	}
	if !dec.Allow {
		rec.Reasons = dec.Reasons
		return nil, deny(codes.PermissionDenied, "policy_denied", nil, "policy denied the request: %s", strings.Join(dec.Reasons, "; "))
	}
	if dec.MaxTTL > 0 && ttl > dec.MaxTTL {
		if req.GetTtl() != nil {
			return nil, deny(codes.PermissionDenied, "ttl_above_policy", nil, "policy allows at most %s for these scopes", dec.MaxTTL)
		}
		ttl = dec.MaxTTL
	}
	jti, err := token.NewID(rand.Reader)
	if err != nil {
		return nil, deny(codes.Internal, "internal", err, "internal error")
	}
	iat := now.Unix()
	claims := token.Claims{
		Issuer: strings.TrimSuffix(s.cfg.Issuer, "/"), Subject: id.Subject, ClientID: id.ClientID,
		Audience: req.GetAudience(), Scope: strings.Join(scopes, " "),
		IssuedAt: iat, NotBefore: iat, Expiry: iat + int64(ttl/time.Second), ID: jti,
		Binding: er.Binding,
	}
	rec.JTI = jti
	rec.Granted = &audit.Granted{Audience: claims.Audience, Scope: claims.Scope, TTLSeconds: claims.Expiry - claims.IssuedAt, Expiry: claims.Expiry}
	key := s.active()
	if key == nil {
		return nil, deny(codes.FailedPrecondition, "no_key", nil, "this cluster has no key yet: run the key ceremony (frostmint ceremony)")
	}
	rec.KeyID = key.kid
	msg, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: key.kid}, claims)
	if err != nil {
		return nil, deny(codes.InvalidArgument, "bad_request", err, "the request does not make a valid token: %v", err)
	}
	// A human approves before the evidence is spent: a declined request
	// leaves the caller's evidence usable for another try.
	var approvals []*signv1.Approval
	if dec.RequiresApproval {
		actx, endApproval := s.obs.approval(ctx)
		a, err := s.approve(actx, log, rid, msg, req, pol.Hash())
		endApproval(err)
		if err != nil {
			rec.Reasons = dec.Reasons
			return nil, err
		}
		approvals = []*signv1.Approval{a}
		rec.Approval = &audit.Approval{Guardian: s.identityOf(uint16(a.GetSignerId())), Approver: a.GetApprover()}
	}
	// The evidence mints this token and no other (the signers check too).
	if err := s.uses.Use(ctx, id.UseKey, jti, id.Expiry); err != nil {
		if errors.Is(err, evidence.ErrReused) {
			return nil, deny(codes.Unauthenticated, "evidence_reused", err, "this evidence was already used; make a fresh request")
		}
		return nil, deny(codes.Unavailable, "evidence_store", err, "cannot record the evidence's use now")
	}
	var rep signReport
	sig, ids, err := s.sign(ctx, log, key, &signv1.SignRequest{Message: msg, RequestId: rid, CallerRequest: req,
		PolicyHash: pol.Hash(), Approvals: approvals}, &rep)
	rec.InvalidShares = rep.invalid
	if err != nil {
		var q *QuorumError
		if errors.As(err, &q) {
			code := codes.Unavailable
			if q.Refused > 0 {
				code = codes.PermissionDenied
			}
			return nil, deny(code, "no_quorum", err, "%v", q)
		}
		return nil, deny(codes.Unavailable, "signing_failed", err, "signing failed; request %s", rid)
	}
	rec.Signers = ids
	log.Info("minted", "jti", jti, "aud", claims.Audience, "scope", claims.Scope, "ttl", ttl.String(), "signers", ids,
		"attempts", rep.attempts, "hedged", rep.hedged)
	resp := &mintv1.MintResponse{Token: token.Compact(msg, sig), TokenId: jti,
		ExpiresAt: timestamppb.New(time.Unix(claims.Expiry, 0)), RequestId: rid}
	for _, id := range ids {
		resp.SignerIds = append(resp.SignerIds, uint32(id))
	}
	return resp, nil
}

// peerLeaf returns the verified client certificate of the connection.
func peerLeaf(ctx context.Context) ([]byte, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, false
	}
	return ti.State.VerifiedChains[0][0].Raw, true
}

// signReport is what one sign call learned about the signers, for the
// audit record and the log.
type signReport struct {
	// invalid are the signers whose signature share failed verification:
	// named culprits, quarantined.
	invalid []uint16
	// attempts counts the quorums asked; hedged, those asked while another
	// attempt was still out (a member silent for hedge_after, or another
	// attempt failed meanwhile).
	attempts, hedged int
}

// errLeftBehind is what a signer is marked with when a hedged attempt
// finished while it had not answered for at least hedge_after.
var errLeftBehind = status.Error(codes.DeadlineExceeded, "no answer within hedge_after; another quorum signed")

// attempt is one quorum asked for its shares. Its commitments were taken
// from the pools for it alone: no commitment is ever sent twice.
type attempt struct {
	q       []member
	cs      []frost.Commitment
	list    []byte // the encoded commitment list
	started time.Time

	mu      sync.Mutex
	pending map[uint16]bool // members that have not answered yet
}

func (a *attempt) answered(id uint16) {
	a.mu.Lock()
	delete(a.pending, id)
	a.mu.Unlock()
}

// waitingFor returns the members that have not answered yet.
func (a *attempt) waitingFor() []*pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ps []*pool
	for _, m := range a.q {
		if a.pending[m.p.ep.ID] {
			ps = append(ps, m.p)
		}
	}
	return ps
}

// outcome is how an attempt ended: a signature, or an error per member
// that did not sign, or a share that failed verification, or an error
// that ends the mint (err).
type outcome struct {
	a    *attempt
	sig  []byte
	errs []error
	bad  *frost.BadShareError
	err  error
}

// sign collects t shares of key k for the message of base and aggregates
// them, retrying with other quorums when signers fail or refuse. It
// returns the signature and the signer ids; rep says what it learned.
//
// Hedging: when a member of the quorum asked has not answered within
// hedge_after, another quorum that leaves out every signer still silent is
// asked too, with commitments of its own, and the first complete set of
// shares makes the token; the other attempts are cancelled. Each signer
// judges (and audits) every request it receives, so a hedge changes nothing
// about who decides. A signer that was left behind is marked unhealthy, so
// that later mints pick other signers at once, until it answers the
// coordinator's health checks again. At most one attempt per configured
// signer is made, hedges included.
func (s *Server) sign(ctx context.Context, log *slog.Logger, k *activeKey, base *signv1.SignRequest, rep *signReport) ([]byte, []uint16, error) {
	caller := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the attempts still out
	t := int(k.group.Public().Threshold)
	hedgeAfter := time.Duration(s.cfg.HedgeAfter)
	budget := len(s.pools)
	done := make(chan outcome, budget) // never blocks an abandoned attempt
	running := map[*attempt]bool{}
	excluded := map[uint16]string{}
	refused := 0
	quorumErr := func(err error) error {
		var qe *QuorumError
		if errors.As(err, &qe) {
			qe.Refused = refused
		}
		return err
	}
	// begin asks a quorum that leaves out the excluded signers and those in
	// avoid.
	begin := func(avoid []*pool) error {
		skip := maps.Clone(excluded)
		for _, p := range avoid {
			skip[p.ep.ID] = "no answer yet"
		}
		q, err := s.pickQuorum(ctx, k, skip)
		if err != nil {
			return err
		}
		a := &attempt{q: q, cs: make([]frost.Commitment, len(q)), started: time.Now(), pending: map[uint16]bool{}}
		for i, m := range q {
			a.cs[i] = m.c
			a.pending[m.p.ep.ID] = true
		}
		if a.list, err = k.group.EncodeList(a.cs); err != nil {
			return err
		}
		rep.attempts++
		running[a] = true
		go s.runAttempt(ctx, k, base, a, done)
		return nil
	}
	// hedge asks another quorum when one can be made without the signers
	// that have not answered; it reports whether it did.
	hedge := func() bool {
		if rep.attempts >= budget {
			return false
		}
		var silent []*pool
		for a := range running {
			silent = append(silent, a.waitingFor()...)
		}
		avail := 0
		for _, p := range s.pools {
			if _, out := excluded[p.ep.ID]; !out && !slices.Contains(silent, p) && p.usable() {
				avail++
			}
		}
		if len(silent) == 0 || avail < t {
			return false
		}
		if err := begin(silent); err != nil {
			log.Debug("cannot hedge", "err", err)
			return false
		}
		rep.hedged++
		ids := make([]uint16, len(silent))
		for i, p := range silent {
			ids[i] = p.ep.ID
		}
		log.Info("hedging: asking another quorum", "waiting_for", ids)
		return true
	}
	if err := begin(nil); err != nil {
		return nil, nil, quorumErr(err)
	}
	var tick <-chan time.Time // nil: hedging is off
	var timer *time.Timer
	if hedgeAfter > 0 {
		timer = time.NewTimer(hedgeAfter)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		select {
		case <-caller.Done():
			return nil, nil, caller.Err()
		case <-tick:
			hedge()
			timer.Reset(hedgeAfter)
			continue
		case o := <-done:
			delete(running, o.a)
			if o.err != nil {
				return nil, nil, o.err
			}
			if o.sig != nil {
				ids := make([]uint16, len(o.a.q))
				for i, m := range o.a.q {
					ids[i] = m.p.ep.ID
				}
				slices.Sort(ids)
				for a := range running {
					if time.Since(a.started) < hedgeAfter {
						continue
					}
					for _, p := range a.waitingFor() {
						log.Warn("signer left behind by a hedged attempt; marked unhealthy", "signer", p.ep.ID, "after", time.Since(a.started).Round(time.Millisecond).String())
						p.leftBehind(errLeftBehind)
					}
				}
				return o.sig, ids, nil
			}
			refused += s.judgeFailures(log, o, excluded, rep)
		}
		if len(running) > 0 {
			// Another attempt is still out: ask a quorum that does not wait
			// for it, if there is one.
			if hedgeAfter > 0 {
				hedge()
			}
			continue
		}
		if rep.attempts >= budget {
			return nil, nil, &QuorumError{Threshold: t, Missing: excluded, Refused: refused}
		}
		if err := begin(nil); err != nil {
			return nil, nil, quorumErr(err)
		}
		if timer != nil {
			timer.Reset(hedgeAfter)
		}
	}
}

// runAttempt asks every member of a for its share, at once, each within
// sign_timeout, aggregates the shares, and sends the outcome to done.
func (s *Server) runAttempt(ctx context.Context, k *activeKey, base *signv1.SignRequest, a *attempt, done chan<- outcome) {
	msg := base.GetMessage()
	shares := make([]frost.Share, len(a.q))
	errs := make([]error, len(a.q))
	var wg sync.WaitGroup
	fctx, endFanout := s.obs.stage(ctx, "fanout")
	for i, m := range a.q {
		wg.Go(func() {
			defer a.answered(m.p.ep.ID)
			cctx, cancel := context.WithTimeout(fctx, time.Duration(s.cfg.SignTimeout))
			defer cancel()
			cctx, endCall := s.obs.signerCall(cctx, m.p.ep.ID)
			defer func() { endCall(errs[i]) }()
			client := m.p.rpc()
			if client == nil {
				errs[i] = errAway
				return
			}
			resp, err := client.Sign(cctx, &signv1.SignRequest{Message: msg, CommitmentList: a.list,
				RequestId: base.GetRequestId(), CallerRequest: base.GetCallerRequest(), PolicyHash: base.GetPolicyHash(),
				Approvals: base.GetApprovals()})
			if err != nil {
				errs[i] = err
				return
			}
			if resp.GetSignerId() != uint32(m.p.ep.ID) {
				errs[i] = fmt.Errorf("answered as signer %d", resp.GetSignerId())
				return
			}
			shares[i] = frost.Share{SignerID: m.p.ep.ID, Encoded: resp.GetSignatureShare()}
			if time.Since(a.started) < time.Duration(s.cfg.HedgeAfter) {
				m.p.prompt()
			}
		})
	}
	wg.Wait()
	endFanout(errors.Join(errs...))
	o := outcome{a: a, errs: errs}
	if !slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		_, endAggregate := s.obs.stage(ctx, "aggregate")
		sig, err := k.group.Aggregate(msg, a.cs, shares)
		endAggregate(err)
		switch {
		case errors.As(err, &o.bad):
		case err != nil:
			o.err = err
		default:
			o.sig = sig
		}
	}
	done <- o
}

// judgeFailures records why the members of a failed attempt did not sign:
// it excludes them for the rest of the mint, drops or quarantines their
// pools as needed, and returns how many refused.
func (s *Server) judgeFailures(log *slog.Logger, o outcome, excluded map[uint16]string, rep *signReport) (refused int) {
	if o.bad != nil {
		log.Error("signer returned an invalid share", "signer", o.bad.SignerID)
		s.obs.cheater(o.bad.SignerID)
		for _, p := range s.pools {
			if p.ep.ID == o.bad.SignerID {
				p.quarantine(o.bad)
			}
		}
		excluded[o.bad.SignerID] = "invalid signature share"
		if !slices.Contains(rep.invalid, o.bad.SignerID) {
			rep.invalid = append(rep.invalid, o.bad.SignerID)
		}
		return 0
	}
	for i, err := range o.errs {
		if err == nil {
			continue
		}
		p := o.a.q[i].p
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Aborted:
			// The signer lost its nonces (restart or expiry): the whole
			// pool is stale.
			p.drop()
			excluded[p.ep.ID] = "stale commitments"
		case codes.FailedPrecondition:
			log.Error("signer runs another policy bundle", "signer", p.ep.ID, "err", st.Message())
			excluded[p.ep.ID] = "refused: " + st.Message()
			refused++
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted:
			// The signer judged the request itself and said no. Others
			// decide for themselves.
			log.Warn("signer refused", "signer", p.ep.ID, "code", st.Code(), "err", st.Message())
			excluded[p.ep.ID] = "refused: " + st.Message()
			refused++
		default:
			// Unreachable (its pooled commitments are dropped: the
			// process may be gone), timed out, or broken.
			p.markFailed(err)
			excluded[p.ep.ID] = describe(err)
		}
		log.Warn("signer did not sign; retrying with another quorum", "signer", p.ep.ID, "err", err)
		s.obs.retry(err)
	}
	return refused
}
