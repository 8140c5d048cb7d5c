package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
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
func (s *Server) Mint(ctx context.Context, req *mintv1.MintRequest) (*mintv1.MintResponse, error) {
	rid := newRequestID()
	log := s.log.With("request_id", rid)
	pol := signer.Snapshot(s.policy)
	rec := audit.Record{Daemon: "coordinator", RequestID: rid, PolicyHash: pol.Hash()}
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
		if aerr := s.audit.Append(rec); aerr != nil {
			log.Error("audit write failed", "err", aerr)
			return nil, status.Errorf(codes.Unavailable, "the coordinator cannot write its audit log; request %s", rid)
		}
		return nil, status.Error(d.code, d.msg)
	}
	rec.Decision = "allow"
	if err := s.audit.Append(rec); err != nil {
		log.Error("audit write failed; token withheld", "err", err)
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
	id, err := s.evidence.Verify(ctx, er, ev)
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
	dec, err := pol.Evaluate(ctx, signer.PolicyInput(id, er, ttl, now, 0))
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
		a, err := s.approve(ctx, log, rid, msg, req, pol.Hash())
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
	sig, ids, err := s.sign(ctx, log, key, &signv1.SignRequest{Message: msg, RequestId: rid, CallerRequest: req,
		PolicyHash: pol.Hash(), Approvals: approvals})
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
	log.Info("minted", "jti", jti, "aud", claims.Audience, "scope", claims.Scope, "ttl", ttl.String(), "signers", ids)
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

// sign collects t shares of key k for the message of base and aggregates
// them, retrying with other quorums when signers fail or refuse. It
// returns the signature and the signer ids.
func (s *Server) sign(ctx context.Context, log *slog.Logger, k *activeKey, base *signv1.SignRequest) ([]byte, []uint16, error) {
	msg := base.GetMessage()
	excluded := map[uint16]string{}
	refused := 0
	for attempt := 0; attempt < len(s.pools); attempt++ {
		q, err := s.pickQuorum(ctx, k, excluded)
		if err != nil {
			var qe *QuorumError
			if errors.As(err, &qe) {
				qe.Refused = refused
			}
			return nil, nil, err
		}
		cs := make([]frost.Commitment, len(q))
		for i, m := range q {
			cs[i] = m.c
		}
		list, err := k.group.EncodeList(cs)
		if err != nil {
			return nil, nil, err
		}
		shares := make([]frost.Share, len(q))
		errs := make([]error, len(q))
		var wg sync.WaitGroup
		for i, m := range q {
			wg.Add(1)
			go func(i int, m member) {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.SignTimeout))
				defer cancel()
				client := m.p.rpc()
				if client == nil {
					errs[i] = errAway
					return
				}
				resp, err := client.Sign(cctx, &signv1.SignRequest{Message: msg, CommitmentList: list,
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
			}(i, m)
		}
		wg.Wait()
		failed := false
		for i, err := range errs {
			if err == nil {
				continue
			}
			failed = true
			p := q[i].p
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
				p.markFailed(err)
				excluded[p.ep.ID] = describe(err)
			}
			log.Warn("signer did not sign; retrying with another quorum", "signer", p.ep.ID, "err", err)
		}
		if failed {
			continue
		}
		sig, err := k.group.Aggregate(msg, cs, shares)
		var bad *frost.BadShareError
		if errors.As(err, &bad) {
			log.Error("signer returned an invalid share", "signer", bad.SignerID)
			for _, p := range s.pools {
				if p.ep.ID == bad.SignerID {
					p.quarantine(bad)
				}
			}
			excluded[bad.SignerID] = "invalid signature share"
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		ids := make([]uint16, len(q))
		for i, m := range q {
			ids[i] = m.p.ep.ID
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		return sig, ids, nil
	}
	return nil, nil, &QuorumError{Threshold: int(k.group.Public().Threshold), Missing: excluded, Refused: refused}
}
