package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a new registry with the Go runtime and process
// collectors: one per daemon, never the global default registry.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// MetricsHandler serves the metrics of g in the Prometheus text (or
// OpenMetrics, when asked) format. A collector's error is served as an
// HTTP 500 rather than as partial data.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.HTTPErrorOnError,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})
}

// ReadyFunc reports why a daemon cannot serve now, or nil when it can.
// Its error joins short problems (errors.Join) that name no secret,
// address or internal detail: they are shown to whoever asks /readyz.
type ReadyFunc func(ctx context.Context) error

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// HandleHealth adds GET /healthz (200 while the process serves) and GET
// /readyz (see [HandleReady]) to mux.
func HandleHealth(mux *http.ServeMux, ready ReadyFunc) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	HandleReady(mux, ready)
}

// HandleReady adds GET /readyz to mux: 200 {"status":"ready"} when ready
// returns nil, else 503 {"status":"not_ready","problems":[…]}, as the
// gateway's admin endpoint answers.
func HandleReady(mux *http.ServeMux, ready ReadyFunc) {
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "problems": Problems(err)})
			return
		}
		writeStatus(w, http.StatusOK, map[string]any{"status": "ready"})
	})
}

// HandleMetrics adds GET /metrics, the metrics of g, to mux.
func HandleMetrics(mux *http.ServeMux, g prometheus.Gatherer) {
	mux.Handle("GET /metrics", MetricsHandler(g))
}

// Problems splits an error made by errors.Join into its messages.
func Problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// ErrNotReady is wrapped by the readiness problems of the daemons.
var ErrNotReady = errors.New("not ready")

func writeStatus(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
