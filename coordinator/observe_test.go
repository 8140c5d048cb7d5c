package coordinator_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	"github.com/frostmint/frostmint/policy/audit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/evidence/oidctest"
	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

// signerMetrics scrapes signer id's /metrics.
func signerMetrics(t *testing.T, c *coordinatortest.Cluster, id uint16) telemetrytest.Metrics {
	t.Helper()
	srv := httptest.NewServer(c.Signers[id].Server.MetricsHandler())
	defer srv.Close()
	return telemetrytest.Scrape(t, srv.URL+"/metrics")
}

func TestMetricsAfterMints(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	cl := c.Client(t)
	const n = 4
	for i := 0; i < n; i++ {
		if _, err := cl.Mint(ctx(t), "https://api.example.com", []string{"read"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Mint(ctx(t), "https://api.example.com", []string{"payments:write"}, 0); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a scope the policy denies: %v", err)
	}

	m := telemetrytest.Scrape(t, c.Issuer+"/metrics")
	if v, _ := m.Value("frostmint_mints_total", "outcome", "minted", "reason", "ok"); v != n {
		t.Errorf("mints_total{minted,ok} = %v, want %d", v, n)
	}
	if v, _ := m.Value("frostmint_mints_total", "outcome", "refused", "reason", "policy_denied"); v != 1 {
		t.Errorf("mints_total{refused,policy_denied} = %v, want 1", v)
	}
	if got := m.Count("frostmint_mint_seconds"); got != n+1 {
		t.Errorf("mint_seconds count = %d, want %d", got, n+1)
	}
	for stage, min := range map[string]uint64{"authenticate": n + 1, "policy": n + 1, "fanout": n, "aggregate": n, "audit": n + 1} {
		if got := m.Count("frostmint_mint_stage_seconds", "stage", stage); got < min {
			t.Errorf("mint_stage_seconds{stage=%q} count = %d, want at least %d", stage, got, min)
		}
	}
	if got := m.Count("frostmint_mint_stage_seconds", "stage", "approval"); got != 0 {
		t.Errorf("approval stage observed %d times without an approval", got)
	}
	if got := m.Count("frostmint_signer_sign_seconds", "outcome", "ok"); got < 2*n {
		t.Errorf("signer_sign_seconds{ok} count = %d, want at least %d", got, 2*n)
	}
	if ids := m.Labels("frostmint_signer_healthy", "signer"); !slices.Equal(sorted(slices.Clone(ids)...), []string{"1", "2", "3"}) {
		t.Errorf("signer_healthy for signers %v", ids)
	}
	if v, _ := m.Value("frostmint_signer_healthy"); v != 3 {
		t.Errorf("healthy signers = %v, want 3", v)
	}
	if v, ok := m.Value("frostmint_commitment_pool_depth"); !ok || v <= 0 {
		t.Errorf("commitment_pool_depth = %v (%v), want pooled commitments", v, ok)
	}
	if v, _ := m.Value("frostmint_active_key_info", "kid", c.Coordinator.KeyID()); v != 1 {
		t.Errorf("active_key_info{kid=%s} = %v", c.Coordinator.KeyID(), v)
	}
	st, err := cl.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Value("frostmint_policy_info", "hash", st.GetPolicyHash()[:12]); v != 1 {
		t.Errorf("policy_info{hash=%.12s} = %v", st.GetPolicyHash(), v)
	}
	if _, ok := m.Value("go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
	for name := range m {
		if !strings.HasPrefix(name, "frostmint_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is outside frostmint_, go_ and process_", name)
		}
	}

	signed, judged := 0.0, uint64(0)
	nonces := 0.0
	for id := range c.Signers {
		sm := signerMetrics(t, c, id)
		v, _ := sm.Value("frostmint_signs_total", "outcome", "signed", "reason", "ok")
		signed += v
		judged += sm.Count("frostmint_sign_seconds")
		if v, _ := sm.Value("frostmint_key_epochs_loaded"); v != 1 {
			t.Errorf("signer %d: key_epochs_loaded = %v", id, v)
		}
		nv, _ := sm.Value("frostmint_nonces_outstanding")
		nonces += nv
		if _, ok := sm.Value("frostmint_policy_info"); !ok {
			t.Errorf("signer %d: no policy_info", id)
		}
	}
	// Each mint is signed by 2 of 3; a hedge may ask a third.
	if signed < 2*n || signed > 3*n {
		t.Errorf("signers signed %v times for %d mints", signed, n)
	}
	if judged < uint64(signed) {
		t.Errorf("sign_seconds counts %d, fewer than %v signs", judged, signed)
	}
	if nonces == 0 {
		t.Error("no signer reports outstanding nonces, yet the coordinator pools their commitments")
	}
}

func TestMetricsCountCheatersAndRetries(t *testing.T) {
	bad := &badShares{}
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Wrap: func(id uint16, s *signer.Server) signv1.SignerServiceServer {
		if id == 2 {
			bad.Server = s
			return bad
		}
		return s
	}})
	cl := c.Client(t)
	for i := 0; i < 4; i++ {
		if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if bad.calls.Load() == 0 {
		t.Skip("the misbehaving signer was never picked")
	}
	m := telemetrytest.Scrape(t, c.Issuer+"/metrics")
	if v, _ := m.Value("frostmint_cheaters_identified_total", "signer", "2"); v < 1 {
		t.Errorf("cheaters_identified_total{signer=2} = %v", v)
	}
	if v, _ := m.Value("frostmint_cheaters_identified_total", "signer", "1"); v != 0 {
		t.Errorf("signer 1 counted as a cheater: %v", v)
	}
	if v, _ := m.Value("frostmint_mint_retries_total", "reason", "invalid_share"); v < 1 {
		t.Errorf("mint_retries_total{invalid_share} = %v", v)
	}
	if v, _ := m.Value("frostmint_signer_healthy", "signer", "2"); v != 0 {
		t.Errorf("the quarantined signer counts as healthy")
	}
}

// brokenAuditor writes nothing.
type brokenAuditor struct{}

func (brokenAuditor) Append(audit.Record) error { return errors.New("disk full") }

// A mint whose audit record cannot be written is an error of the
// coordinator's (audit_unavailable), not a refusal: allowed or not.
func TestMetricsCountAuditFailures(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		CoordinatorOptions: []coordinator.Option{coordinator.WithAuditor(brokenAuditor{})}})
	cl := c.Client(t)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("a mint without its audit record: %v, want UNAVAILABLE", err)
	}
	if _, err := cl.Mint(ctx(t), "aud", []string{"payments:write"}, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("a refusal without its audit record: %v, want UNAVAILABLE", err)
	}
	m := telemetrytest.Scrape(t, c.Issuer+"/metrics")
	if v, _ := m.Value("frostmint_mints_total", "outcome", "error", "reason", "audit_unavailable"); v != 2 {
		t.Errorf("mints_total{error,audit_unavailable} = %v, want 2", v)
	}
	if v, _ := m.Value("frostmint_audit_append_failures_total"); v != 2 {
		t.Errorf("audit_append_failures_total = %v, want 2", v)
	}
}

// readyz GETs url and returns the status and the problems.
func readyz(t *testing.T, url string) (int, []string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, body.Problems
}

// waitReady polls url until its status is want, for at most 30 s (the
// machine may be busy).
func waitReady(t *testing.T, url string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, problems := readyz(t, url)
		if code == want {
			return problems
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %v, want %d", url, code, problems, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReadyzFollowsTheQuorum(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	url := c.Issuer + "/readyz"
	waitReady(t, url, http.StatusOK)
	if err := c.Coordinator.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// One signer down: two remain, enough.
	c.StopSigner(3)
	if _, err := c.Client(t).Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the health checks notice the stopped signer
	waitReady(t, url, http.StatusOK)
	// Two down: no quorum.
	c.StopSigner(2)
	problems := waitReady(t, url, http.StatusServiceUnavailable)
	if len(problems) != 1 || !strings.Contains(problems[0], "of the 2 signers needed are healthy") {
		t.Fatalf("problems %q", problems)
	}
	c.StartSigner(t, 2)
	waitReady(t, url, http.StatusOK)
	// Health stays plain.
	resp, err := http.Get(c.Issuer + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestReadyzWithoutKey(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 2, T: 2, NoKeys: true})
	code, problems := readyz(t, c.Issuer+"/readyz")
	if code != http.StatusServiceUnavailable || len(problems) != 1 || !strings.Contains(problems[0], "no active key") {
		t.Fatalf("coordinator without a key: %d %q", code, problems)
	}
	srv := httptest.NewServer(c.Signers[1].Server.MetricsHandler())
	defer srv.Close()
	code, problems = readyz(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || len(problems) != 1 || !strings.Contains(problems[0], "no key epoch") {
		t.Fatalf("signer without a key: %d %q", code, problems)
	}
	m := telemetrytest.Scrape(t, c.Issuer+"/metrics")
	if _, ok := m.Value("frostmint_active_key_info"); ok {
		t.Error("active_key_info without a key")
	}
}

func TestTraceAcrossCoordinatorAndSigners(t *testing.T) {
	ctp, cexp := telemetrytest.Tracer(t, "coordinator")
	stp, sexp := telemetrytest.Tracer(t, "signers")
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		CoordinatorOptions: []coordinator.Option{coordinator.WithTracerProvider(ctp)},
		SignerOptions:      []signer.Option{signer.WithTracerProvider(stp)},
	})
	// Background health checks and refills trace nothing by themselves.
	time.Sleep(600 * time.Millisecond)
	for _, s := range append(cexp.GetSpans(), sexp.GetSpans()...) {
		t.Errorf("span %q before any mint", s.Name)
	}
	resp, err := c.Client(t).Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	cspans := cexp.GetSpans()
	var mint *tracetest.SpanStub
	for i, s := range cspans {
		if s.Name == "coordinator.Mint" {
			mint = &cspans[i]
		}
	}
	if mint == nil {
		t.Fatalf("no coordinator.Mint span among %v", names(cspans))
	}
	if got := attr(mint.Attributes, "frostmint.request_id"); got != resp.GetRequestId() {
		t.Errorf("Mint span request id %q, response %q", got, resp.GetRequestId())
	}
	if got := attr(mint.Attributes, "frostmint.kid"); got != c.Coordinator.KeyID() {
		t.Errorf("Mint span kid %q", got)
	}
	tid := mint.SpanContext.TraceID()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range cspans {
		if s.SpanContext.TraceID() == tid {
			byID[s.SpanContext.SpanID()] = s
		}
	}
	for _, want := range []string{"coordinator.authenticate", "coordinator.policy", "coordinator.fanout", "coordinator.sign_share",
		"coordinator.aggregate", "coordinator.audit", "frostmint.sign.v1.SignerService/Sign"} {
		found := false
		for _, s := range byID {
			if s.Name == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s span in the mint's trace: %v", want, names(cspans))
		}
	}

	// The signers' spans are in the same trace, parented through the
	// W3C trace context sent over gRPC by the coordinator's client spans.
	sspans := sexp.GetSpans()
	signs := 0
	for _, s := range sspans {
		if s.Name != "signer.Sign" {
			continue
		}
		if s.SpanContext.TraceID() != tid {
			t.Errorf("signer.Sign in trace %s, the mint's is %s", s.SpanContext.TraceID(), tid)
			continue
		}
		signs++
		var server *tracetest.SpanStub
		for i, p := range sspans {
			if p.SpanContext.SpanID() == s.Parent.SpanID() {
				server = &sspans[i]
			}
		}
		if server == nil || server.SpanKind != trace.SpanKindServer || !server.Parent.IsRemote() {
			t.Errorf("signer.Sign's parent is not the gRPC server span of a remote call: %+v", server)
			continue
		}
		client, ok := byID[server.Parent.SpanID()]
		if !ok || client.SpanKind != trace.SpanKindClient {
			t.Errorf("the signer's server span's remote parent is not a coordinator client span")
			continue
		}
		if p, ok := byID[client.Parent.SpanID()]; !ok || p.Name != "coordinator.sign_share" {
			t.Errorf("the client span's parent is %q", p.Name)
		}
		if attr(s.Attributes, "frostmint.outcome") != "signed" || attr(s.Attributes, "frostmint.request_id") != resp.GetRequestId() {
			t.Errorf("signer.Sign attributes %v", s.Attributes)
		}
	}
	if signs < 2 {
		t.Fatalf("%d signer.Sign spans in the mint's trace, want at least 2: %v", signs, names(sspans))
	}

	// No span attribute or event holds the token or a piece of it.
	sig := resp.GetToken()[strings.LastIndexByte(resp.GetToken(), '.')+1:]
	for _, s := range append(cspans, sspans...) {
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); strings.Contains(v, sig) || strings.Contains(v, resp.GetToken()) {
				t.Errorf("span %s attribute %s holds the token", s.Name, kv.Key)
			}
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(kvs []attribute.KeyValue, k string) string {
	for _, kv := range kvs {
		if string(kv.Key) == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for the daemons' concurrent logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// encodings are the ways a secret could appear in a log line.
func encodings(b []byte) []string {
	return []string{
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), hex.EncodeToString(b),
	}
}

func TestMintLogsHoldNoSecrets(t *testing.T) {
	const oidcAud = "frostmint"
	iss, err := oidctest.Start("RS256")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	logs := &syncBuffer{}
	log, err := telemetry.NewLogger(logs, telemetry.LogJSON, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Logger: log,
		OIDC: []evidence.OIDCIssuer{iss.Config("github", oidcAud)}})

	// A certificate caller, with the request signed here, so that the
	// evidence signature is known.
	cert, err := tls.LoadX509KeyPair(c.Caller.Cert, c.Caller.Key)
	if err != nil {
		t.Fatal(err)
	}
	api := rawClient(t, c)
	certMint := func(scopes ...string) (*mintv1.MintResponse, []byte, error) {
		nonce := make([]byte, 32)
		for i := range nonce {
			nonce[i] = byte(i*7 + 1)
		}
		nonce[0] = byte(len(scopes) + len(scopes[0]))
		now := time.Now().Truncate(time.Second)
		er := evidence.Request{Audience: "https://api.example.com", Scopes: scopes, Nonce: nonce, Timestamp: now}
		sig, err := evidence.SignRequest(er, cert.PrivateKey.(crypto.Signer))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := api.Mint(ctx(t), &mintv1.MintRequest{Audience: er.Audience, Scopes: scopes, Nonce: nonce,
			RequestedAt: timestamppb.New(now), Evidence: &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{
				Chain: cert.Certificate, Signature: sig}}})
		return resp, sig, err
	}
	var secrets []string
	var ids []string
	resp, sig, err := certMint("read")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, resp.GetToken(), resp.GetToken()[strings.LastIndexByte(resp.GetToken(), '.')+1:])
	secrets = append(secrets, encodings(sig)...)
	ids = append(ids, resp.GetRequestId())
	// Refused by policy: the evidence signature is not logged either.
	if _, sig, err = certMint("payments:write"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("refused mint: %v", err)
	}
	secrets = append(secrets, encodings(sig)...)

	// An OIDC caller: the ID token is never logged, allowed or refused.
	ocl, err := client.DialOIDC(c.CoordAddr, c.Caller.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer ocl.Close()
	idTok, err := iss.GitHubToken(oidcAud, "frostmint/demo", "refs/heads/main", "deploy", "", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	oresp, err := ocl.MintOIDC(ctx(t), idTok, "https://api.example.com", []string{"read"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, oresp.GetRequestId())
	secrets = append(secrets, idTok, idTok[strings.LastIndexByte(idTok, '.')+1:], oresp.GetToken(),
		oresp.GetToken()[strings.LastIndexByte(oresp.GetToken(), '.')+1:])
	denied, err := iss.GitHubToken(oidcAud, "frostmint/demo", "refs/heads/main", "deploy", "", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ocl.MintOIDC(ctx(t), denied, "https://api.example.com", []string{"admin:everything"}, 0); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("refused OIDC mint: %v", err)
	}
	secrets = append(secrets, denied, denied[strings.LastIndexByte(denied, '.')+1:])
	// The same ID token again: reused evidence.
	if _, err := ocl.MintOIDC(ctx(t), idTok, "https://api.example.com", []string{"read"}, 0); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("reused ID token: %v", err)
	}

	out := logs.String()
	if out == "" {
		t.Fatal("no log")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds a secret (%.12s…)", s)
		}
	}
	// Every line is JSON; the mints' request ids are there, in the
	// coordinator's and the signers' lines.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("not a JSON log line: %s", line)
		}
	}
	for _, id := range ids {
		var coord, signers int
		for _, line := range strings.Split(out, "\n") {
			if !strings.Contains(line, `"request_id":"`+id+`"`) {
				continue
			}
			if strings.Contains(line, `"signer":`) {
				signers++
			} else {
				coord++
			}
		}
		if coord == 0 || signers < 2 {
			t.Errorf("request %s: %d coordinator and %d signer log lines", id, coord, signers)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}
