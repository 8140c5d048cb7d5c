package signer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Metrics are a signer's Prometheus metrics, served at /metrics on
// metrics_listen (see [Server.MetricsHandler]). Make them with
// [NewMetrics] and pass them with [WithMetrics] (one Metrics per Server);
// without, a Server makes its own registry.
type Metrics struct {
	reg *prometheus.Registry

	signs       *prometheus.CounterVec   // outcome, reason
	signSeconds *prometheus.HistogramVec // outcome
	auditFails  prometheus.Counter
}

// NewMetrics registers a signer's metrics on reg (see
// telemetry.NewRegistry). It fails if reg holds them already.
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		signs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_signs_total",
			Help: "Sign requests judged, by outcome (signed, refused, error) and reason (ok, or the stable reason code of the audit record).",
		}, []string{"outcome", "reason"}),
		signSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frostmint_sign_seconds",
			Help:    "Time to answer a Sign request (judge, audit, signature share), by outcome.",
			Buckets: telemetry.LatencyBuckets(),
		}, []string{"outcome"}),
		auditFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "frostmint_audit_append_failures_total",
			Help: "Audit records that could not be written (the decision they record did not take effect).",
		}),
	}
	for _, c := range []prometheus.Collector{m.signs, m.signSeconds, m.auditFails} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("signer: metrics: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WithMetrics makes the Server count into m instead of metrics of its own.
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.obs.metrics = m } }

// WithTracerProvider makes the Server trace with tp instead of as its
// config's tracing section says. The caller shuts tp down.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.obs.tracing = telemetry.WrapProvider(tp) }
}

// observer is the Server's metrics and tracer.
type observer struct {
	metrics *Metrics
	tracing *telemetry.Tracing
	tracer  trace.Tracer
	audit   *watchedAuditor
}

// observe completes s.obs after the options and init: metrics on a
// registry of their own and tracing as the config says, unless given; the
// audit log watched for readiness; the state read at scrape time.
func (s *Server) observe() error {
	o := s.obs
	if o.metrics == nil {
		m, err := NewMetrics(telemetry.NewRegistry())
		if err != nil {
			return err
		}
		o.metrics = m
	}
	if o.tracing == nil {
		t, err := telemetry.NewTracing(context.Background(), s.cfg.Tracing, fmt.Sprintf("frostmint-signer-%d", s.cfg.ID))
		if err != nil {
			return fmt.Errorf("signer %d: %w", s.cfg.ID, err)
		}
		o.tracing = t
		s.closers = append(s.closers, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return t.Shutdown(ctx)
		})
	}
	o.tracer = o.tracing.Provider().Tracer("github.com/frostmint/frostmint/signer")
	o.audit = &watchedAuditor{a: s.audit, fails: o.metrics.auditFails}
	s.audit = o.audit
	c := &stateCollector{s: s,
		nonces: prometheus.NewDesc("frostmint_nonces_outstanding",
			"Nonces made and not yet used or expired, over every key epoch.", nil, nil),
		epochs: prometheus.NewDesc("frostmint_key_epochs_loaded",
			"Key epochs whose share this signer holds unsealed.", nil, nil),
	}
	for _, c := range []prometheus.Collector{c, telemetry.PolicyInfo(s.policy.Hash)} {
		if err := o.metrics.reg.Register(c); err != nil {
			return fmt.Errorf("signer %d: metrics: %w", s.cfg.ID, err)
		}
	}
	return nil
}

// serverOptions trace incoming calls, continuing the coordinator's trace.
func (o *observer) serverOptions() []grpc.ServerOption {
	return telemetry.GRPCServerOptions(o.tracing, false)
}

// stateCollector reads the signer's nonces and key epochs at scrape time.
type stateCollector struct {
	s              *Server
	nonces, epochs *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nonces
	ch <- c.epochs
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := 0
	epochs := c.s.keys.list()
	for _, e := range epochs {
		n += e.signer.Outstanding()
	}
	ch <- prometheus.MustNewConstMetric(c.nonces, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.epochs, prometheus.GaugeValue, float64(len(epochs)))
}

// startSign starts the span of one Sign; the function it returns ends it
// and counts the outcome, from the audit record, the error returned and
// whether that record could not be written.
func (o *observer) startSign(ctx context.Context, rid string, id uint16) (context.Context, func(rec *audit.Record, err error, auditFailed bool)) {
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, "signer.Sign", trace.WithAttributes(
		attribute.String("frostmint.request_id", rid), attribute.Int("frostmint.signer_id", int(id))))
	return ctx, func(rec *audit.Record, err error, auditFailed bool) {
		outcome, reason := "signed", "ok"
		switch {
		case auditFailed:
			outcome, reason = "error", "audit_unavailable"
		case err != nil:
			outcome, reason = "refused", telemetry.Code(rec.Code)
			if telemetry.Failed(err) {
				outcome = "error"
			}
		}
		o.metrics.signs.WithLabelValues(outcome, reason).Inc()
		o.metrics.signSeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if span.IsRecording() {
			span.SetAttributes(attribute.String("frostmint.outcome", outcome), attribute.String("frostmint.reason", reason))
			if rec.KeyID != "" {
				span.SetAttributes(attribute.String("frostmint.kid", rec.KeyID))
			}
			if err != nil {
				span.SetStatus(otelcodes.Error, reason)
			}
		}
		span.End()
	}
}

// span starts a child span named name; the function it returns ends it.
func (o *observer) span(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := o.tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			reason := "error"
			if r, ok := errors.AsType[*refusal](err); ok {
				reason = telemetry.Code(r.reason)
			}
			span.SetStatus(otelcodes.Error, reason)
		}
		span.End()
	}
}

// watchedAuditor is the signer's Auditor, watched: a write that fails for
// good (the log is unusable or closed) makes the signer not ready.
type watchedAuditor struct {
	a      Auditor
	fails  prometheus.Counter
	broken atomic.Bool
}

func (w *watchedAuditor) Append(r audit.Record) error {
	err := w.a.Append(r)
	if err != nil {
		w.fails.Inc()
		if errors.Is(err, audit.ErrUnusable) || errors.Is(err, audit.ErrClosed) {
			w.broken.Store(true)
		}
	}
	return err
}

// writable reports whether appends can succeed: none has failed for good,
// and the log file and its head file (when the Auditor says where they
// are) can be opened for appending. Nothing is written.
func (w *watchedAuditor) writable() error {
	if w.broken.Load() {
		return errors.New("a write to the audit log failed: restart the signer")
	}
	p, ok := w.a.(interface{ Path() string })
	if !ok {
		return nil
	}
	for _, path := range []string{p.Path(), p.Path() + ".head"} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return errors.New("the audit log cannot be opened for writing")
		}
		f.Close()
	}
	return nil
}

// Ready reports whether the signer can sign: its policy is loaded, it
// holds at least one key epoch, and its audit log is writable. Its error
// joins short problems, for /readyz.
func (s *Server) Ready(context.Context) error {
	var errs []error
	if s.policy == nil || s.policy.Hash() == "" {
		errs = append(errs, fmt.Errorf("%w: no policy loaded", telemetry.ErrNotReady))
	}
	if len(s.keys.list()) == 0 {
		errs = append(errs, fmt.Errorf("%w: no key epoch (run the key ceremony)", telemetry.ErrNotReady))
	}
	if s.obs.audit != nil {
		if err := s.obs.audit.writable(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", telemetry.ErrNotReady, err))
		}
	}
	return errors.Join(errs...)
}

// MetricsHandler serves GET /metrics, /healthz and /readyz (see
// [Server.Ready]): what metrics_listen serves.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	telemetry.HandleHealth(mux, s.Ready)
	telemetry.HandleMetrics(mux, s.obs.metrics.Registry())
	return mux
}

// ServeMetrics serves [Server.MetricsHandler] on lis (plain HTTP: keep it
// on loopback or a monitoring network) until ctx is done.
func (s *Server) ServeMetrics(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{Handler: s.MetricsHandler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(lis)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("signer: metrics: %w", err)
}

// startMetrics serves the metrics on metrics_listen, if configured, until
// ctx is done or the returned stop is called.
func (s *Server) startMetrics(ctx context.Context) (stop func(), err error) {
	if s.cfg.MetricsListen == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("signer: metrics listen: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.ServeMetrics(ctx, lis); err != nil {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.log.Info("serving metrics", "addr", lis.Addr().String(), "id", s.cfg.ID)
	return func() { cancel(); <-done }, nil
}
