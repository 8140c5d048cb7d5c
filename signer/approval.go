package signer

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/policy/audit"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Approvals: when the policy says a token needs a human's approval, a
// guardian asks its engineer, and signs an [signv1.Approval] with the key
// of its mTLS certificate if the engineer says yes. The approval covers
// exactly one token (its signing input, which holds the jti). Every signer
// — not only the guardian, and not the coordinator's word — checks it
// before signing such a token: a compromised coordinator cannot skip the
// human.

// ErrDeclined means the engineer refused the approval.
var ErrDeclined = errors.New("approval declined")

// errApproval means an approval is missing or does not verify.
var errApproval = errors.New("approval does not verify")

const (
	approvalContext = "frostmint approval v1\x00"
	maxApprover     = 256
)

// approvalStatement is what an approval's signature covers.
func approvalStatement(msg []byte, approver string) []byte {
	h := sha256.Sum256(msg)
	out := make([]byte, 0, len(approvalContext)+len(h)+len(approver))
	out = append(out, approvalContext...)
	out = append(out, h[:]...)
	return append(out, approver...)
}

// SignApproval makes the approval of the token msg by approver (who
// approved, for the audit), signed by guardian id with the key of its
// certificate chain. It fails for a key type that cannot sign statements
// (Ed25519, ECDSA P-256 and RSA can).
func SignApproval(id uint16, chain [][]byte, key crypto.Signer, msg []byte, approver string) (*signv1.Approval, error) {
	if len(approver) > maxApprover {
		approver = approver[:maxApprover]
	}
	sig, err := evidence.SignStatement(approvalStatement(msg, approver), key)
	if err != nil {
		return nil, err
	}
	return &signv1.Approval{SignerId: uint32(id), CertChain: chain, Approver: approver, Signature: sig}, nil
}

// checkApprovals returns the identity and approver of the first approval
// that verifies for msg: a chain to roots for client authentication, a
// SPIFFE ID in approvers, and a signature over the statement. It fails,
// wrapping errApproval, when none does.
func checkApprovals(as []*signv1.Approval, msg []byte, roots *x509.CertPool, approvers []string, now time.Time) (string, string, error) {
	if len(as) == 0 {
		return "", "", fmt.Errorf("%w: none given", errApproval)
	}
	var errs []error
	for i, a := range as {
		if i == 4 {
			break // bounded work for a flood of bogus approvals
		}
		id, err := checkApproval(a, msg, roots, approvers, now)
		if err == nil {
			return id, a.GetApprover(), nil
		}
		errs = append(errs, err)
	}
	return "", "", fmt.Errorf("%w: %w", errApproval, errors.Join(errs...))
}

func checkApproval(a *signv1.Approval, msg []byte, roots *x509.CertPool, approvers []string, now time.Time) (string, error) {
	chain := a.GetCertChain()
	if len(chain) == 0 || len(chain) > evidence.MaxChainLength || len(a.GetApprover()) > maxApprover {
		return "", errors.New("malformed approval")
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		if len(der) > evidence.MaxCertificateSize {
			return "", errors.New("malformed approval certificate")
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", fmt.Errorf("approval certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("approval certificate: %w", err)
	}
	id, err := mtls.IdentityOf(certs[0])
	if err != nil {
		return "", err
	}
	if !slices.Contains(approvers, id) {
		return "", fmt.Errorf("%s is not an approver this signer trusts", id)
	}
	if err := evidence.VerifyStatement(certs[0].PublicKey, approvalStatement(msg, a.GetApprover()), a.GetSignature()); err != nil {
		return "", fmt.Errorf("approval by %s: %w", id, err)
	}
	return id, nil
}

// ApprovalPrompt is what an engineer is asked to approve.
type ApprovalPrompt struct {
	RequestID string
	Subject   string
	ClientID  string
	Audience  string
	Scope     string
	TTL       time.Duration
	Reasons   []string
}

func (p ApprovalPrompt) String() string {
	return fmt.Sprintf("frostmint: %s (client %s) asks for a token for %s with scope %q, valid %s (request %s)",
		p.Subject, p.ClientID, p.Audience, p.Scope, p.TTL, p.RequestID)
}

// Approver asks a human to approve a token.
type Approver interface {
	// Approve shows p and waits for the answer. It returns who approved
	// (for the audit log) and nil when the human says yes; an error
	// wrapping [ErrDeclined] when they say no; ctx's error when nobody
	// answered in time; another error when it cannot ask at all.
	Approve(ctx context.Context, p ApprovalPrompt) (string, error)
}

// denyApprover refuses every request: a guardian configured to never
// approve (for example, one whose engineer is away).
type denyApprover struct{}

func (denyApprover) Approve(context.Context, ApprovalPrompt) (string, error) {
	return "", fmt.Errorf("%w: this guardian is configured to decline every approval", ErrDeclined)
}

// lineApprover asks on a terminal (or any writer) and reads "yes" or "no"
// lines from a reader. One question at a time; answers typed while no
// question is pending are discarded, so a stray "y" cannot approve the
// next request.
type lineApprover struct {
	out    io.Writer
	who    string
	notify func(ApprovalPrompt)

	ask   sync.Mutex // one question at a time
	mu    sync.Mutex
	lines chan string
	rerr  error
}

// newLineApprover reads answers from in, in the background.
func newLineApprover(in io.Reader, out io.Writer, who string, notify func(ApprovalPrompt)) *lineApprover {
	a := &lineApprover{out: out, who: who, notify: notify, lines: make(chan string)}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			a.lines <- strings.TrimSpace(sc.Text())
		}
		a.mu.Lock()
		a.rerr = sc.Err()
		if a.rerr == nil {
			a.rerr = io.EOF
		}
		a.mu.Unlock()
		close(a.lines)
	}()
	return a
}

func (a *lineApprover) Approve(ctx context.Context, p ApprovalPrompt) (string, error) {
	a.ask.Lock()
	defer a.ask.Unlock()
	// Drop answers typed before the question.
	for drained := false; !drained; {
		select {
		case _, ok := <-a.lines:
			if !ok {
				drained = true
			}
		default:
			drained = true
		}
	}
	if a.notify != nil {
		a.notify(p)
	}
	deadline, _ := ctx.Deadline()
	fmt.Fprintf(a.out, "\n%s\n", p)
	for _, r := range p.Reasons {
		fmt.Fprintf(a.out, "  policy: %s\n", r)
	}
	fmt.Fprintf(a.out, "Approve? [y/N] (answer before %s) ", deadline.Format("15:04:05"))
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(a.out, "\nno answer in time: declined")
			return "", ctx.Err()
		case l, ok := <-a.lines:
			if !ok {
				a.mu.Lock()
				err := a.rerr
				a.mu.Unlock()
				return "", fmt.Errorf("cannot read the answer: %w", err)
			}
			switch strings.ToLower(l) {
			case "y", "yes":
				fmt.Fprintln(a.out, "approved")
				return a.who, nil
			case "n", "no", "":
				fmt.Fprintln(a.out, "declined")
				return "", fmt.Errorf("%w by %s", ErrDeclined, a.who)
			default:
				fmt.Fprint(a.out, "please answer y or n: ")
			}
		}
	}
}

// localUser names the engineer: user@host.
func localUser() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// desktopNotify shows p as a desktop notification when notify-send is
// available; otherwise it does nothing (the terminal prompt remains).
func desktopNotify(p ApprovalPrompt) {
	path, err := exec.LookPath("notify-send")
	if err != nil {
		return
	}
	cmd := exec.Command(path, "--urgency=critical", "frostmint approval", p.String())
	_ = cmd.Start()
	go func() { _ = cmd.Wait() }()
}

// Approve implements signv1.SignerServiceServer: a guardian judges the
// request as for Sign (without spending the evidence), asks its engineer,
// audits the answer, and returns a signed approval only on a yes.
func (s *Server) Approve(ctx context.Context, req *signv1.ApproveRequest) (*signv1.ApproveResponse, error) {
	if s.approver == nil {
		return nil, status.Error(codes.Unimplemented, "this signer has no engineer to ask: it is not a guardian")
	}
	log := s.log.With("request_id", req.GetRequestId(), "signer", s.cfg.ID)
	pol := snapshot(s.policy)
	rec := audit.Record{Daemon: fmt.Sprintf("signer-%d", s.cfg.ID), RequestID: req.GetRequestId(), PolicyHash: pol.Hash(), Code: "approval"}
	fail := func(code codes.Code, reason, msg string, err error) (*signv1.ApproveResponse, error) {
		log.Warn("approval refused", "reason", reason, "err", err)
		rec.Decision, rec.Code = audit.Deny, reason
		if len(rec.Reasons) == 0 {
			rec.Reasons = []string{msg}
		}
		if aerr := s.audit.Append(rec); aerr != nil {
			log.Error("audit write failed", "err", aerr)
			return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
		}
		return nil, status.Error(code, msg)
	}
	c, e, err := s.judge(ctx, pol, judgeInput{msg: req.GetMessage(), caller: req.GetCallerRequest(), policyHash: req.GetPolicyHash()}, &rec, false)
	if err != nil {
		r, ok := errors.AsType[*refusal](err)
		if !ok {
			r = &refusal{code: codes.Internal, reason: "internal", msg: "internal error"}
		}
		return fail(r.code, r.reason, r.msg, err)
	}
	rec.KeyID = e.kid
	timeout := 2 * time.Minute
	if s.cfg.Guardian != nil {
		timeout = s.cfg.Guardian.approvalTimeout()
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	who, err := s.approver.Approve(actx, ApprovalPrompt{RequestID: req.GetRequestId(), Subject: c.Subject, ClientID: c.ClientID,
		Audience: c.Audience, Scope: c.Scope, TTL: c.TTL()})
	switch {
	case errors.Is(err, ErrDeclined):
		return fail(codes.PermissionDenied, "approval_declined", fmt.Sprintf("guardian %d: the engineer declined the approval", s.cfg.ID), err)
	case errors.Is(err, context.DeadlineExceeded):
		return fail(codes.DeadlineExceeded, "approval_timeout", fmt.Sprintf("guardian %d: no answer from the engineer within %s", s.cfg.ID, timeout), err)
	case err != nil:
		return fail(codes.Unavailable, "approval_unavailable", fmt.Sprintf("guardian %d cannot ask its engineer now", s.cfg.ID), err)
	}
	identity := s.tlsKeys.Certificate()
	key, ok := identity.PrivateKey.(crypto.Signer)
	if !ok {
		return fail(codes.Internal, "internal", "internal error", errors.New("identity key cannot sign"))
	}
	a, err := SignApproval(s.cfg.ID, identity.Certificate, key, req.GetMessage(), who)
	if err != nil {
		return fail(codes.Internal, "internal", "internal error", err)
	}
	rec.Decision, rec.Code = audit.Allow, "approved"
	rec.Approval = &audit.Approval{Guardian: "", Approver: who}
	if id, err := mtls.IdentityOf(identity.Leaf); err == nil {
		rec.Approval.Guardian = id
	}
	if err := s.audit.Append(rec); err != nil {
		log.Error("audit write failed; approval withheld", "err", err)
		return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
	}
	log.Info("approved", "jti", c.ID, "sub", c.Subject, "scope", c.Scope, "approver", who)
	return &signv1.ApproveResponse{Approval: a}, nil
}
