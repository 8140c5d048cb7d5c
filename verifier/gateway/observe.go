package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/middleware/prommetrics"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Option adjusts a Gateway made by [New].
type Option func(*Gateway)

// WithRegistry makes the Gateway register its metrics on reg, served at
// /metrics on the admin address, instead of on a registry of its own.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(g *Gateway) { g.metrics.reg = reg }
}

// gatewayMetrics are the gateway's Prometheus metrics:
//
//	frostmint_verifier_decisions_total{code,route}  every request's decision: "ok" or the rejection's code
//	frostmint_replay_cache_entries                  the in-memory replay cache's entries (none with Redis)
//	frostmint_gateway_upstream_seconds{route,status} time to the upstream's response headers
type gatewayMetrics struct {
	reg       *prometheus.Registry
	decisions *prommetrics.Metrics
	upstream  *prometheus.HistogramVec
}

// register makes the metrics on m.reg (a registry of their own unless
// WithRegistry gave one).
func (m *gatewayMetrics) register() error {
	if m.reg == nil {
		m.reg = telemetry.NewRegistry()
	}
	var err error
	if m.decisions, err = prommetrics.New(m.reg); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "frostmint_gateway_upstream_seconds",
		Help:    `Time from forwarding a request to the upstream's response headers, by route and status ("2xx"…"5xx", or "error" when the upstream could not be reached).`,
		Buckets: telemetry.LatencyBuckets(),
	}, []string{"route", "status"})
	if err := m.reg.Register(m.upstream); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	return nil
}

// memoryReplay makes the in-memory replay cache and registers its size.
func (m *gatewayMetrics) memoryReplay() (*verifier.MemoryReplayCache, error) {
	c := verifier.NewMemoryReplayCache(verifier.DefaultReplayCacheSize, nil)
	if err := prommetrics.RegisterReplayCache(m.reg, c); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	return c, nil
}

// refused counts a rejection of the gateway's own (no route, bad path…).
func (m *gatewayMetrics) refused(route, code string) {
	if route == "" {
		route = "none"
	}
	m.decisions.Decision(route, code)
}

// transport times the round trips of route's proxy to its upstream.
func (m *gatewayMetrics) transport(route string, next http.RoundTripper) http.RoundTripper {
	return timedTransport{next: next, obs: m.upstream.MustCurryWith(prometheus.Labels{"route": route})}
}

type timedTransport struct {
	next http.RoundTripper
	obs  prometheus.ObserverVec
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode/100) + "xx"
	}
	t.obs.WithLabelValues(status).Observe(time.Since(start).Seconds())
	return resp, err
}
