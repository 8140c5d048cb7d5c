package signer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/frostmint/frostmint/policy"
	"github.com/frostmint/frostmint/policy/audit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/token"
)

// refusal is a decision not to sign: the gRPC code and message for the
// coordinator, and a stable reason code for the audit log.
type refusal struct {
	code   codes.Code
	reason string
	msg    string
	err    error
}

func (r *refusal) Error() string {
	if r.err != nil {
		return r.reason + ": " + r.err.Error()
	}
	return r.reason + ": " + r.msg
}

func (r *refusal) Unwrap() error { return r.err }

func refuse(code codes.Code, reason string, err error, format string, a ...any) error {
	return &refusal{code: code, reason: reason, msg: fmt.Sprintf(format, a...), err: err}
}

// judge is the signer's own decision, in this order: same policy as the
// coordinator; the message is a token of our profile for our issuer and
// key, issued now; the caller's evidence verifies; the caller is within
// this signer's limits; the token says exactly what the evidence proves
// and the caller asked; policy allows it; and the evidence has not minted
// another token. pol is the policy in force for this request. rec is filled
// in as facts are established.
//
// With sign false (an approval request) the approvals are not required
// and the evidence is not spent: the same request comes back to sign.
func (s *Server) judge(ctx context.Context, pol Policy, req judgeInput, rec *audit.Record, sign bool) (*token.Claims, *epoch, error) {
	c, e, dec, err := s.judgeRequest(ctx, pol, &req, rec)
	if err != nil {
		return nil, nil, err
	}
	if dec.RequiresApproval && sign {
		id, who, err := checkApprovals(req.approvals, req.msg, s.tlsKeys.Roots(), s.cfg.Approvers, s.now())
		if err != nil {
			rec.Reasons = append(dec.Reasons, err.Error())
			return nil, nil, refuse(codes.PermissionDenied, "approval_required", err,
				"policy requires a guardian's approval for this token, and none that this signer trusts was given")
		}
		rec.Approval = &audit.Approval{Guardian: id, Approver: who}
	}
	if !sign {
		return c, e, nil
	}
	// Last: the evidence mints this token and no other.
	id := req.identity
	if err := s.uses.Use(ctx, id.UseKey, c.ID, id.Expiry); err != nil {
		if errors.Is(err, evidence.ErrReused) {
			return nil, nil, refuse(codes.Unauthenticated, "evidence_reused", err, "the caller's evidence was already used for another token")
		}
		return nil, nil, refuse(codes.Unavailable, "evidence_store", err, "cannot record the evidence's use now")
	}
	return c, e, nil
}

// judgeInput is what a Sign or Approve request asks to judge.
type judgeInput struct {
	msg        []byte
	caller     *mintv1.MintRequest
	policyHash string
	approvals  []*signv1.Approval
	// identity is filled in by judgeRequest.
	identity *evidence.Identity
}

// judgeRequest is judge up to and including the policy; it sets
// req.identity.
func (s *Server) judgeRequest(ctx context.Context, pol Policy, req *judgeInput, rec *audit.Record) (*token.Claims, *epoch, policy.Decision, error) {
	var none policy.Decision
	if req.policyHash != pol.Hash() {
		return nil, nil, none, refuse(codes.FailedPrecondition, "policy_mismatch", nil,
			"policy bundle mismatch: this signer has %s, the coordinator sent %s", short(pol.Hash()), short(req.policyHash))
	}
	c, e, err := s.checkMessage(req.msg)
	if err != nil {
		if errors.Is(err, token.ErrTTL) || errors.Is(err, errRule) {
			return nil, nil, none, refuse(codes.PermissionDenied, "token_refused", err, "refused: %v", err)
		}
		return nil, nil, none, refuse(codes.InvalidArgument, "not_a_token", err, "refused: %v", err)
	}
	rec.JTI = c.ID
	rec.Granted = &audit.Granted{Audience: c.Audience, Scope: c.Scope, TTLSeconds: c.Expiry - c.IssuedAt, Expiry: c.Expiry}

	er, ev, err := CallerEvidence(req.caller)
	if err != nil {
		return nil, nil, none, refuse(codes.InvalidArgument, "no_evidence", err, "refused: %v", err)
	}
	rec.Requested = &audit.Requested{Audience: er.Audience, Scopes: er.Scopes, TTLSeconds: er.TTLSeconds}
	id, err := s.evidence.Verify(ctx, er, ev)
	if err != nil {
		if errors.Is(err, evidence.ErrUnavailable) {
			return nil, nil, none, refuse(codes.Unavailable, "evidence_unverifiable", err, "cannot verify the caller's evidence now")
		}
		reason := "evidence_invalid"
		switch {
		case errors.Is(err, evidence.ErrExpired):
			reason = "evidence_expired"
		case errors.Is(err, evidence.ErrUntrusted):
			reason = "evidence_untrusted"
		}
		return nil, nil, none, refuse(codes.Unauthenticated, reason, err, "the caller's evidence does not verify: %v", err)
	}
	rec.Subject, rec.ClientID, rec.EvidenceKind = id.Subject, id.ClientID, string(id.Kind)

	if err := s.limits.Allow(id.Subject, nil); err != nil {
		return nil, nil, none, refuse(codes.ResourceExhausted, "rate_limited", err, "%v", err)
	}

	// The token must say what the evidence proves and the caller asked.
	var bad []string
	if c.Subject != id.Subject {
		bad = append(bad, fmt.Sprintf("sub %q is not the caller %q", c.Subject, id.Subject))
	}
	if c.ClientID != id.ClientID {
		bad = append(bad, fmt.Sprintf("client_id %q is not the caller's %q", c.ClientID, id.ClientID))
	}
	if c.Audience != er.Audience {
		bad = append(bad, fmt.Sprintf("aud %q was not requested (%q)", c.Audience, er.Audience))
	}
	if c.Scope != strings.Join(er.Scopes, " ") {
		bad = append(bad, fmt.Sprintf("scope %q was not requested (%q)", c.Scope, strings.Join(er.Scopes, " ")))
	}
	switch {
	case (c.Binding == nil) != (er.Binding == nil):
		bad = append(bad, "request binding differs from the caller's request")
	case c.Binding != nil && *c.Binding != *er.Binding:
		bad = append(bad, "request binding differs from the caller's request")
	}
	ttl := c.TTL()
	if er.TTLSeconds > 0 && ttl > time.Duration(er.TTLSeconds)*time.Second {
		bad = append(bad, fmt.Sprintf("lifetime %s is longer than requested", ttl))
	}
	if len(bad) > 0 {
		rec.Reasons = bad
		return nil, nil, none, refuse(codes.PermissionDenied, "token_mismatch", nil, "the token does not match the caller's request: %s", strings.Join(bad, "; "))
	}

	judged := ttl
	if er.TTLSeconds > 0 {
		judged = time.Duration(er.TTLSeconds) * time.Second
	}
	dec, err := pol.Evaluate(ctx, PolicyInput(id, er, judged, s.now(), int(s.cfg.ID)))
	if err != nil {
		return nil, nil, none, refuse(codes.Internal, "policy_error", err, "policy could not decide")
	}
	if !dec.Allow {
		rec.Reasons = dec.Reasons
		return nil, nil, none, refuse(codes.PermissionDenied, "policy_denied", nil, "policy denied: %s", strings.Join(dec.Reasons, "; "))
	}
	if dec.MaxTTL > 0 && ttl > dec.MaxTTL {
		return nil, nil, none, refuse(codes.PermissionDenied, "ttl_above_policy", nil, "lifetime %s exceeds the policy's %s", ttl, dec.MaxTTL)
	}
	req.identity = id
	return c, e, dec, nil
}

func short(h string) string {
	if len(h) > 12 {
		// Not h[:12] alone: cut inside a rune, the refusal's message is not
		// UTF-8, and a guardian cannot send it back over its stream.
		return strings.ToValidUTF8(h[:12], "")
	}
	if h == "" {
		return "(none)"
	}
	return h
}
