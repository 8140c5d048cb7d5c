// Package prommetrics counts the decisions of a frostmint verifier
// middleware (package verifier/middleware) for Prometheus, and exposes the
// size of an in-memory replay cache.
//
//	reg := prometheus.NewRegistry()
//	pm, err := prommetrics.New(reg)
//	if err != nil { … }
//	mw, err := middleware.New(middleware.Options{Verifier: v, Metrics: pm})
//	_ = prommetrics.RegisterReplayCache(reg, cache) // if the Verifier's Replay is a *verifier.MemoryReplayCache you made
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Metrics:
//
//	frostmint_verifier_decisions_total{code,route}  requests decided: code "ok" (let through) or the rejection's stable code
//	frostmint_replay_cache_entries                  entries held by the in-memory replay cache (expired ones not yet purged included)
//
// The labels come from bounded sets (the middleware's codes and the routes
// configured); no token, subject or token id ever becomes a label. Keep
// route names bounded too: a Route without a Name is labelled with its
// ServeMux pattern or gRPC method, not the request path.
package prommetrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics implements middleware.Metrics with a Prometheus counter.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// New registers frostmint_verifier_decisions_total on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "frostmint_verifier_decisions_total",
		Help: `Requests decided by the verifier, by code ("ok" when let through, else the stable code of the rejection) and route.`,
	}, []string{"code", "route"})}
	if err := reg.Register(m.decisions); err != nil {
		return nil, fmt.Errorf("prommetrics: %w", err)
	}
	return m, nil
}

// Decision implements middleware.Metrics.
func (m *Metrics) Decision(route, code string) {
	m.decisions.WithLabelValues(code, route).Inc()
}

// Lener is what [RegisterReplayCache] reads: *verifier.MemoryReplayCache
// is one.
type Lener interface{ Len() int }

// RegisterReplayCache registers frostmint_replay_cache_entries, the
// number of entries c holds, read at each scrape.
func RegisterReplayCache(reg prometheus.Registerer, c Lener) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "frostmint_replay_cache_entries",
		Help: "Entries held by the in-memory replay cache of used tokens, expired entries not yet purged included.",
	}, func() float64 { return float64(c.Len()) })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("prommetrics: %w", err)
	}
	return nil
}
