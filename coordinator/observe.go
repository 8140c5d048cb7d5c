package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Metrics are a coordinator's Prometheus metrics, registered on one
// registry and served on http_listen at /metrics. Make them with
// [NewMetrics] and pass them with [WithMetrics] (one Metrics per Server);
// without, a Server makes its own registry.
//
// Labels are bounded: outcomes, stable reason codes, stage names and the
// configured signer ids, never a subject or a token id.
type Metrics struct {
	reg *prometheus.Registry

	mints       *prometheus.CounterVec   // outcome, reason
	mintSeconds *prometheus.HistogramVec // outcome
	stages      *prometheus.HistogramVec // stage
	signerCalls *prometheus.HistogramVec // signer, outcome
	retries     *prometheus.CounterVec   // reason
	cheaters    *prometheus.CounterVec   // signer
	approvals   *prometheus.CounterVec   // outcome
	auditFails  prometheus.Counter
	attests     *prometheus.CounterVec
}

// NewMetrics registers the coordinator's metrics on reg (see
// telemetry.NewRegistry). It fails if reg holds them already.
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	b := telemetry.LatencyBuckets()
	m := &Metrics{
		reg: reg,
		mints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_mints_total",
			Help: "Mint requests answered, by outcome (minted, refused, error) and reason (ok, or the stable reason code of the audit record).",
		}, []string{"outcome", "reason"}),
		mintSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frostmint_mint_seconds",
			Help:    "Time to answer a Mint request, by outcome.",
			Buckets: b,
		}, []string{"outcome"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "frostmint_mint_stage_seconds",
			Help: "Time spent in each stage of a mint: authenticate (the caller's evidence), policy, approval (a guardian's engineer), " +
				"fanout (one quorum's signature shares, per attempt), aggregate, audit.",
			Buckets: b,
		}, []string{"stage"}),
		signerCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frostmint_signer_sign_seconds",
			Help:    "Time of one signer's Sign call as the coordinator sees it, by signer and outcome (ok, or the gRPC code).",
			Buckets: b,
		}, []string{"signer", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_mint_retries_total",
			Help: "Signers that did not sign in a quorum they were asked in, so that the mint asked another quorum, by reason " +
				"(stale_commitments, refused, policy_mismatch, unavailable, timeout, invalid_share, error).",
		}, []string{"reason"}),
		cheaters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_cheaters_identified_total",
			Help: "Invalid signature shares, by the signer that returned them (it is quarantined).",
		}, []string{"signer"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_approvals_total",
			Help: "Human approvals asked of guardians, by outcome (approved, approval_declined, approval_timeout, approval_unavailable, approval_required: no guardian connected).",
		}, []string{"outcome"}),
		auditFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "frostmint_audit_append_failures_total",
			Help: "Audit records that could not be written (the decision they record did not take effect).",
		}),
		attests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frostmint_signer_attestations_total",
			Help: "Attestation checks of signers, by signer and outcome (admitted, or why not: no_attestation, chain, signature, " +
				"report_data, debug, policy, measurement, tcb, evidence, fetch, unavailable, refused by the admission policy…).",
		}, []string{"signer", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.mints, m.mintSeconds, m.stages, m.signerCalls, m.retries, m.cheaters, m.approvals, m.auditFails, m.attests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("coordinator: metrics: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WithMetrics makes the Server count into m instead of metrics of its own.
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.obs.metrics = m } }

// WithTracerProvider makes the Server trace with tp (a test's in-memory
// exporter, an embedding application's provider) instead of as its
// config's tracing section says. The caller shuts tp down.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.obs.tracing = telemetry.WrapProvider(tp) }
}

// observer is the Server's metrics and tracer.
type observer struct {
	metrics *Metrics
	tracing *telemetry.Tracing
	tracer  trace.Tracer
}

// init completes o after the options: metrics on a registry of their own
// and tracing as cfg says, unless given. It returns the function that
// flushes the traces, if any.
func (o *observer) init(ctx context.Context, cfg Config) (func() error, error) {
	if o.metrics == nil {
		m, err := NewMetrics(telemetry.NewRegistry())
		if err != nil {
			return nil, err
		}
		o.metrics = m
	}
	var closer func() error
	if o.tracing == nil {
		t, err := telemetry.NewTracing(ctx, cfg.Tracing, "frostmint-coordinator")
		if err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		o.tracing = t
		closer = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return t.Shutdown(ctx)
		}
	}
	o.tracer = o.tracing.Provider().Tracer("github.com/frostmint/frostmint/coordinator")
	return closer, nil
}

// serverOptions trace the Mint API. Callers are outside the cluster: their
// trace is linked, not continued.
func (o *observer) serverOptions() []grpc.ServerOption {
	return telemetry.GRPCServerOptions(o.tracing, true)
}

// dialOptions propagate the trace context to the signers.
func (o *observer) dialOptions() []grpc.DialOption { return telemetry.GRPCDialOptions(o.tracing) }

// attestation counts one attestation check of signer id: admitted
// (attested or not), or the reason it was not.
func (o *observer) attestation(id uint16, attested, admitted bool, reason string) {
	outcome := reason
	switch {
	case admitted && attested:
		outcome = "admitted"
	case admitted:
		outcome = "admitted_unattested"
	case strings.HasPrefix(reason, "refused by the admission policy"):
		outcome = "admission_refused"
	case strings.HasPrefix(reason, "unavailable"):
		outcome = "unavailable"
	}
	o.metrics.attests.WithLabelValues(signerLabel(id), outcome).Inc()
}

// watch registers what is read at scrape time: each signer's health and
// commitment pool, the active key and the policy.
func (o *observer) watch(s *Server) error {
	c := &stateCollector{pools: append([]*pool(nil), s.pools...), keys: func() string { return s.keys.Load().kid() },
		healthy: prometheus.NewDesc("frostmint_signer_healthy",
			"1 when the coordinator takes the signer for healthy (it answered its last call), else 0.", []string{"signer"}, nil),
		depth: prometheus.NewDesc("frostmint_commitment_pool_depth",
			"Nonce commitments pooled for the signer, ready for mints.", []string{"signer"}, nil),
		key: prometheus.NewDesc("frostmint_active_key_info",
			"1, labelled with the kid of the key new tokens are signed with; absent before the first key ceremony.", []string{"kid"}, nil),
		attested: prometheus.NewDesc("frostmint_signer_admitted",
			"1 when the signer's attestation verdict admits it to mints now, else 0; only with an attestation section.", []string{"signer"}, nil),
		hasAtt: s.att != nil,
	}
	for _, c := range []prometheus.Collector{c, telemetry.PolicyInfo(s.policy.Hash)} {
		if err := o.metrics.reg.Register(c); err != nil {
			return fmt.Errorf("coordinator: metrics: %w", err)
		}
	}
	return nil
}

// stateCollector reads the signers' pools and the active key at scrape
// time.
type stateCollector struct {
	pools               []*pool
	keys                func() string
	healthy, depth, key *prometheus.Desc
	attested            *prometheus.Desc
	hasAtt              bool
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.depth
	ch <- c.key
	ch <- c.attested
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools {
		id := signerLabel(p.ep.ID)
		healthy, n, _ := p.status()
		h := 0.0
		if healthy && p.usable() {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, h, id)
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), id)
		if c.hasAtt {
			a := 0.0
			if _, ok, _ := p.attestationStatus(); ok {
				a = 1
			}
			ch <- prometheus.MustNewConstMetric(c.attested, prometheus.GaugeValue, a, id)
		}
	}
	if kid := c.keys(); kid != "" {
		ch <- prometheus.MustNewConstMetric(c.key, prometheus.GaugeValue, 1, kid)
	}
}

func signerLabel(id uint16) string { return strconv.Itoa(int(id)) }

// Ready reports whether the coordinator can mint now: it has an active key
// and at least t signers that are healthy and hold pooled commitments.
// Its error joins short problems, for /readyz.
func (s *Server) Ready(context.Context) error {
	k := s.active()
	if k == nil {
		return fmt.Errorf("%w: no active key (run the key ceremony)", telemetry.ErrNotReady)
	}
	t := int(k.group.Public().Threshold)
	ready := 0
	for _, p := range s.pools {
		if healthy, n, _ := p.status(); healthy && n > 0 && p.usable() {
			ready++
		}
	}
	if ready < t {
		var out []string
		for _, p := range s.pools {
			if checked, ok, why := p.attestationStatus(); s.att != nil && !ok {
				if !checked {
					why = "attestation not checked yet"
				}
				out = append(out, fmt.Sprintf("signer %d not admitted: %s", p.ep.ID, why))
			}
		}
		detail := ""
		if len(out) > 0 {
			detail = " (" + strings.Join(out, "; ") + ")"
		}
		return fmt.Errorf("%w: %d of the %d signers needed are healthy with commitments%s", telemetry.ErrNotReady, ready, t, detail)
	}
	return nil
}

// startMint starts the span of one Mint; the function it returns ends it
// and counts the outcome, from the audit record, the error returned to
// the caller and whether that record could not be written.
func (o *observer) startMint(ctx context.Context, rid string) (context.Context, func(rec *audit.Record, err error, auditFailed bool)) {
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, "coordinator.Mint", trace.WithAttributes(attribute.String("frostmint.request_id", rid)))
	return ctx, func(rec *audit.Record, err error, auditFailed bool) {
		outcome, reason := "minted", "ok"
		switch {
		case auditFailed:
			outcome, reason = "error", "audit_unavailable"
		case err != nil:
			outcome, reason = "refused", telemetry.Code(rec.Code)
			if telemetry.Failed(err) {
				outcome = "error"
			}
		}
		o.metrics.mints.WithLabelValues(outcome, reason).Inc()
		o.metrics.mintSeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if !span.IsRecording() {
			span.End()
			return
		}
		span.SetAttributes(attribute.String("frostmint.outcome", outcome), attribute.String("frostmint.reason", reason))
		if rec.KeyID != "" {
			span.SetAttributes(attribute.String("frostmint.kid", rec.KeyID))
		}
		if len(rec.Signers) > 0 {
			ids := make([]int64, len(rec.Signers))
			for i, id := range rec.Signers {
				ids[i] = int64(id)
			}
			span.SetAttributes(attribute.Int64Slice("frostmint.signer_ids", ids))
		}
		if err != nil {
			span.SetStatus(otelcodes.Error, reason)
		}
		span.End()
	}
}

// stage starts a child span of a mint's stage; the function it returns
// ends it and observes its duration.
func (o *observer) stage(ctx context.Context, name string) (context.Context, func(error)) {
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, "coordinator."+name)
	return ctx, func(err error) {
		o.metrics.stages.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if err != nil {
			span.SetStatus(otelcodes.Error, reasonOf(err))
		}
		span.End()
	}
}

// approval is the approval stage; it also counts the approval's outcome.
func (o *observer) approval(ctx context.Context) (context.Context, func(error)) {
	ctx, end := o.stage(ctx, "approval")
	return ctx, func(err error) {
		outcome := "approved"
		if err != nil {
			outcome = reasonOf(err)
		}
		o.metrics.approvals.WithLabelValues(outcome).Inc()
		end(err)
	}
}

// signerCall starts the span of one signer's Sign call of a fan-out (the
// gRPC client span and the signer's own spans are its children); the
// function it returns ends it and observes the call.
func (o *observer) signerCall(ctx context.Context, id uint16) (context.Context, func(error)) {
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, "coordinator.sign_share", trace.WithAttributes(attribute.Int("frostmint.signer_id", int(id))))
	return ctx, func(err error) {
		outcome := "ok"
		if err != nil {
			outcome = grpcCode(err)
			span.SetStatus(otelcodes.Error, outcome)
		}
		o.metrics.signerCalls.WithLabelValues(signerLabel(id), outcome).Observe(time.Since(start).Seconds())
		span.End()
	}
}

// retry counts a signer that did not sign, by why: err is what its Sign
// call returned. (Its sign_share span has the details.)
func (o *observer) retry(err error) {
	reason := "error"
	switch status.Code(err) {
	case codes.Aborted:
		reason = "stale_commitments"
	case codes.FailedPrecondition:
		reason = "policy_mismatch"
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted:
		reason = "refused"
	case codes.Unavailable:
		reason = "unavailable"
	case codes.DeadlineExceeded:
		reason = "timeout"
	case codes.Canceled:
		reason = "canceled"
	}
	o.metrics.retries.WithLabelValues(reason).Inc()
}

// cheater counts an invalid signature share of signer id.
func (o *observer) cheater(id uint16) {
	o.metrics.cheaters.WithLabelValues(signerLabel(id)).Inc()
	o.metrics.retries.WithLabelValues("invalid_share").Inc()
}

// appendAudit writes rec to the audit log within the audit stage of the
// mint of ctx.
func (s *Server) appendAudit(ctx context.Context, rec audit.Record) error {
	_, end := s.obs.stage(ctx, "audit")
	err := s.audit.Append(rec)
	end(err)
	if err != nil {
		s.obs.metrics.auditFails.Inc()
	}
	return err
}

// reasonOf is the stable code of an error of a mint's stage: a denial's
// reason, a gRPC code, or "error".
func reasonOf(err error) string {
	var d *denial
	if errors.As(err, &d) {
		return telemetry.Code(d.reason)
	}
	if _, ok := status.FromError(err); ok {
		return grpcCode(err)
	}
	return "error"
}

// grpcCode is the gRPC code of err in snake case ("deadline_exceeded").
func grpcCode(err error) string {
	c := status.Code(err)
	if c == codes.OK {
		return "ok"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return telemetry.Code(b.String())
}
