package gateway

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

func TestMetrics(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.Routes = append(cfg.Routes, RouteConfig{Name: "admin", PathPrefix: "/admin", Scopes: []string{"admin"}})
	gw := start(t, cfg)

	tok := mint(t)
	for _, c := range []struct {
		path, tok string
		status    int
	}{
		{"/a", tok, http.StatusOK},
		{"/a", tok, http.StatusUnauthorized}, // replayed
		{"/b", mint(t), http.StatusOK},
		{"/a", "", http.StatusUnauthorized},         // missing_token
		{"/admin/x", mint(t), http.StatusForbidden}, // insufficient_scope
		{"/a/../b", mint(t), http.StatusBadRequest}, // bad_path, the gateway's own
	} {
		resp, body := gw.do(t, "GET", c.path, c.tok, nil)
		checkStatus(t, resp, body, c.status, "")
	}

	m := telemetrytest.Scrape(t, gw.admin+"/metrics")
	for _, c := range []struct {
		code, route string
		want        float64
	}{
		{"ok", "all", 2}, {"replayed", "all", 1}, {"missing_token", "all", 1},
		{"insufficient_scope", "admin", 1}, {"bad_path", "none", 1},
	} {
		if v, _ := m.Value("frostmint_verifier_decisions_total", "code", c.code, "route", c.route); v != c.want {
			t.Errorf("decisions_total{code=%s,route=%s} = %v, want %v", c.code, c.route, v, c.want)
		}
	}
	// Two tokens used once each; the replayed one is not added again.
	if v, _ := m.Value("frostmint_replay_cache_entries"); v != 2 {
		t.Errorf("replay_cache_entries = %v, want 2", v)
	}
	if got := m.Count("frostmint_gateway_upstream_seconds", "route", "all", "status", "2xx"); got != 2 {
		t.Errorf("upstream_seconds{all,2xx} count = %d, want 2", got)
	}
	// Labels never carry a token, a subject or a token id.
	for name, f := range m {
		if !strings.HasPrefix(name, "frostmint_") {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if strings.ContainsAny(l.GetValue(), ".:/") {
					t.Errorf("%s label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestMetricsUpstreamDownAndRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	reg := prometheus.NewRegistry()
	g, err := New(t.Context(), baseConfig(t, "http://"+addr), testLogger(t), WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	req, _ := http.NewRequest("GET", "http://gw.test/x", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t))
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d", w.Code)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, f := range fams {
		if f.GetName() != "frostmint_gateway_upstream_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "status" && lp.GetValue() == "error" && mt.GetHistogram().GetSampleCount() == 1 {
					seen = true
				}
			}
		}
	}
	if !seen {
		t.Error("no upstream_seconds{status=error} sample on the given registry")
	}
}

func TestMainLogFormat(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(t.Context(), []string{"--log-format", "xml", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1",
		"--issuer", testIssuer, "--audience", testAudience}, &out, &errb)
	if code != ExitUsage || !strings.Contains(errb.String(), "--log-format: want json or text") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	code = Main(t.Context(), []string{"--config", filepath.Join(t.TempDir(), "missing.json"), "--log-format", "text"}, &out, &errb)
	if code != ExitUsage || strings.Contains(errb.String(), "excludes") {
		t.Fatalf("--log-format with --config: exit %d, stderr %q", code, errb.String())
	}
}
