package signer_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestSignMetricsCountRefusalsByReason(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.c.Signers[1].Server.MetricsHandler())
	defer srv.Close()

	if err := f.sign(t, f.msg(nil), f.req(t)); err != nil {
		t.Fatal(err)
	}
	long := f.msg(func(h, c map[string]any) { c["exp"] = c["iat"].(int64) + 3600 })
	if err := f.sign(t, long, f.req(t)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a token over the cap: %v", err)
	}
	if err := f.sign(t, []byte("not a token"), f.req(t)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("not a token: %v", err)
	}

	m := telemetrytest.Scrape(t, srv.URL+"/metrics")
	for _, c := range []struct {
		outcome, reason string
	}{{"signed", "ok"}, {"refused", "token_refused"}, {"refused", "not_a_token"}} {
		if v, _ := m.Value("frostmint_signs_total", "outcome", c.outcome, "reason", c.reason); v != 1 {
			t.Errorf("signs_total{%s,%s} = %v, want 1", c.outcome, c.reason, v)
		}
	}
	if got := m.Count("frostmint_sign_seconds"); got != 3 {
		t.Errorf("sign_seconds count %d, want 3", got)
	}
	if v, _ := m.Value("frostmint_key_epochs_loaded"); v != 1 {
		t.Errorf("key_epochs_loaded = %v", v)
	}
	if v, _ := m.Value("frostmint_policy_info", "hash", f.hash[:12]); v != 1 {
		t.Errorf("policy_info{hash=%s} = %v", f.hash[:12], v)
	}
	if v, _ := m.Value("frostmint_audit_append_failures_total"); v != 0 {
		t.Errorf("audit failures %v", v)
	}
}

// brokenAuditor writes nothing.
type brokenAuditor struct{}

func (brokenAuditor) Append(audit.Record) error { return errors.New("disk full") }

// A Sign whose audit record cannot be written is an error of the
// signer's (audit_unavailable), whether it would have signed or refused.
func TestSignMetricsCountAuditFailures(t *testing.T) {
	f := newFixtureWith(t, coordinatortest.Options{N: 3, T: 2, SignerOptions: []signer.Option{signer.WithAuditor(brokenAuditor{})}})
	srv := httptest.NewServer(f.c.Signers[1].Server.MetricsHandler())
	defer srv.Close()
	if err := f.sign(t, f.msg(nil), f.req(t)); status.Code(err) != codes.Unavailable {
		t.Fatalf("a share without its audit record: %v, want UNAVAILABLE", err)
	}
	if err := f.sign(t, []byte("not a token"), f.req(t)); status.Code(err) != codes.Unavailable {
		t.Fatalf("a refusal without its audit record: %v, want UNAVAILABLE", err)
	}
	m := telemetrytest.Scrape(t, srv.URL+"/metrics")
	if v, _ := m.Value("frostmint_signs_total", "outcome", "error", "reason", "audit_unavailable"); v != 2 {
		t.Errorf("signs_total{error,audit_unavailable} = %v, want 2", v)
	}
	if v, _ := m.Value("frostmint_audit_append_failures_total"); v != 2 {
		t.Errorf("audit_append_failures_total = %v, want 2", v)
	}
}

func TestSignerReadyz(t *testing.T) {
	f := newFixture(t)
	s := f.c.Signers[1]
	srv := httptest.NewServer(s.Server.MetricsHandler())
	defer srv.Close()
	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("readyz: %d %v", code, body)
	}
	// The audit log gone: every decision would be lost, so not ready.
	if err := os.Remove(s.Config.AuditLog); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(strings.Join(problems(body), ";"), "audit log cannot be opened") {
		t.Fatalf("readyz without its audit log: %d %v", code, body)
	}
	if err := s.Server.Ready(context.Background()); !errors.Is(err, telemetry.ErrNotReady) {
		t.Fatalf("Ready: %v", err)
	}
}

func problems(body map[string]any) []string {
	var out []string
	ps, _ := body["problems"].([]any)
	for _, p := range ps {
		out = append(out, p.(string))
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestMetricsListen(t *testing.T) {
	f := newFixture(t)
	// Run signer 3 anew, as the daemon does, with metrics_listen.
	f.c.StopSigner(3)
	cfg := f.c.Signers[3].Config
	cfg.Listen, cfg.MetricsListen = freeAddr(t), freeAddr(t)
	s, err := signer.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, err := http.Get("http://" + cfg.MetricsListen + "/healthz"); err == nil {
			t.Error("the metrics server still answers after Run returned")
		}
	}()
	base := "http://" + cfg.MetricsListen
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics_listen never ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := telemetrytest.Scrape(t, base+"/metrics")
	if v, _ := m.Value("frostmint_key_epochs_loaded"); v != 1 {
		t.Errorf("key_epochs_loaded = %v", v)
	}
	if _, ok := m.Value("process_open_fds"); !ok {
		t.Error("no process metrics")
	}
}

func TestConfigMetricsAndTracing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "signer.json")
	os.WriteFile(p, []byte(`{"metrics_listen": "127.0.0.1:9464", "tracing": {"otlp_endpoint": "http://127.0.0.1:4318", "sample_ratio": 0.5}}`), 0o600)
	c, err := signer.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsListen != "127.0.0.1:9464" || c.Tracing == nil || c.Tracing.OTLPEndpoint != "http://127.0.0.1:4318" || c.Tracing.SampleRatio != 0.5 {
		t.Fatalf("config %+v %+v", c, c.Tracing)
	}
	c.MetricsListen = "no port"
	c.Tracing = &telemetry.TracingConfig{OTLPEndpoint: "ftp://collector"}
	err = c.Validate()
	for _, want := range []string{"metrics_listen must be host:port", "otlp_endpoint must be an http(s) URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
}
