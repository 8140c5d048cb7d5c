package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator/ceremony"
	"github.com/frostmint/frostmint/policy"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/token"
)

// Policy decides whether a mint may happen.
type Policy interface {
	// Evaluate returns the decision for in; it fails (and the mint is
	// refused) when the policy cannot decide.
	Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error)
	// Hash identifies the policy bundle; signers refuse another one.
	Hash() string
}

// Auditor records decisions durably.
type Auditor interface {
	// Append writes r durably or fails; on failure the mint fails.
	Append(r audit.Record) error
}

// Server is the coordinator.
type Server struct {
	mintv1.UnimplementedMintServiceServer
	signv1.UnimplementedGuardianServiceServer

	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	policy Policy
	keys   atomic.Pointer[keyset]
	pools  []*pool

	evidence *evidence.Verifier
	uses     evidence.UseStore
	limits   *limit.Limiter
	audit    Auditor
	closers  []func() error
	reloader *policy.Reloader
	obs      *observer    // metrics and tracing (observe.go)
	att      *attestation // nil: signers' attestation is not checked (attest.go)
}

// Option adjusts a Server.
type Option func(*Server)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithPolicy replaces the policy engine.
func WithPolicy(p Policy) Option { return func(s *Server) { s.policy = p } }

// WithAuditor replaces the audit log of the config.
func WithAuditor(a Auditor) Option { return func(s *Server) { s.audit = a } }

// New validates cfg, loads the group and the policy, and prepares a
// connection to every signer (connections are made lazily).
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator config: %w", err)
	}
	s := &Server{cfg: cfg, log: log, now: time.Now, obs: &observer{}}
	for _, o := range opts {
		o(s)
	}
	if _, err := keydir.EnsureActive(cfg.KeysDir, s.now()); err != nil && !errors.Is(err, keydir.ErrNotFound) {
		return nil, fmt.Errorf("coordinator: keys: %w", err)
	}
	ks, err := loadKeys(cfg.KeysDir, len(cfg.Signers), time.Duration(cfg.MaxTTL), s.now())
	if err != nil {
		return nil, fmt.Errorf("coordinator: keys: %w", err)
	}
	s.keys.Store(ks)
	if s.policy == nil {
		r, err := cfg.Policy.Open(ctx, log)
		if err != nil {
			return nil, fmt.Errorf("coordinator: policy: %w", err)
		}
		s.policy, s.reloader = r, r
		log.Info("policy loaded", "hash", r.Hash())
	}
	if s.evidence, err = cfg.Callers.Verifier(ctx, s.now); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	s.uses = evidence.NewMemoryUseStore(cfg.MaxEvidence, s.now)
	s.limits = limit.New(cfg.Limits, s.now)
	if s.audit == nil {
		l, err := audit.Open(cfg.AuditLog, s.now)
		if err != nil {
			return nil, fmt.Errorf("coordinator: audit log: %w", err)
		}
		s.audit = l
		s.closers = append(s.closers, l.Close)
	}
	flush, err := s.obs.init(ctx, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	if flush != nil {
		s.closers = append(s.closers, flush)
	}
	// Fails early on unusable TLS files, guardians-only clusters too.
	if _, err := mtls.ClientConfig(cfg.TLS); err != nil {
		s.Close()
		return nil, err
	}
	if s.att, err = newAttestation(cfg.Attestation, s.now); err != nil {
		s.Close()
		return nil, err
	}
	for _, ep := range cfg.Signers {
		p, err := newPool(ep, cfg.TLS, cfg.PoolSize, time.Duration(cfg.CommitmentMaxAge), s.now, s.att != nil, s.obs.dialOptions()...)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.pools = append(s.pools, p)
	}
	if err := s.obs.watch(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the signer connections and the audit log.
func (s *Server) Close() {
	for _, p := range s.pools {
		if p.conn != nil {
			p.conn.Close()
		}
	}
	s.pools = nil
	for _, c := range s.closers {
		_ = c()
	}
	s.closers = nil
}

// KeyID returns the kid of minted tokens: the active key epoch's.
func (s *Server) KeyID() string { return s.keys.Load().kid() }

// active returns the key epoch to mint with, nil before the first key
// ceremony.
func (s *Server) active() *activeKey { return s.keys.Load().active }

// ReloadKeys re-reads the keys dir: a new active epoch (a rotation) is
// used from the next mint on, and the JWKS follows. On error the current
// keys stay.
func (s *Server) ReloadKeys() error {
	ks, err := loadKeys(s.cfg.KeysDir, len(s.cfg.Signers), time.Duration(s.cfg.MaxTTL), s.now())
	if err != nil {
		return err
	}
	old := s.keys.Load()
	if sameKeys(old, ks) {
		return nil
	}
	s.keys.Store(ks)
	if old.kid() != ks.kid() {
		s.log.Info("active key changed", "from", old.kid(), "to", ks.kid())
	}
	s.log.Info("JWKS keys", "published", ks.published)
	return nil
}

// Run serves the Mint API and the discovery endpoints and keeps the
// commitment pools full until ctx is done; then it stops gracefully within
// 5 s. The first part to fail stops the rest.
func (s *Server) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("coordinator: listen: %w", err)
	}
	var hlis net.Listener
	if s.cfg.HTTPListen != "" {
		hlis, err = net.Listen("tcp", s.cfg.HTTPListen)
		if err != nil {
			lis.Close()
			s.Close()
			return fmt.Errorf("coordinator: http listen: %w", err)
		}
	}
	return s.Serve(ctx, lis, hlis)
}

// Serve is Run on given listeners; hlis may be nil (no discovery
// endpoints).
func (s *Server) Serve(ctx context.Context, lis, hlis net.Listener) error {
	defer s.Close()
	tlsConf, err := mtls.ServerConfig(s.cfg.TLS, false)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(append(s.obs.serverOptions(), grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}))...)
	mintv1.RegisterMintServiceServer(gs, s)
	signv1.RegisterGuardianServiceServer(gs, s)
	cs, err := s.ceremonyService()
	if err != nil {
		return err
	}
	ceremonyv1.RegisterCeremonyServiceServer(gs, cs)

	var hs *http.Server
	if hlis != nil {
		hs = &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
		if s.cfg.HTTPTLS != nil {
			hc, err := mtls.ServerConfig(*s.cfg.HTTPTLS, false)
			if err != nil {
				return err
			}
			hc.ClientAuth = tls.NoClientCert
			hs.TLSConfig = hc
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := gs.Serve(lis); err != nil {
			errc <- fmt.Errorf("coordinator: grpc: %w", err)
		}
	}()
	if hs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if hs.TLSConfig != nil {
				err = hs.ServeTLS(hlis, "", "")
			} else {
				err = hs.Serve(hlis)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("coordinator: http: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.maintain(ctx) }()
	if s.reloader != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.reloader.Run(ctx) }()
	}
	s.log.Info("coordinator listening", "grpc", lis.Addr().String(), "http", addrOf(hlis), "issuer", s.cfg.Issuer, "kid", s.KeyID())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if hs != nil {
		_ = hs.Shutdown(stopCtx)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-stopCtx.Done():
		gs.Stop()
	}
	wg.Wait()
	s.log.Info("coordinator stopped")
	return runErr
}

// ceremonyService relays key ceremonies among this coordinator's signers
// (guardians over their streams) for the configured admins, and stores
// each new epoch's group in the keys dir; the first one becomes active.
func (s *Server) ceremonyService() (*ceremony.Service, error) {
	keys, err := mtls.LoadKeys(s.cfg.TLS)
	if err != nil {
		return nil, err
	}
	rc := ceremony.Config{Roots: keys.Roots, Clock: s.now, Log: s.log.With("component", "ceremony")}
	if s.att != nil {
		// The relay judges the evidence in round-1 packages as the pool
		// judges Attest's; required refuses a package without any.
		rc.Attestation, rc.RequireAttestation = s.att.verifier, s.att.required
	}
	rl, err := ceremony.NewRelay(rc)
	if err != nil {
		return nil, err
	}
	parts := map[uint16]ceremony.Participant{}
	for _, p := range s.pools {
		if p.ep.Guardian {
			parts[p.ep.ID] = guardianParticipant{p}
		} else {
			parts[p.ep.ID] = ceremony.NewGRPCParticipant(p.conn, p.ep.Identity)
		}
	}
	return ceremony.NewService(ceremony.ServiceConfig{
		Relay:        rl,
		Participants: func() map[uint16]ceremony.Participant { return parts },
		Authorize:    ceremony.AllowIdentities(s.cfg.CeremonyAdmins...),
		Done: func(_ context.Context, r *ceremony.Result) error {
			if _, err := keydir.Write(s.cfg.KeysDir, keydir.Epoch{Public: r.Group, Transcript: r.Transcript}); err != nil {
				return err
			}
			if _, err := keydir.EnsureActive(s.cfg.KeysDir, s.now()); err != nil {
				// Not the first epoch: it waits for frostmint keys activate.
				s.log.Info("new key epoch ready; activate it to mint with it", "kid", r.Kid)
			}
			return s.ReloadKeys()
		},
		Log: s.log.With("component", "ceremony"),
	})
}

// maintain keeps pools topped up (a background refill per pool, see
// refill.go), notices restarted signers, and retries unhealthy ones so
// they rejoin by themselves.
func (s *Server) maintain(ctx context.Context) {
	timeout := time.Duration(s.cfg.SignTimeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	defer s.startRefills(ctx)()
	lastBoot, lastKeys := time.Time{}, s.now()
	for {
		checkBoot := s.now().Sub(lastBoot) > 2*time.Second
		if checkBoot {
			lastBoot = s.now()
		}
		if s.now().Sub(lastKeys) > 5*time.Second {
			lastKeys = s.now()
			if err := s.ReloadKeys(); err != nil {
				s.log.Error("cannot reload the keys dir; keeping the current keys", "err", err)
			}
		}
		s.checkAttestations(ctx)
		var wg sync.WaitGroup
		for _, p := range s.pools {
			if !p.usable() || !checkBoot {
				continue
			}
			wg.Add(1)
			go func(p *pool) {
				defer wg.Done()
				p.checkBoot(ctx, timeout)
			}(p)
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// HTTPHandler serves the JWKS and the OpenID discovery document.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(s.keys.Load().jwks)
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                strings.TrimSuffix(s.cfg.Issuer, "/"),
			"jwks_uri":                              s.JWKSURL(),
			"id_token_signing_alg_values_supported": []string{token.Algorithm},
			"token_endpoint_auth_methods_supported": []string{"tls_client_auth"},
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	telemetry.HandleReady(mux, s.Ready)
	telemetry.HandleMetrics(mux, s.obs.metrics.Registry())
	return mux
}

// JWKSURL is where the JWKS is served, under the issuer.
func (s *Server) JWKSURL() string {
	return strings.TrimSuffix(s.cfg.Issuer, "/") + "/.well-known/jwks.json"
}

// GetStatus implements mintv1.MintServiceServer.
func (s *Server) GetStatus(context.Context, *mintv1.GetStatusRequest) (*mintv1.GetStatusResponse, error) {
	ks := s.keys.Load()
	resp := &mintv1.GetStatusResponse{Issuer: s.cfg.Issuer, JwksJson: string(ks.jwks), KeyId: ks.kid(), PolicyHash: s.policy.Hash()}
	if ks.active != nil {
		resp.Threshold = uint32(ks.active.group.Public().Threshold)
	}
	for _, p := range s.pools {
		h, n, _ := p.status()
		resp.Signers = append(resp.Signers, &mintv1.SignerStatus{Id: uint32(p.ep.ID), Address: p.ep.Addr, Healthy: h,
			PooledCommitments: uint32(n), PolicyHash: p.policyHash()})
	}
	return resp, nil
}

func newRequestID() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(b)
}

func (s *Server) requestedTTL(req *mintv1.MintRequest) (time.Duration, error) {
	if req.GetTtl() == nil {
		return time.Duration(s.cfg.DefaultTTL), nil
	}
	if err := req.GetTtl().CheckValid(); err != nil {
		return 0, fmt.Errorf("ttl: %w", err)
	}
	ttl := req.GetTtl().AsDuration()
	if ttl < time.Second || ttl%time.Second != 0 {
		return 0, errors.New("ttl must be a whole number of seconds, at least 1s")
	}
	if ttl > time.Duration(s.cfg.MaxTTL) {
		return 0, fmt.Errorf("ttl %s exceeds the cap of %s", ttl, time.Duration(s.cfg.MaxTTL))
	}
	return ttl, nil
}

func checkRequest(aud string, scopes []string) error {
	var errs []error
	if aud == "" || len(aud) > 512 || strings.ContainsAny(aud, " \t\r\n") {
		errs = append(errs, errors.New("audience must be one non-empty string without spaces"))
	}
	if len(scopes) == 0 || len(scopes) > token.MaxScopes {
		errs = append(errs, fmt.Errorf("between 1 and %d scopes are required", token.MaxScopes))
	}
	seen := map[string]bool{}
	for _, sc := range scopes {
		// No white space at all (unicode.IsSpace, as the token's scope
		// claim): a scope that passed here would make no token later.
		if sc == "" || len(sc) > 128 || strings.ContainsAny(sc, "\"\\") || strings.ContainsFunc(sc, unicode.IsSpace) {
			errs = append(errs, fmt.Errorf("scope %q is not a valid scope token", sc))
		}
		if seen[sc] {
			errs = append(errs, fmt.Errorf("scope %q is repeated", sc))
		}
		seen[sc] = true
	}
	return errors.Join(errs...)
}

// QuorumError means fewer than threshold signers could take part.
type QuorumError struct {
	Threshold int
	Available int
	Missing   map[uint16]string
	// Refused counts the signers that judged the request and said no.
	Refused int
}

func (e *QuorumError) Error() string {
	ids := make([]int, 0, len(e.Missing))
	for id := range e.Missing {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("signer %d: %s", id, e.Missing[uint16(id)]))
	}
	return fmt.Sprintf("no quorum: need %d signers, %d available (%s)", e.Threshold, e.Available, strings.Join(parts, "; "))
}

type member struct {
	p *pool
	c frost.Commitment
}

// pickQuorum takes one commitment of key k from each of t usable signers,
// fetching on demand when a pool is empty.
func (s *Server) pickQuorum(ctx context.Context, k *activeKey, excluded map[uint16]string) ([]member, error) {
	t := int(k.group.Public().Threshold)
	// Healthy signers with full pools first, as each is now (one look at
	// each pool, not one per comparison).
	type cand struct {
		p       *pool
		healthy bool
		n       int
	}
	cands := make([]cand, 0, len(s.pools))
	for _, p := range s.pools {
		if _, ok := excluded[p.ep.ID]; !ok {
			h, n, _ := p.status()
			cands = append(cands, cand{p, h, n})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].healthy != cands[j].healthy {
			return cands[i].healthy
		}
		return cands[i].n > cands[j].n
	})
	missing := map[uint16]string{}
	for id, why := range excluded {
		missing[id] = why
	}
	var q []member
	for _, cd := range cands {
		p := cd.p
		if len(q) == t {
			break
		}
		if !p.usable() {
			if checked, ok, why := p.attestationStatus(); p.attested && !ok {
				if !checked {
					why = "attestation not checked yet"
				}
				missing[p.ep.ID] = "not admitted: " + why
				continue
			}
			_, _, lastErr := p.status()
			missing[p.ep.ID] = "unavailable: " + describe(lastErr)
			continue
		}
		c, ok := p.take(k.kid)
		if !ok {
			var err error
			if c, err = p.takeNow(ctx, time.Duration(s.cfg.SignTimeout), k); err != nil {
				missing[p.ep.ID] = "unavailable: " + describe(err)
				continue
			}
		}
		q = append(q, member{p: p, c: c})
	}
	if len(q) < t {
		return nil, &QuorumError{Threshold: t, Available: len(q), Missing: missing}
	}
	return q, nil
}

func describe(err error) string {
	if err == nil {
		return "not responding"
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable:
			return "unreachable"
		case codes.DeadlineExceeded:
			return "timed out"
		}
		return strings.ToLower(st.Code().String())
	}
	return "error"
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}
