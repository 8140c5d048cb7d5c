package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

func TestLoggerFormatsAndRedaction(t *testing.T) {
	var b bytes.Buffer
	log, err := telemetry.NewLogger(&b, "", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("minted", "request_id", "r1", "token", "eyJ.secret.sig", "pin", "1234", "token_id", "jti-1",
		slog.Group("caller", "oidc_token", "eyJ.id.tok", "sub", "alice"))
	log.Debug("not shown")
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatalf("default format is not JSON: %q", b.String())
	}
	if strings.Contains(b.String(), "secret") || strings.Contains(b.String(), "1234") || strings.Contains(b.String(), "id.tok") {
		t.Errorf("a credential was logged: %s", b.String())
	}
	if line["request_id"] != "r1" || line["token_id"] != "jti-1" || line["token"] != "[redacted]" {
		t.Errorf("line %v", line)
	}
	if g, _ := line["caller"].(map[string]any); g["sub"] != "alice" {
		t.Errorf("group %v", line["caller"])
	}
	if strings.Contains(b.String(), "not shown") {
		t.Error("debug line at info level")
	}

	b.Reset()
	log, err = telemetry.NewLogger(&b, telemetry.LogText, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "passphrase", "hunter2")
	if !strings.Contains(b.String(), `msg=hello passphrase=[redacted]`) {
		t.Errorf("text line %q", b.String())
	}
	if _, err := telemetry.NewLogger(&b, "xml", slog.LevelInfo); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestTracingConfigValidate(t *testing.T) {
	var none *telemetry.TracingConfig
	if err := none.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  telemetry.TracingConfig
		want string
	}{
		{telemetry.TracingConfig{}, "set otlp_endpoint or file"},
		{telemetry.TracingConfig{OTLPEndpoint: "http://c:4318", File: "x"}, "only one"},
		{telemetry.TracingConfig{OTLPEndpoint: "grpc://c:4317"}, "http(s) URL"},
		{telemetry.TracingConfig{OTLPEndpoint: "https://user:pw@c/"}, "without credentials"},
		{telemetry.TracingConfig{File: "x", SampleRatio: 2}, "sample_ratio"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestTracingOff(t *testing.T) {
	tr, err := telemetry.NewTracing(context.Background(), nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || len(telemetry.GRPCServerOptions(tr, false)) != 0 || len(telemetry.GRPCDialOptions(tr)) != 0 {
		t.Fatal("tracing on without a config")
	}
	_, span := tr.Provider().Tracer("t").Start(context.Background(), "s")
	if span.IsRecording() {
		t.Error("a span recorded with tracing off")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTracingToFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spans.json")
	tr, err := telemetry.NewTracing(context.Background(), &telemetry.TracingConfig{File: p}, "frostmint-test")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() || len(telemetry.GRPCServerOptions(tr, true)) != 1 || len(telemetry.GRPCDialOptions(tr)) != 1 {
		t.Fatal("tracing off with a config")
	}
	_, span := tr.Provider().Tracer("t").Start(context.Background(), "unit.span")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Name":"unit.span"`) || !strings.Contains(string(b), "frostmint-test") {
		t.Fatalf("spans file: %s", b)
	}
}

func TestTracingToOTLP(t *testing.T) {
	var posts atomic.Int32
	var ctype atomic.Value
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
			ctype.Store(r.Header.Get("Content-Type"))
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	tr, err := telemetry.NewTracing(context.Background(), &telemetry.TracingConfig{OTLPEndpoint: collector.URL}, "frostmint-test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("t").Start(context.Background(), "unit.span")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 || ctype.Load() != "application/x-protobuf" {
		t.Fatalf("collector got %d posts (%v)", posts.Load(), ctype.Load())
	}
}

func TestSamplerDropsClientRoots(t *testing.T) {
	tp, exp := telemetrytest.Tracer(t, "s")
	tr := tp.Tracer("t")
	_, client := tr.Start(context.Background(), "background.call", trace.WithSpanKind(trace.SpanKindClient))
	client.End()
	ctx, root := tr.Start(context.Background(), "request")
	_, child := tr.Start(ctx, "call", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	root.End()
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	if fmt.Sprint(names) != "[call request]" {
		t.Fatalf("spans %v", names)
	}
}

func TestHealthHandlers(t *testing.T) {
	var ready atomic.Bool
	mux := http.NewServeMux()
	telemetry.HandleHealth(mux, func(context.Context) error {
		if ready.Load() {
			return nil
		}
		return errors.Join(fmt.Errorf("%w: no key", telemetry.ErrNotReady), fmt.Errorf("%w: no quorum", telemetry.ErrNotReady))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := get("/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz %d %v", code, body)
	}
	if code, body := get("/readyz"); code != 503 || fmt.Sprint(body["problems"]) != "[not ready: no key not ready: no quorum]" {
		t.Fatalf("readyz %d %v", code, body)
	}
	ready.Store(true)
	if code, body := get("/readyz"); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz %d %v", code, body)
	}
}

func TestCode(t *testing.T) {
	for in, want := range map[string]string{"policy_denied": "policy_denied", "": "other", "spiffe://x/y": "other",
		"Deny": "other", strings.Repeat("a", 49): "other"} {
		if got := telemetry.Code(in); got != want {
			t.Errorf("Code(%q) = %q, want %q", in, got, want)
		}
	}
}
