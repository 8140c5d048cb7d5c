package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/policy"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
)

// AttestationConfig makes the coordinator check its signers' SEV-SNP
// attestation (package attest) and ask the policy whether to admit each.
type AttestationConfig struct {
	// Required keeps every signer without a valid attestation out of
	// mints (guardians, which have none, included), and aborts a key
	// ceremony in which a participant's round-1 package carries none.
	// Without it, an unattested signer is used unless the admission
	// policy says no; evidence in a ceremony is still checked when
	// present.
	Required bool `json:"required"`
	// Recheck is how often an admitted signer is attested again even
	// when nothing changed (default 10m); a new TLS key, a restart or a
	// policy change calls for a new report at once.
	Recheck Duration `json:"recheck,omitempty"`
	// Verifier says which reports are valid: roots, measurements, TCB.
	Verifier attest.Config `json:"verifier"`
}

// Validate reports every problem at once.
func (a *AttestationConfig) Validate() error {
	if a == nil {
		return nil
	}
	var errs []error
	if a.Recheck < 0 {
		errs = append(errs, errors.New("attestation.recheck must not be negative"))
	}
	if err := a.Verifier.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("attestation.verifier: %w", err))
	}
	return errors.Join(errs...)
}

// Admitter decides whether a signer may take part in mints. A policy
// that implements it (policy.Engine does) is asked after each
// attestation check.
type Admitter interface {
	// AdmitSigner fails when the policy cannot decide; the signer is then
	// kept out.
	AdmitSigner(ctx context.Context, in policy.AdmissionInput) (policy.Admission, error)
}

// attestation is the coordinator's side of signer attestation.
type attestation struct {
	required bool
	recheck  time.Duration
	verifier *attest.Verifier
}

func newAttestation(c *AttestationConfig, now func() time.Time) (*attestation, error) {
	if c == nil {
		return nil, nil
	}
	v, err := attest.NewVerifier(c.Verifier, attest.WithClock(now))
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	r := time.Duration(c.Recheck)
	if r == 0 {
		r = 10 * time.Minute
	}
	return &attestation{required: c.Required, recheck: r, verifier: v}, nil
}

// attestState is what the coordinator knows of one signer's attestation.
// Fields are guarded by the pool's mu.
type attestState struct {
	seenKey  string         // attest.KeyID of the key of the signer's last TLS handshake
	key      string         // the key the current verdict is bound to
	policy   string         // the coordinator policy hash it is bound to
	bootID   string         // the signer process it is about
	checked  time.Time      // zero: never checked
	admitted bool           // the verdict: may take part
	result   *attest.Result // nil: not attested
	reason   string         // why not admitted
	retryAt  time.Time
	failures int
	running  bool
}

// sawKey records the key of a TLS handshake with the signer: a new key
// (a certificate rotation, or another machine) needs a new attestation
// before the signer is used again.
func (p *pool) sawKey(spki []byte) {
	id := attest.KeyID(spki)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.att.seenKey = id
}

// admittedLocked reports whether the last verdict admits the signer and
// still applies: same TLS key, same process. Callers hold p.mu.
func (p *pool) admittedLocked() bool {
	a := &p.att
	return a.admitted && a.key == a.seenKey && (p.bootID == "" || p.bootID == a.bootID)
}

// attestDue reports whether the signer should be (re)attested now, and
// marks the check as running.
func (p *pool) attestDue(now time.Time, policyHash string, recheck time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := &p.att
	if a.running || p.client == nil {
		return false
	}
	due := false
	switch {
	case a.checked.IsZero():
		due = true
	case a.admitted && (!p.admittedLocked() || a.policy != policyHash):
		due = true // the verdict no longer applies: new key, restart or policy
	case !a.admitted || a.result == nil:
		due = !now.Before(a.retryAt) // refused or unattested: again, with backoff
	default:
		due = now.Sub(a.checked) >= recheck
	}
	if due {
		a.running = true
	}
	return due
}

// attestationStatus returns the verdict for metrics and /readyz.
func (p *pool) attestationStatus() (checked, admitted bool, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.att.checked.IsZero(), p.admittedLocked(), p.att.reason
}

// attestOne asks signer p for its attestation, verifies it against the
// key of the TLS connection it came over, the configured signer id and
// this coordinator's policy hash, and asks the admission policy. Any
// failure keeps the signer out (when required, or when the policy says
// so) until a later check, retried with backoff (1 s doubling to 1 min).
func (s *Server) attestOne(ctx context.Context, p *pool) {
	a := s.att
	client := p.rpc()
	pol := signer.Snapshot(s.policy)
	policyHash := pol.Hash()
	var res *attest.Result
	var spki []byte
	bootID := ""
	verdict := func() error {
		if client == nil {
			return errAway
		}
		ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.SignTimeout)+5*time.Second)
		defer cancel()
		var pi peer.Peer
		info, err := client.Info(ctx, &signv1.InfoRequest{}, grpc.Peer(&pi))
		if err != nil {
			return fmt.Errorf("info: %w", err)
		}
		bootID = info.GetBootId()
		var pa peer.Peer
		resp, err := client.Attest(ctx, &signv1.AttestRequest{}, grpc.Peer(&pa))
		spki = peerSPKI(&pa)
		if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.Unimplemented {
			return fmt.Errorf("%w: %s", attest.ErrNoAttestation, status.Convert(err).Message())
		}
		if err != nil {
			return fmt.Errorf("attest call: %w", err)
		}
		if spki == nil {
			return fmt.Errorf("%w: no TLS peer key to bind to", attest.ErrNoAttestation)
		}
		if k := peerSPKI(&pi); k == nil || attest.KeyID(k) != attest.KeyID(spki) {
			return errors.New("the signer's TLS key changed during the check")
		}
		ev, err := attest.FromProto(resp.GetEvidence())
		if err != nil {
			return err
		}
		r, err := a.verifier.Verify(ctx, ev, attest.ReportDataSPKI(spki, p.ep.ID, policyHash))
		if err != nil {
			return err
		}
		res = &r
		return nil
	}()
	admitted, reason := verdict == nil, ""
	if verdict != nil {
		reason = attest.Reason(verdict)
		if reason == "error" {
			reason = "unavailable: " + describe(errors.Unwrap(verdict))
		}
	}
	if !a.required {
		admitted = true // unless the policy says otherwise, below
	}
	if ad, ok := pol.(Admitter); ok && admitted {
		d, err := ad.AdmitSigner(ctx, policy.AdmissionInput{SignerID: int(p.ep.ID), Identity: p.ep.Identity, Attestation: res.PolicyInput()})
		switch {
		case err != nil:
			admitted, reason = false, "admission policy failed"
			s.log.Error("admission policy failed; signer kept out", "signer", p.ep.ID, "err", err)
		case !d.Admit:
			admitted, reason = false, "refused by the admission policy: "+strings.Join(d.Reasons, "; ")
		}
	}
	now := s.now()
	p.mu.Lock()
	st := &p.att
	was := st.admitted && !st.checked.IsZero()
	st.running, st.checked, st.policy, st.bootID = false, now, policyHash, bootID
	st.result, st.admitted, st.reason = res, admitted, reason
	if spki != nil {
		st.key = attest.KeyID(spki)
		if st.seenKey == "" {
			st.seenKey = st.key
		}
	} else {
		st.key = ""
		st.seenKey = "" // no binding: a guardian, or the call failed
	}
	if admitted && res != nil {
		st.failures, st.retryAt = 0, time.Time{}
	} else {
		st.retryAt = now.Add(min(time.Second<<min(st.failures, 6), time.Minute))
		st.failures++
	}
	p.mu.Unlock()
	s.obs.attestation(p.ep.ID, res != nil, admitted, reason)
	switch {
	case res != nil && admitted:
		s.log.Info("signer attested", "signer", p.ep.ID, "measurement", res.Measurement, "tcb", fmt.Sprintf("%+v", res.ReportedTCB))
	case admitted:
		s.log.Info("signer not attested; admitted (attestation not required)", "signer", p.ep.ID, "reason", reason)
	case was || st.failures == 1:
		s.log.Warn("signer not admitted: left out of mints", "signer", p.ep.ID, "reason", reason, "err", verdict)
	default:
		s.log.Debug("signer still not admitted", "signer", p.ep.ID, "reason", reason, "err", verdict)
	}
}

// peerSPKI returns the SubjectPublicKeyInfo of the peer's TLS leaf
// certificate, nil without one.
func peerSPKI(p *peer.Peer) []byte {
	if p == nil || p.AuthInfo == nil {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil
	}
	return ti.State.PeerCertificates[0].RawSubjectPublicKeyInfo
}

// checkAttestations starts the due checks and waits for them.
func (s *Server) checkAttestations(ctx context.Context) {
	if s.att == nil {
		return
	}
	hash := signer.Snapshot(s.policy).Hash()
	now := s.now()
	done := make(chan struct{})
	n := 0
	for _, p := range s.pools {
		if p.attestDue(now, hash, s.att.recheck) {
			n++
			go func(p *pool) { defer func() { done <- struct{}{} }(); s.attestOne(ctx, p) }(p)
		}
	}
	for range n {
		<-done
	}
}
