package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/keysource"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/redisreplay"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Server timeouts. There is no read or write timeout on the proxy: bodies
// and responses may stream for as long as the upstream wants, and upgraded
// connections live on; a client must send its headers promptly, though.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// readyTimeout bounds a readiness check of the replay store.
	readyTimeout = time.Second
)

// Gateway is the authenticating reverse proxy. Make one with [New], run it
// with [Gateway.Run] (or [Gateway.Serve]); it is an http.Handler too.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	mw       *middleware.Middleware
	routes   []*route // by decreasing prefix length
	tls      *tls.Config
	runKeys  func(context.Context) error
	issuers  []verifier.Issuer
	replay   *redisreplay.Cache // nil: in memory
	audit    *audit.Log         // nil: no audit log
	metrics  gatewayMetrics     // observe.go
	active   atomic.Int64       // handlers running, upgraded connections included
	stopping atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg ([Config.Validate]) and makes a Gateway of it: it reads
// the Redis password file and the TLS certificate, opens the audit log,
// and makes the first fetch of every issuer's keys (bounded by ctx; an
// issuer that cannot be reached yet is no error, but the gateway refuses
// its tokens and is not ready until its keys arrive). log may be nil.
//
// A Gateway holds files and connections: [Gateway.Run] releases them when
// it returns; call [Gateway.Close] when it is not run.
func New(ctx context.Context, cfg Config, log *slog.Logger, options ...Option) (_ *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, log: log}
	for _, o := range options {
		o(g)
	}
	if err := g.metrics.register(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = g.Close() // what was opened before the failure
		}
	}()

	if cfg.TLS != nil {
		// Read again when the files change: a renewed certificate is
		// served without a restart.
		get, err := mtls.GetCertificate(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("gateway: tls: %w", err)
		}
		g.tls = &tls.Config{GetCertificate: get, MinVersion: tls.VersionTLS12}
	}

	var replay verifier.ReplayCache
	if r := cfg.Replay.Redis; r != nil {
		password := ""
		if r.PasswordFile != "" {
			b, err := os.ReadFile(r.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("gateway: redis password: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
			if password == "" {
				return nil, fmt.Errorf("gateway: redis password file %s is empty", r.PasswordFile)
			}
		}
		g.replay, err = redisreplay.New(r.cache(password))
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		replay = g.replay
	} else {
		log.Warn("replay store in memory: run exactly one gateway process, or configure replay.redis")
		if replay, err = g.metrics.memoryReplay(); err != nil {
			return nil, err
		}
	}

	ks := make([]keysource.Config, len(cfg.Issuers))
	for i, iss := range cfg.Issuers {
		ks[i] = iss.keySource()
		ks[i].Log = log
	}
	g.issuers, g.runKeys, err = keysource.Issuers(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	// The verifier's own audience is only a default: every route names
	// the audience it requires.
	v, err := verifier.New(verifier.Config{
		Issuers:  g.issuers,
		Audience: cmp.Or(cfg.Audience, cfg.Routes[0].Audience),
		Leeway:   time.Duration(cfg.Leeway),
		Replay:   replay,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	opts := middleware.Options{
		Verifier:       v,
		MaxBindingBody: cfg.MaxBindingBody,
		Scheme:         g.scheme,
		Log:            log,
		Metrics:        g.metrics.decisions,
	}
	if cfg.AuditLog != "" {
		g.audit, err = audit.Open(cfg.AuditLog, nil)
		if err != nil {
			return nil, fmt.Errorf("gateway: audit log: %w", err)
		}
		opts.Audit = g.audit // only when set: a nil *audit.Log is not a nil Auditor
	}
	g.mw, err = middleware.New(opts)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	h1, h2c := newTransport(false), newTransport(true)
	pool := &bufferPool{}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	for _, rc := range cfg.Routes {
		target, isH2C, err := parseUpstream(cmp.Or(rc.Upstream, cfg.Upstream))
		if err != nil { // Validate checked it
			return nil, fmt.Errorf("gateway: route %q: %w", rc.Name, err)
		}
		rt := &route{
			name:    rc.Name,
			prefix:  rc.PathPrefix,
			methods: rc.Methods,
			target:  target,
			auth: middleware.Route{
				Name:           rc.Name,
				Audience:       cmp.Or(rc.Audience, cfg.Audience),
				Scopes:         rc.Scopes,
				Replay:         verifier.SingleUse,
				RequireBinding: rc.RequireBinding,
			},
		}
		if rc.Replay == ReplayReusable {
			rt.auth.Replay = verifier.Reusable
		}
		transport := h1
		if isH2C {
			transport = h2c
		}
		rt.proxy = &httputil.ReverseProxy{
			Rewrite:        g.rewrite(rt),
			Transport:      g.metrics.transport(rc.Name, transport),
			FlushInterval:  -1, // stream: every write reaches the client at once
			BufferPool:     pool,
			ModifyResponse: modifyResponse,
			ErrorHandler:   g.upstreamError,
			ErrorLog:       errLog,
		}
		g.routes = append(g.routes, rt)
	}
	slices.SortStableFunc(g.routes, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
	return g, nil
}

// newTransport returns the transport to upstreams: HTTP/1.1 (and HTTP/2
// over TLS) or, for h2c, cleartext HTTP/2 with prior knowledge only. It
// ignores proxy environment variables and does not ask for compression of
// its own (a client's Accept-Encoding passes through).
func newTransport(h2c bool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	}
	return t
}

// Handler returns the proxy's handler: g itself.
func (g *Gateway) Handler() http.Handler { return g }

// AdminHandler returns the handler of the admin listener: GET /healthz
// answers 200 while the process serves; GET /readyz answers 200 when
// [Gateway.Ready] does, else 503 with the problems; GET /metrics serves
// the gateway's Prometheus metrics (see the package documentation).
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	telemetry.HandleMetrics(mux, g.metrics.reg)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := g.Ready(r.Context()); err != nil {
			var problems []string
			for _, e := range unjoin(err) {
				problems = append(problems, e.Error())
			}
			writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "problems": problems})
			return
		}
		writeStatus(w, http.StatusOK, map[string]any{"status": "ready"})
	})
	return mux
}

func writeStatus(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// ErrNotReady is wrapped by every error of [Gateway.Ready].
var ErrNotReady = errors.New("gateway: not ready")

// Ready reports whether the gateway can serve: the keys of every issuer
// are loaded, the replay store (Redis) answers, and it is not stopping.
// Its error joins one short error per problem, each wrapping
// [ErrNotReady], and names no address or internal error.
func (g *Gateway) Ready(ctx context.Context) error {
	var errs []error
	if g.stopping.Load() {
		errs = append(errs, fmt.Errorf("%w: shutting down", ErrNotReady))
	}
	for _, iss := range g.issuers {
		if r, ok := iss.Keys.(interface{ Ready() bool }); ok && !r.Ready() {
			errs = append(errs, fmt.Errorf("%w: keys of issuer %q not loaded", ErrNotReady, iss.Issuer))
		}
	}
	if g.replay != nil {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		err := g.replay.Ping(ctx)
		cancel()
		if err != nil {
			g.log.Warn("readiness: replay store unreachable", "err", err)
			errs = append(errs, fmt.Errorf("%w: replay store unreachable", ErrNotReady))
		}
	}
	return errors.Join(errs...)
}

// Run listens on the configured addresses and serves until ctx is done,
// then stops gracefully: see [Gateway.Serve].
func (g *Gateway) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		_ = g.Close()
		return fmt.Errorf("gateway: listen: %w", err)
	}
	var admin net.Listener
	if g.cfg.AdminListen != "" {
		if admin, err = net.Listen("tcp", g.cfg.AdminListen); err != nil {
			lis.Close()
			_ = g.Close()
			return fmt.Errorf("gateway: admin listen: %w", err)
		}
	}
	return g.Serve(ctx, lis, admin)
}

// Serve serves the proxy on lis and the admin endpoints on admin (nil:
// none), and runs the issuers' key refresh, until ctx is done or a server
// fails. It then stops: readiness turns false, the listeners close,
// requests in flight and upgraded connections get the shutdown timeout to
// finish, and whatever is left is then cut. It closes the Gateway before
// returning, and returns nil after a stop by ctx.
func (g *Gateway) Serve(ctx context.Context, lis, admin net.Listener) error {
	defer g.Close()
	// Cancelled only when the shutdown timeout has passed: it is the base
	// of every request's context, so cancelling it cuts the upstream
	// requests and upgraded connections still running.
	base, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if g.tls != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           g,
		TLSConfig:         g.tls,
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	var adminSrv *http.Server
	if admin != nil {
		adminSrv = &http.Server{
			Handler:           g.AdminHandler(),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          srv.ErrorLog,
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		var err error
		if g.tls != nil {
			err = srv.ServeTLS(lis, "", "")
		} else {
			err = srv.Serve(lis)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: serve: %w", err)
		}
	})
	if adminSrv != nil {
		wg.Go(func() {
			if err := adminSrv.Serve(admin); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("gateway: admin: %w", err)
			}
		})
	}
	wg.Go(func() { _ = g.runKeys(runCtx) })
	g.log.Info("gateway listening", "addr", lis.Addr().String(), "admin", addrOf(admin), "tls", g.tls != nil,
		"routes", len(g.routes), "replay", g.replayName(), "audit", g.audit != nil)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stop()
	g.stopping.Store(true)
	g.log.Info("gateway stopping", "timeout", time.Duration(g.cfg.ShutdownTimeout).String())

	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Duration(g.cfg.ShutdownTimeout))
	defer stopCancel()
	if err := srv.Shutdown(stopCtx); err != nil {
		g.log.Warn("requests still running at the shutdown deadline: cutting them", "count", g.active.Load())
	} else if !g.waitIdle(stopCtx) {
		// Shutdown does not wait for upgraded (hijacked) connections;
		// their handlers are still counted in g.active.
		g.log.Warn("upgraded connections still open at the shutdown deadline: cutting them", "count", g.active.Load())
	}
	cut()
	_ = srv.Close()
	if adminSrv != nil {
		_ = adminSrv.Close()
	}
	wg.Wait()
	g.log.Info("gateway stopped")
	return runErr
}

// waitIdle waits until no handler runs, or ctx is done; it reports which.
func (g *Gateway) waitIdle(ctx context.Context) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for g.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// Close releases the replay store's connections and the audit log. Serve
// calls it; it is idempotent.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		if g.replay != nil {
			errs = append(errs, g.replay.Close())
		}
		if g.audit != nil {
			errs = append(errs, g.audit.Close())
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

func (g *Gateway) replayName() string {
	if g.replay != nil {
		return "redis"
	}
	return "memory"
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}
