package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/middleware/prommetrics"
	"github.com/frostmint/frostmint/verifier/token"
)

// decisions records what the middleware reports.
type decisions struct {
	mu  sync.Mutex
	got []string // "route code"
}

func (d *decisions) Decision(route, code string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, route+" "+code)
}

func TestMetricsHookSeesEveryDecision(t *testing.T) {
	d := &decisions{}
	m := newMiddleware(t, middleware.Options{Metrics: d, Audit: &failingAuditor{}})
	plain := newMiddleware(t, middleware.Options{Metrics: d})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("GET /read", plain.Require(middleware.Route{Scopes: []string{"read"}})(ok))
	mux.Handle("GET /admin", plain.Require(middleware.Route{Name: "admin", Scopes: []string{"admin"}})(ok))
	mux.Handle("GET /audited", m.Require(middleware.Route{Name: "audited"})(ok))

	tok := good(t)
	for _, c := range []struct{ path, tok string }{
		{"/read", tok}, {"/read", tok}, {"/read", ""}, {"/admin", good(t)},
		{"/read", good(t, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-400, t0-400, t0-100 })},
		{"/audited", good(t)}, // allowed, but the audit log fails: denied
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		if c.tok != "" {
			req.Header.Set("Authorization", "Bearer "+c.tok)
		}
		mux.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := []string{"GET /read ok", "GET /read replayed", "GET /read missing_token", "admin insufficient_scope",
		"GET /read expired", "audited audit_unavailable"}
	if len(d.got) != len(want) {
		t.Fatalf("decisions %q, want %q", d.got, want)
	}
	for i := range want {
		if d.got[i] != want[i] {
			t.Errorf("decision %d: %q, want %q", i, d.got[i], want[i])
		}
	}
}

func TestMetricsHookOnGRPC(t *testing.T) {
	d := &decisions{}
	m := newMiddleware(t, middleware.Options{Metrics: d})
	ic := m.UnaryServerInterceptor(func(string) (middleware.Route, bool) { return middleware.Route{}, false })
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/pkg.Svc/Do"},
		func(context.Context, any) (any, error) { return nil, nil })
	if err == nil || len(d.got) != 1 || d.got[0] != "/pkg.Svc/Do no_rule" {
		t.Fatalf("err %v, decisions %q", err, d.got)
	}
}

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	pm, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prommetrics.New(reg); err == nil {
		t.Fatal("registered twice on one registry")
	}
	cache := verifier.NewMemoryReplayCache(16, now)
	if err := prommetrics.RegisterReplayCache(reg, cache); err != nil {
		t.Fatal(err)
	}
	m := newMiddleware(t, middleware.Options{Metrics: pm, Verifier: newVerifier(t, func(c *verifier.Config) { c.Replay = cache })})
	h := m.Require(middleware.Route{Name: "r"})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tok := good(t)
	for range 3 {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if n, err := testutil.GatherAndCount(reg, "frostmint_verifier_decisions_total"); err != nil || n != 2 {
		t.Fatalf("decision series %d %v, want 2 (ok, replayed)", n, err)
	}
	c, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c {
		for _, mt := range f.GetMetric() {
			lv := map[string]string{}
			for _, l := range mt.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			switch {
			case f.GetName() == "frostmint_replay_cache_entries" && mt.GetGauge().GetValue() != 1:
				t.Errorf("replay_cache_entries = %v", mt.GetGauge().GetValue())
			case f.GetName() == "frostmint_verifier_decisions_total" && lv["code"] == "replayed" && mt.GetCounter().GetValue() != 2:
				t.Errorf("replayed = %v", mt.GetCounter().GetValue())
			case f.GetName() == "frostmint_verifier_decisions_total" && lv["route"] != "r":
				t.Errorf("route label %q", lv["route"])
			}
		}
	}
}
