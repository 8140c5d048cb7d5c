package signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/policy"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

// MaxCommitBatch bounds one Commit call.
const MaxCommitBatch = 64

// Server is a signer daemon.
type Server struct {
	signv1.UnimplementedSignerServiceServer

	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	keys     *keyring
	sealer   keystore.Sealer
	approver Approver
	ceremony ceremonyv1.CeremonyParticipantServiceServer
	// tlsKeys is this signer's identity (it signs approvals) and the
	// cluster CA (approvals' chains), following rotations as its mTLS does.
	tlsKeys  *mtls.Keys
	bootID   string
	closers  []func() error
	reloader *policy.Reloader
	evidence *evidence.Verifier
	uses     evidence.UseStore
	policy   Policy
	limits   *limit.Limiter
	audit    Auditor
	obs      *observer // metrics and tracing (observe.go)

	attester    attest.Provider // nil: no attestation
	attesterSet bool            // WithAttestationProvider was given
	attestCache evidenceCache
}

// Policy decides whether a mint may happen.
type Policy interface {
	// Evaluate returns the decision for in; it fails (and the signer
	// refuses) when the policy cannot decide.
	Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error)
	// Hash identifies the policy bundle.
	Hash() string
}

// Auditor records decisions durably.
type Auditor interface {
	// Append writes r durably or fails; on failure the signer refuses.
	Append(r audit.Record) error
}

// Option adjusts a Server.
type Option func(*Server)

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithPolicy replaces the policy from the config.
func WithPolicy(p Policy) Option { return func(s *Server) { s.policy = p } }

// WithAuditor replaces the audit log of the config.
func WithAuditor(a Auditor) Option { return func(s *Server) { s.audit = a } }

// WithSealer replaces the keystore of the config (tests, or a backend
// opened by the caller, who then closes it).
func WithSealer(k keystore.Sealer) Option { return func(s *Server) { s.sealer = k } }

// WithApprover replaces the guardian's approver of the config (tests, or
// an embedding application with its own way to ask).
func WithApprover(a Approver) Option { return func(s *Server) { s.approver = a } }

// New validates cfg, disables core dumps for the process, opens the
// keystore, unseals the share of every key epoch in the keys dir into
// memory, and returns a Server. A signer without any epoch yet starts (it
// signs nothing until a key ceremony). Errors name the failing part and
// never carry secret material.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signer config: %w", err)
	}
	// Before any share is unsealed: no core file, no ptrace, may hold it.
	if err := disableCoreDumps(); err != nil {
		return nil, fmt.Errorf("signer: disabling core dumps: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, now: time.Now, bootID: hex.EncodeToString(b), keys: &keyring{epochs: map[string]*epoch{}}, obs: &observer{}}
	for _, o := range opts {
		o(s)
	}
	if s.sealer == nil {
		k, err := keystore.Open(cfg.Keystore, keystore.Options{Dev: cfg.Dev})
		if err != nil {
			return nil, fmt.Errorf("signer %d: keystore: %w", cfg.ID, err)
		}
		s.sealer = k
		s.closers = append(s.closers, k.Close)
	}
	// Before the ceremony participant, whose round-1 packages carry this
	// signer's attestation.
	if err := s.openAttestation(); err != nil {
		s.Close()
		return nil, err
	}
	att, err := s.ceremonyAttestation()
	if err != nil {
		s.Close()
		return nil, err
	}
	cp, err := ceremony.NewParticipant(ceremony.ParticipantConfig{
		ID: cfg.ID, TLS: cfg.TLS, KeysDir: cfg.KeysDir, Sealer: s.sealer, Clock: s.now,
		Log:         log.With("component", "ceremony"),
		Committed:   func(string) { _ = s.ReloadKeys() },
		Attestation: att,
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("signer %d: ceremony: %w", cfg.ID, err)
	}
	s.ceremony = cp
	s.closers = append(s.closers, func() error { cp.Close(); return nil })
	if err := s.keys.sync(cfg.KeysDir, cfg.ID, s.sealer, cfg.MaxNonces, log); err != nil {
		s.Close()
		return nil, fmt.Errorf("signer %d: %w", cfg.ID, err)
	}
	if len(s.keys.list()) == 0 {
		log.Warn("no key epoch yet: this signer signs nothing until a key ceremony", "keys_dir", cfg.KeysDir)
	}
	if err := s.init(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.observe(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// init builds the parts that judge requests: evidence verifier, policy,
// limits, the single-use memory and the audit log.
func (s *Server) init() error {
	ctx := context.Background()
	ev, err := s.cfg.Callers.Verifier(ctx, s.now)
	if err != nil {
		return fmt.Errorf("signer %d: %w", s.cfg.ID, err)
	}
	s.evidence = ev
	if s.tlsKeys, err = mtls.LoadKeys(s.cfg.TLS); err != nil {
		return fmt.Errorf("signer %d: identity: %w", s.cfg.ID, err)
	}
	if s.cfg.Guardian != nil && s.approver == nil {
		if s.approver, err = s.cfg.Guardian.newApprover(); err != nil {
			return err
		}
	}
	s.uses = evidence.NewMemoryUseStore(s.cfg.MaxEvidence, s.now)
	s.limits = limit.New(s.cfg.Limits, s.now)
	if s.policy == nil {
		r, err := s.cfg.Policy.Open(ctx, s.log)
		if err != nil {
			return fmt.Errorf("signer %d: policy: %w", s.cfg.ID, err)
		}
		s.policy, s.reloader = r, r
		s.log.Info("policy loaded", "hash", r.Hash())
	}
	if s.audit == nil {
		l, err := audit.Open(s.cfg.AuditLog, s.now)
		if err != nil {
			return fmt.Errorf("signer %d: audit log: %w", s.cfg.ID, err)
		}
		s.audit = l
		s.closers = append(s.closers, l.Close)
	}
	return nil
}

// Run serves until ctx is done: on the configured address (see
// [Server.Serve]), and, for a guardian, over its stream to the coordinator
// (see [Server.RunGuardian]).
func (s *Server) Run(ctx context.Context) error {
	stopMetrics, err := s.startMetrics(ctx)
	if err != nil {
		s.Close()
		return err
	}
	defer stopMetrics()
	if s.cfg.Listen == "" {
		defer s.Close()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.maintain(ctx)
		return s.RunGuardian(ctx)
	}
	if s.cfg.Guardian != nil {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if err := s.RunGuardian(ctx); err != nil {
				s.log.Error("guardian stopped", "err", err)
			}
		}()
	}
	lis, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("signer: listen: %w", err)
	}
	return s.Serve(ctx, lis)
}

// Serve serves on lis until ctx is done, then stops gracefully (at most
// 5 s) and wipes the share. It fails if TLS setup or serving fails.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	defer s.Close()
	gs, err := s.GRPCServer()
	if err != nil {
		lis.Close()
		return err
	}
	signv1.RegisterSignerServiceServer(gs, s)
	ceremonyv1.RegisterCeremonyParticipantServiceServer(gs, s.ceremony)
	s.log.Info("signer listening", "id", s.cfg.ID, "addr", lis.Addr().String(), "keys", s.keyIDs(), "boot_id", s.bootID)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.maintain(mctx)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("signer: serve: %w", err)
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { gs.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				gs.Stop()
			}
			s.log.Info("signer stopped", "id", s.cfg.ID)
			return nil
		}
	}
}

// GRPCServer returns a gRPC server with the signer's TLS 1.3 credentials
// (client certificate required) and its caller allow-list, with nothing
// registered yet.
func (s *Server) GRPCServer() (*grpc.Server, error) {
	tlsConf, err := mtls.ServerConfig(s.cfg.TLS, true)
	if err != nil {
		return nil, err
	}
	return grpc.NewServer(append(s.obs.serverOptions(),
		grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.ChainUnaryInterceptor(s.authorize),
	)...), nil
}

// maintain expires unused nonces, reloads the policy, and picks up new
// and retired key epochs, until ctx is done.
func (s *Server) maintain(ctx context.Context) {
	if s.reloader != nil {
		go s.reloader.Run(ctx) //nolint:errcheck // ends with ctx
	}
	expire := time.NewTicker(time.Duration(s.cfg.NonceTTL) / 4)
	defer expire.Stop()
	rescan := time.NewTicker(5 * time.Second)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			if n := s.ExpireNonces(); n > 0 {
				s.log.Debug("expired unused nonces", "count", n)
			}
		case <-rescan.C:
			s.ReloadKeys() //nolint:errcheck // logged
		}
	}
}

// ReloadKeys makes the signer's epochs match its keys dir now: new epochs
// (after a ceremony) are unsealed and loaded, retired ones wiped from
// memory. Epochs that fail to load are logged, left out, and reported.
func (s *Server) ReloadKeys() error {
	return s.keys.sync(s.cfg.KeysDir, s.cfg.ID, s.sealer, s.cfg.MaxNonces, s.log)
}

func (s *Server) keyIDs() []string {
	var ids []string
	for _, e := range s.keys.list() {
		ids = append(ids, e.kid)
	}
	return ids
}

// CeremonyParticipant is the signer's side of the key ceremony, to serve
// next to the SignerService (Serve does).
func (s *Server) CeremonyParticipant() ceremonyv1.CeremonyParticipantServiceServer { return s.ceremony }

// Close wipes the shares and every nonce and closes the keystore and the
// audit log; the Server cannot sign after it.
func (s *Server) Close() {
	s.keys.closeAll()
	for _, c := range s.closers {
		_ = c()
	}
	s.closers = nil
}

// ExpireNonces drops nonces older than the configured nonce_ttl and
// returns how many. Serve calls it periodically.
func (s *Server) ExpireNonces() int {
	n := 0
	cutoff := s.now().Add(-time.Duration(s.cfg.NonceTTL))
	for _, e := range s.keys.list() {
		n += e.signer.Expire(cutoff)
	}
	return n
}

// authorize admits only allowed coordinators.
func (s *Server) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	id, err := mtls.PeerID(ctx)
	if err != nil {
		s.log.Warn("refused caller without identity", "method", info.FullMethod, "err", err)
		return nil, status.Error(codes.Unauthenticated, "a client certificate with a SPIFFE ID is required")
	}
	if !slices.Contains(s.cfg.Coordinators, id) {
		s.log.Warn("refused caller", "method", info.FullMethod, "peer", id)
		return nil, status.Error(codes.PermissionDenied, "caller is not an allowed coordinator")
	}
	return h(ctx, req)
}

// Info implements signv1.SignerServiceServer.
func (s *Server) Info(context.Context, *signv1.InfoRequest) (*signv1.InfoResponse, error) {
	r := &signv1.InfoResponse{SignerId: uint32(s.cfg.ID), BootId: s.bootID, PolicyHash: s.policy.Hash(), Approver: s.approver != nil}
	for _, e := range s.keys.list() {
		pub := e.group.Public()
		r.Keys = append(r.Keys, &signv1.KeyInfo{KeyId: e.kid, PublicKeyShare: pub.Shares[s.cfg.ID], GroupPublicKey: pub.PublicKey,
			Threshold: uint32(pub.Threshold), MaxSigners: uint32(pub.MaxSigners)})
	}
	return r, nil
}

// Commit implements signv1.SignerServiceServer.
func (s *Server) Commit(_ context.Context, req *signv1.CommitRequest) (*signv1.CommitResponse, error) {
	if req.GetCount() == 0 || req.GetCount() > MaxCommitBatch {
		return nil, status.Errorf(codes.InvalidArgument, "count must be 1..%d", MaxCommitBatch)
	}
	e, ok := s.keys.get(req.GetKeyId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "this signer holds no share of key %q", clipID(req.GetKeyId()))
	}
	cs, err := e.signer.Commit(int(req.GetCount()), s.now())
	if errors.Is(err, frost.ErrTooManyNonces) {
		return nil, status.Error(codes.ResourceExhausted, "signer holds too many outstanding nonces")
	}
	if err != nil {
		s.log.Error("commit failed", "err", err)
		return nil, status.Error(codes.Internal, "commit failed")
	}
	return &signv1.CommitResponse{SignerId: uint32(s.cfg.ID), BootId: s.bootID, Commitments: cs, KeyId: e.kid}, nil
}

func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Sign implements signv1.SignerServiceServer: it judges the request
// itself (see [Server.judge]), records the decision in its audit log, and
// only then makes its share.
func (s *Server) Sign(ctx context.Context, req *signv1.SignRequest) (_ *signv1.SignResponse, err error) {
	log := s.log.With("request_id", req.GetRequestId(), "signer", s.cfg.ID)
	pol := snapshot(s.policy)
	rec := audit.Record{Daemon: fmt.Sprintf("signer-%d", s.cfg.ID), RequestID: req.GetRequestId(), PolicyHash: pol.Hash()}
	ctx, done := s.obs.startSign(ctx, req.GetRequestId(), s.cfg.ID)
	auditFailed := false
	defer func() { done(&rec, err, auditFailed) }()
	// record writes rec with decision d; the caller hears of nothing the
	// audit log does not hold.
	record := func(d string) error {
		rec.Decision = d
		if err := s.audit.Append(rec); err != nil {
			auditFailed = true
			log.Error("audit write failed", "decision", d, "err", err)
			return status.Error(codes.Unavailable, "signer cannot write its audit log")
		}
		return nil
	}
	deny := func(code codes.Code, reason, msg string) error {
		rec.Code = reason
		if len(rec.Reasons) == 0 {
			rec.Reasons = []string{msg}
		}
		if err := record(audit.Deny); err != nil {
			return err
		}
		return status.Error(code, msg)
	}
	jctx, endJudge := s.obs.span(ctx, "signer.judge")
	c, e, err := s.judge(jctx, pol, judgeInput{msg: req.GetMessage(), caller: req.GetCallerRequest(),
		policyHash: req.GetPolicyHash(), approvals: req.GetApprovals()}, &rec, true)
	endJudge(err)
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			r = &refusal{code: codes.Internal, reason: "internal", msg: "internal error"}
		}
		log.Warn("refused to sign", "reason", r.reason, "err", err)
		return nil, deny(r.code, r.reason, r.msg)
	}
	rec.KeyID = e.kid
	share, err := e.signer.Sign(req.GetMessage(), req.GetCommitmentList())
	switch {
	case errors.Is(err, frost.ErrUnknownCommitment):
		log.Info("unknown commitment", "err", err)
		rec.Reasons = []string{"commitment unknown to this signer"}
		return nil, deny(codes.Aborted, "stale_commitment", "this signer does not hold the nonce for its commitment (used, expired or from before a restart); drop it")
	case err != nil:
		log.Warn("sign failed", "err", err)
		rec.Reasons = []string{"invalid commitment list"}
		return nil, deny(codes.InvalidArgument, "bad_commitment_list", "invalid commitment list")
	}
	// The nonce is spent; the share is never released unaudited.
	if err := record(audit.Allow); err != nil {
		return nil, err
	}
	log.Info("signed", "jti", c.ID, "sub", c.Subject, "aud", c.Audience, "scope", c.Scope, "ttl", c.TTL().String())
	return &signv1.SignResponse{SignerId: uint32(s.cfg.ID), SignatureShare: share}, nil
}

var errRule = errors.New("token breaks the signer's rules")

// checkMessage is the signer's own judgement of what it is asked to sign:
// a token of the profile, for a key epoch this signer holds, for our
// issuer, issued now.
func (s *Server) checkMessage(msg []byte) (*token.Claims, *epoch, error) {
	h, c, err := token.ParseSigningInput(msg)
	if err != nil {
		return nil, nil, err
	}
	e, ok := s.keys.get(h.KeyID)
	if !ok {
		return nil, nil, fmt.Errorf("%w: kid %q is not a key this signer holds %v", errRule, clipID(h.KeyID), s.keyIDs())
	}
	if c.Issuer != s.cfg.Issuer {
		return nil, nil, fmt.Errorf("%w: iss %q, want %q", errRule, c.Issuer, s.cfg.Issuer)
	}
	now := s.now().Unix()
	skew := int64(time.Duration(s.cfg.ClockSkew) / time.Second)
	if c.IssuedAt > now+skew || c.IssuedAt < now-skew {
		return nil, nil, fmt.Errorf("%w: iat %d is not now (%d ± %ds)", errRule, c.IssuedAt, now, skew)
	}
	return &c, e, nil
}
