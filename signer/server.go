package signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/policy"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/jwks"
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
	group    *frost.Group
	signer   *frost.Signer
	kid      string
	bootID   string
	closers  []func() error
	reloader *policy.Reloader
	evidence *evidence.Verifier
	uses     evidence.UseStore
	policy   Policy
	limits   *limit.Limiter
	audit    Auditor
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

// New validates cfg, reads the group, unseals the share into memory and
// returns a Server. Errors name the failing part and never carry secret
// material.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signer config: %w", err)
	}
	group, err := frost.ReadGroupFile(cfg.Group)
	if err != nil {
		return nil, err
	}
	pass, err := keystore.ReadPassphrase(cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	sealer, err := keystore.NewPassphrase(pass, keystore.ScryptParams{})
	keystore.Wipe(pass)
	if err != nil {
		return nil, err
	}
	sealed, err := os.ReadFile(cfg.Share)
	if err != nil {
		return nil, fmt.Errorf("signer %d: %w", cfg.ID, err)
	}
	secret, err := sealer.Unseal(sealed, ShareLabel(cfg.ID))
	if err != nil {
		return nil, fmt.Errorf("signer %d: unsealing share %s: %w", cfg.ID, cfg.Share, err)
	}
	fs, err := frost.NewSigner(group, secret, cfg.MaxNonces)
	keystore.Wipe(secret)
	if err != nil {
		return nil, fmt.Errorf("signer %d: %w", cfg.ID, err)
	}
	if fs.ID() != cfg.ID {
		fs.Close()
		return nil, fmt.Errorf("signer: share is for participant %d, config says %d", fs.ID(), cfg.ID)
	}
	kid, err := jwks.KeyID(group.Public().PublicKey)
	if err != nil {
		fs.Close()
		return nil, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		fs.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, now: time.Now, group: group, signer: fs, kid: kid, bootID: hex.EncodeToString(b)}
	for _, o := range opts {
		o(s)
	}
	if err := s.init(); err != nil {
		fs.Close()
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

// ShareLabel is the keystore label of signer id's share.
func ShareLabel(id uint16) string { return fmt.Sprintf("frostmint-share-%d", id) }

// Run listens on the configured address and serves until ctx is done (see
// [Server.Serve]).
func (s *Server) Run(ctx context.Context) error {
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
	s.log.Info("signer listening", "id", s.cfg.ID, "addr", lis.Addr().String(), "kid", s.kid, "boot_id", s.bootID)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	if s.reloader != nil {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.reloader.Run(rctx) //nolint:errcheck // ends with ctx
	}
	tick := time.NewTicker(time.Duration(s.cfg.NonceTTL) / 4)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("signer: serve: %w", err)
		case <-tick.C:
			if n := s.ExpireNonces(); n > 0 {
				s.log.Debug("expired unused nonces", "count", n)
			}
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
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.ChainUnaryInterceptor(s.authorize),
	), nil
}

// Close wipes the share and every nonce and closes the audit log; the
// Server cannot sign after it.
func (s *Server) Close() {
	s.signer.Close()
	for _, c := range s.closers {
		_ = c()
	}
	s.closers = nil
}

// ExpireNonces drops nonces older than the configured nonce_ttl and
// returns how many. Serve calls it periodically.
func (s *Server) ExpireNonces() int {
	return s.signer.Expire(s.now().Add(-time.Duration(s.cfg.NonceTTL)))
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
	pub := s.group.Public()
	return &signv1.InfoResponse{
		SignerId:       uint32(s.cfg.ID),
		PublicKeyShare: pub.Shares[s.cfg.ID],
		GroupPublicKey: pub.PublicKey,
		Threshold:      uint32(pub.Threshold),
		MaxSigners:     uint32(pub.MaxSigners),
		BootId:         s.bootID,
		PolicyHash:     s.policy.Hash(),
	}, nil
}

// Commit implements signv1.SignerServiceServer.
func (s *Server) Commit(_ context.Context, req *signv1.CommitRequest) (*signv1.CommitResponse, error) {
	if req.GetCount() == 0 || req.GetCount() > MaxCommitBatch {
		return nil, status.Errorf(codes.InvalidArgument, "count must be 1..%d", MaxCommitBatch)
	}
	cs, err := s.signer.Commit(int(req.GetCount()), s.now())
	if errors.Is(err, frost.ErrTooManyNonces) {
		return nil, status.Error(codes.ResourceExhausted, "signer holds too many outstanding nonces")
	}
	if err != nil {
		s.log.Error("commit failed", "err", err)
		return nil, status.Error(codes.Internal, "commit failed")
	}
	return &signv1.CommitResponse{SignerId: uint32(s.cfg.ID), BootId: s.bootID, Commitments: cs}, nil
}

// Sign implements signv1.SignerServiceServer: it judges the request
// itself (see [Server.judge]), records the decision in its audit log, and
// only then makes its share.
func (s *Server) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	log := s.log.With("request_id", req.GetRequestId(), "signer", s.cfg.ID)
	pol := snapshot(s.policy)
	rec := audit.Record{Daemon: fmt.Sprintf("signer-%d", s.cfg.ID), RequestID: req.GetRequestId(), PolicyHash: pol.Hash()}
	c, err := s.judge(ctx, pol, req, &rec)
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			r = &refusal{code: codes.Internal, reason: "internal", msg: "internal error"}
		}
		log.Warn("refused to sign", "reason", r.reason, "err", err)
		rec.Decision, rec.Code = "deny", r.reason
		if len(rec.Reasons) == 0 {
			rec.Reasons = []string{r.msg}
		}
		if aerr := s.audit.Append(rec); aerr != nil {
			log.Error("audit write failed", "err", aerr)
			return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
		}
		return nil, status.Error(r.code, r.msg)
	}
	share, err := s.signer.Sign(req.GetMessage(), req.GetCommitmentList())
	switch {
	case errors.Is(err, frost.ErrUnknownCommitment):
		log.Info("unknown commitment", "err", err)
		rec.Decision, rec.Code, rec.Reasons = "deny", "stale_commitment", []string{"commitment unknown to this signer"}
		if aerr := s.audit.Append(rec); aerr != nil {
			log.Error("audit write failed", "err", aerr)
			return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
		}
		return nil, status.Error(codes.Aborted, "this signer does not hold the nonce for its commitment (used, expired or from before a restart); drop it")
	case err != nil:
		log.Warn("sign failed", "err", err)
		rec.Decision, rec.Code, rec.Reasons = "deny", "bad_commitment_list", []string{"invalid commitment list"}
		if aerr := s.audit.Append(rec); aerr != nil {
			return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
		}
		return nil, status.Error(codes.InvalidArgument, "invalid commitment list")
	}
	rec.Decision = "allow"
	if err := s.audit.Append(rec); err != nil {
		// The nonce is spent; the share is never released unaudited.
		log.Error("audit write failed; share withheld", "err", err)
		return nil, status.Error(codes.Unavailable, "signer cannot write its audit log")
	}
	log.Info("signed", "jti", c.ID, "sub", c.Subject, "aud", c.Audience, "scope", c.Scope, "ttl", c.TTL().String())
	return &signv1.SignResponse{SignerId: uint32(s.cfg.ID), SignatureShare: share}, nil
}

var errRule = errors.New("token breaks the signer's rules")

// checkMessage is the signer's own judgement of what it is asked to sign.
func (s *Server) checkMessage(msg []byte) (*token.Claims, error) {
	h, c, err := token.ParseSigningInput(msg)
	if err != nil {
		return nil, err
	}
	if h.KeyID != s.kid {
		return nil, fmt.Errorf("%w: kid %q is not this group's key %q", errRule, h.KeyID, s.kid)
	}
	if c.Issuer != s.cfg.Issuer {
		return nil, fmt.Errorf("%w: iss %q, want %q", errRule, c.Issuer, s.cfg.Issuer)
	}
	now := s.now().Unix()
	skew := int64(time.Duration(s.cfg.ClockSkew) / time.Second)
	if c.IssuedAt > now+skew || c.IssuedAt < now-skew {
		return nil, fmt.Errorf("%w: iat %d is not now (%d ± %ds)", errRule, c.IssuedAt, now, skew)
	}
	return &c, nil
}
