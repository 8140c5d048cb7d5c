package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

func TestRouting(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	// Each route's upstream has a path of its own, so the upstream sees
	// which route a request took.
	via := func(name string) string { return up.URL + "/via/" + name }
	cfg.Routes = []RouteConfig{
		{Name: "api-read", PathPrefix: "/api/", Methods: []string{"GET", "HEAD"}, Upstream: via("api-read"), Scopes: []string{"read"}},
		{Name: "api-write", PathPrefix: "/api/", Methods: []string{"POST"}, Upstream: via("api-write"), Scopes: []string{"write"}},
		{Name: "admin", PathPrefix: "/api/admin", Upstream: via("admin"), Scopes: []string{"read"}},
		{Name: "exact", PathPrefix: "/status", Upstream: via("exact"), Scopes: []string{"read"}},
	}
	gw := start(t, cfg)

	for _, tc := range []struct {
		method, path string
		status       int
		code         string // error code, or the route taken
	}{
		{"GET", "/api/things", 200, "api-read"},
		{"HEAD", "/api/things", 200, "api-read"},
		{"POST", "/api/things", 200, "api-write"},
		{"DELETE", "/api/things", 404, "no_route"},
		{"GET", "/api/admin", 200, "admin"},
		{"DELETE", "/api/admin/users/1", 200, "admin"}, // longest prefix, any method
		{"GET", "/api/administrator", 200, "api-read"}, // segments: not "admin"
		{"GET", "/status", 200, "exact"},
		{"GET", "/status/deep", 200, "exact"},
		{"GET", "/statusx", 404, "no_route"},
		{"GET", "/api", 404, "no_route"}, // "/api/" needs the slash
		{"GET", "/", 404, "no_route"},
		{"GET", "/elsewhere", 404, "no_route"},
		{"GET", "/api/x/../admin", 400, "bad_path"},
		{"GET", "/api/x/%2e%2e/admin", 400, "bad_path"},
		{"GET", "//api/admin", 400, "bad_path"},
		{"GET", "/api//admin", 400, "bad_path"},
		{"GET", "/api/admin;x=1", 400, "bad_path"},
		{"GET", "/api/x%5c..%5cadmin", 400, "bad_path"},
		{"GET", "/api/./admin", 400, "bad_path"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			n := up.count()
			req, err := http.NewRequest(tc.method, gw.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Sent exactly as written, in absolute form (which a path
			// starting with "//" needs).
			req.URL.Opaque = "//" + gw.addr + tc.path
			req.Header.Set("Authorization", "Bearer "+mint(t))
			resp, body := send(t, gw.client, req)
			if tc.status != 200 {
				checkStatus(t, resp, body, tc.status, tc.code)
				if up.count() != n {
					t.Fatal("a refused request reached the upstream")
				}
				return
			}
			checkStatus(t, resp, body, 200, "")
			got := up.last(t)
			if want := "/via/" + tc.code + tc.path; got.Path != want {
				t.Fatalf("upstream path %q, want %q", got.Path, want)
			}
			if got.Method != tc.method {
				t.Fatalf("upstream method %s, want %s", got.Method, tc.method)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.Routes = []RouteConfig{
		{Name: "read", PathPrefix: "/read", Scopes: []string{"read"}},
		{Name: "admin", PathPrefix: "/admin", Scopes: []string{"admin", "read"}},
		{Name: "other-aud", PathPrefix: "/other", Audience: "https://other.frostmint.test"},
	}
	gw := start(t, cfg)

	used := mint(t)
	resp, body := gw.do(t, "GET", "/read", used, nil)
	checkStatus(t, resp, body, 200, "")

	for _, tc := range []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"no token", "/read", "", 401, "missing_token"},
		{"basic auth", "/read", "Basic dXNlcjpwYXNz", 401, "missing_token"},
		{"garbage", "/read", "Bearer not.a.token", 401, "malformed"},
		{"replayed", "/read", "Bearer " + used, 401, "replayed"},
		{"expired", "/read", "Bearer " + mint(t, func(c *token.Claims) {
			c.IssuedAt -= 600
			c.NotBefore -= 600
			c.Expiry -= 600
		}), 401, "expired"},
		{"unknown key", "/read", "Bearer " + mintWith(t, testKey("stranger")), 401, "unknown_key"},
		{"untrusted issuer", "/read", "Bearer " + mint(t, func(c *token.Claims) { c.Issuer = "https://evil.test" }), 401, "untrusted_issuer"},
		{"wrong audience", "/read", "Bearer " + mint(t, func(c *token.Claims) { c.Audience = "https://other.test" }), 401, "wrong_audience"},
		{"route audience", "/other", "Bearer " + mint(t), 401, "wrong_audience"},
		{"missing scope", "/admin", "Bearer " + mint(t), 403, "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := up.count()
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			resp, body := gw.do(t, "GET", tc.path, "", nil, hdr...)
			checkStatus(t, resp, body, tc.status, tc.code)
			if up.count() != n {
				t.Fatal("a refused request reached the upstream")
			}
			if resp.Header.Get("X-Request-Id") == "" || !bytes.Contains(body, []byte(resp.Header.Get("X-Request-Id"))) {
				t.Errorf("no request id in the refusal: %s", body)
			}
			if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if resp.StatusCode == 403 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="admin read"`) {
				t.Errorf("403 challenge %q does not name the route's scopes", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	// A token for the other audience passes there.
	resp, body = gw.do(t, "GET", "/other", mint(t, func(c *token.Claims) { c.Audience = "https://other.frostmint.test" }), nil)
	checkStatus(t, resp, body, 200, "")
}

func TestReplayModes(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.Routes = []RouteConfig{
		{Name: "once", PathPrefix: "/once", Scopes: []string{"read"}},
		{Name: "again", PathPrefix: "/again", Scopes: []string{"read"}, Replay: ReplayReusable},
	}
	gw := start(t, cfg)

	tok := mint(t)
	for i := range 3 {
		resp, body := gw.do(t, "GET", "/again", tok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("reusable route, use %d: status %d %s", i+1, resp.StatusCode, body)
		}
	}
	once := mint(t)
	resp, body := gw.do(t, "GET", "/once", once, nil)
	checkStatus(t, resp, body, 200, "")
	resp, body = gw.do(t, "GET", "/once", once, nil)
	checkStatus(t, resp, body, 401, "replayed")
}

func TestForwardedHeaders(t *testing.T) {
	up := newRecorder(t)
	gw := start(t, baseConfig(t, up.URL+"/base"))

	c := claims()
	tok := mint(t, func(x *token.Claims) { *x = c })
	resp, body := gw.do(t, "POST", "/a%2Fb/c?q=1&r=2", tok, []byte("payload"),
		"X-Frostmint-Subject", "root",
		"x-frostmint-scope", "admin",
		"X-FROSTMINT-TOKEN-ID", "forged",
		"X_Frostmint_Client_Id", "forged-underscore",
		"X-Frostmint-Anything", "forged",
		"X-Request-Id", "client.req-42_x",
		"X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=6.6.6.6",
		"Connection", "X-Frostmint-Subject", // hop-by-hop trick: must not drop ours
		"X-Keep", "kept",
	)
	checkStatus(t, resp, body, 200, "")
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	got := up.last(t)

	want := map[string]string{
		"X-Frostmint-Subject":   c.Subject,
		"X-Frostmint-Client-Id": c.ClientID,
		"X-Frostmint-Issuer":    c.Issuer,
		"X-Frostmint-Scope":     c.Scope,
		"X-Frostmint-Token-Id":  c.ID,
		"X-Frostmint-Expiry":    strconv.FormatInt(c.Expiry, 10),
		"X-Request-Id":          "client.req-42_x",
		"X-Forwarded-For":       "127.0.0.1",
		"X-Forwarded-Proto":     "http",
		"X-Forwarded-Host":      gw.addr,
		"X-Keep":                "kept",
	}
	for k, v := range want {
		if vs := got.Header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("upstream header %s = %q, want [%q]", k, vs, v)
		}
	}
	for k := range got.Header {
		if isFrostmintHeader(k) {
			if _, ok := want[http.CanonicalHeaderKey(k)]; !ok {
				t.Errorf("client header %s reached the upstream", k)
			}
		}
	}
	for _, k := range []string{"Authorization", "Forwarded"} {
		if v, ok := got.Header[k]; ok {
			t.Errorf("upstream got %s: %q", k, v)
		}
	}
	if got.RawPath != "/base/a%2Fb/c" || got.Method != "POST" || string(got.Body) != "payload" {
		t.Errorf("upstream got %s %s body %q", got.Method, got.RawPath, got.Body)
	}
	if resp.Header.Values("X-Request-Id")[0] != "client.req-42_x" || len(resp.Header.Values("X-Request-Id")) != 1 {
		t.Errorf("response X-Request-Id %q", resp.Header.Values("X-Request-Id"))
	}

	// An insane request id is replaced, the same everywhere.
	for _, bad := range []string{"has space", strings.Repeat("a", 129), "quote\"", "semi;colon"} {
		resp, body = gw.do(t, "GET", "/x", mint(t), nil, "X-Request-Id", bad)
		checkStatus(t, resp, body, 200, "")
		id := resp.Header.Get("X-Request-Id")
		if id == "" || id == bad || up.last(t).Header.Get("X-Request-Id") != id {
			t.Errorf("request id %q: response has %q, upstream %q", bad, id, up.last(t).Header.Get("X-Request-Id"))
		}
	}
	// Two ids: replaced too.
	resp, _ = gw.do(t, "GET", "/x", mint(t), nil, "X-Request-Id", "one", "X-Request-Id", "two")
	if id := resp.Header.Get("X-Request-Id"); id == "one" || id == "two" || id == "" {
		t.Errorf("two request ids: got %q", id)
	}
}

func TestTrustForwardedProto(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.TrustForwardedProto = true
	gw := start(t, cfg)
	resp, body := gw.do(t, "GET", "/x", mint(t), nil, "X-Forwarded-Proto", "https")
	checkStatus(t, resp, body, 200, "")
	if p := up.last(t).Header.Get("X-Forwarded-Proto"); p != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", p)
	}
	resp, body = gw.do(t, "GET", "/x", mint(t), nil, "X-Forwarded-Proto", "gopher")
	checkStatus(t, resp, body, 200, "")
	if p := up.last(t).Header.Get("X-Forwarded-Proto"); p != "http" {
		t.Errorf("X-Forwarded-Proto %q, want http", p)
	}
}

func TestUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	gw := start(t, baseConfig(t, "http://"+addr))
	resp, body := gw.do(t, "GET", "/x", mint(t), nil)
	checkStatus(t, resp, body, http.StatusBadGateway, "bad_gateway")
	_, port, _ := net.SplitHostPort(addr)
	for _, leak := range []string{port, "refused", "dial", "127.0.0.1"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("502 body leaks %q: %s", leak, body)
		}
	}
}

func TestRequestBinding(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.MaxBindingBody = 1024
	cfg.Routes = []RouteConfig{
		{Name: "bound", PathPrefix: "/pay", Scopes: []string{"write"}, RequireBinding: true},
		{Name: "open", PathPrefix: "/open", Scopes: []string{"read"}},
	}
	gw := start(t, cfg)

	body := []byte(`{"amount":100}`)
	bound := func(method, path string, b []byte) string {
		bd, err := binding.New(method, gw.addr, "http", path, b, b != nil)
		if err != nil {
			t.Fatal(err)
		}
		return mint(t, func(c *token.Claims) { c.Binding = &bd })
	}

	t.Run("match", func(t *testing.T) {
		resp, rb := gw.do(t, "POST", "/pay/1", bound("POST", "/pay/1", body), body)
		checkStatus(t, resp, rb, 200, "")
		if got := up.last(t); string(got.Body) != string(body) || got.Path != "/pay/1" {
			t.Fatalf("upstream got %s body %q", got.Path, got.Body)
		}
	})
	t.Run("bound without body", func(t *testing.T) {
		resp, rb := gw.do(t, "POST", "/pay/1", bound("POST", "/pay/1", nil), body)
		checkStatus(t, resp, rb, 200, "")
		if got := up.last(t); string(got.Body) != string(body) {
			t.Fatalf("upstream got body %q", got.Body)
		}
	})
	for _, tc := range []struct {
		name, method, path string
		tok                string
		body               []byte
		status             int
		code               string
	}{
		{"other path", "POST", "/pay/2", bound("POST", "/pay/1", body), body, 401, "binding_mismatch"},
		{"other method", "PUT", "/pay/1", bound("POST", "/pay/1", body), body, 401, "binding_mismatch"},
		{"other body", "POST", "/pay/1", bound("POST", "/pay/1", body), []byte(`{"amount":1000}`), 401, "binding_mismatch"},
		{"unbound token", "POST", "/pay/1", mint(t), body, 401, "binding_required"},
		{"body too large", "POST", "/pay/1", bound("POST", "/pay/1", bytes.Repeat([]byte("x"), 2048)), bytes.Repeat([]byte("x"), 2048), 413, "body_too_large"},
		{"bound token elsewhere", "POST", "/open", bound("POST", "/pay/1", body), body, 401, "binding_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := up.count()
			resp, rb := gw.do(t, tc.method, tc.path, tc.tok, tc.body)
			checkStatus(t, resp, rb, tc.status, tc.code)
			if up.count() != n {
				t.Fatal("a refused request reached the upstream")
			}
		})
	}
}

func TestAuditLog(t *testing.T) {
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.AuditLog = filepath.Join(t.TempDir(), "gateway.audit")
	cfg.Routes = []RouteConfig{{Name: "api", PathPrefix: "/api", Scopes: []string{"read"}}}
	gw := start(t, cfg)

	tok := mint(t)
	for _, tc := range []struct {
		path, tok string
		status    int
	}{
		{"/api/x", tok, 200},
		{"/api/x", tok, 401},
		{"/nowhere", tok, 404},
		{"/api/../x", tok, 400},
	} {
		resp, body := gw.do(t, "GET", tc.path, tc.tok, nil, "X-Request-Id", "audit-"+strconv.Itoa(tc.status))
		checkStatus(t, resp, body, tc.status, "")
	}
	recs, err := audit.ReadAll(cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ id, decision, code, route string }{
		{"audit-200", audit.Allow, "", "api"},
		{"audit-401", audit.Deny, "replayed", "api"},
		{"audit-404", audit.Deny, "no_route", ""},
		{"audit-400", audit.Deny, "bad_path", ""},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.RequestID != w.id || r.Decision != w.decision || r.Code != w.code || r.Route != w.route {
			t.Errorf("record %d: %s %s %q route %q, want %+v", i, r.RequestID, r.Decision, r.Code, r.Route, w)
		}
	}
	if recs[0].JTI == "" || recs[0].Subject == "" {
		t.Errorf("allow record without jti or subject: %+v", recs[0])
	}

	// A log that cannot be written refuses every request, allowed or not.
	if err := gw.g.audit.Close(); err != nil {
		t.Fatal(err)
	}
	n := up.count()
	resp, body := gw.do(t, "GET", "/api/x", mint(t), nil)
	checkStatus(t, resp, body, 503, "audit_unavailable")
	resp, body = gw.do(t, "GET", "/nowhere", mint(t), nil)
	checkStatus(t, resp, body, 503, "audit_unavailable")
	if up.count() != n {
		t.Fatal("an unaudited request reached the upstream")
	}
	if _, err := audit.Verify(cfg.AuditLog); err != nil {
		t.Fatalf("audit log: %v", err)
	}
}

func TestReadiness(t *testing.T) {
	up := newRecorder(t)
	// Keys from a URL where nothing answers: not ready.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String() + "/jwks.json"
	l.Close()
	cfg := baseConfig(t, up.URL)
	cfg.Issuers = append(cfg.Issuers, IssuerConfig{Issuer: "https://down.frostmint.test", JWKS: deadURL})
	gw := start(t, cfg)

	get := func(path string) (int, string) {
		resp, body := send(t, gw.client, mustRequest(t, "GET", gw.admin+path))
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, "down.frostmint.test") || strings.Contains(body, l.Addr().String()) {
		t.Fatalf("/readyz with an issuer down: %d %s", code, body)
	}
	if err := gw.g.Ready(t.Context()); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready: %v", err)
	}
	// The other issuer's tokens still pass.
	resp, rb := gw.do(t, "GET", "/x", mint(t), nil)
	checkStatus(t, resp, rb, 200, "")
}

func mustRequest(t testing.TB, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestGracefulShutdown: a request in flight when the gateway is told to
// stop completes; the gateway is not ready meanwhile and takes no new
// connection; Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := newHandlerUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte("finished"))
	}))
	cfg := baseConfig(t, slow.URL)
	gw := start(t, cfg)

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	tok := mint(t)
	go func() {
		req, _ := http.NewRequest("GET", gw.url+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := gw.client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		res <- result{resp.StatusCode, b.String(), err}
	}()
	<-entered
	gw.stop()

	// Not ready, and no new connections, while it drains.
	waitFor(t, 5*time.Second, func() bool {
		resp, err := gw.client.Get(gw.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	waitFor(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", gw.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-gw.done:
		t.Fatal("Serve returned with a request in flight")
	default:
	}
	close(release)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case err := <-gw.done:
		gw.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the last request")
	}
}

// TestShutdownDeadline: what is still running at the shutdown deadline is
// cut, and Serve returns.
func TestShutdownDeadline(t *testing.T) {
	entered := make(chan struct{})
	hang := newHandlerUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	}))
	cfg := baseConfig(t, hang.URL)
	cfg.ShutdownTimeout = Duration(300 * time.Millisecond)
	gw := start(t, cfg)
	errc := make(chan error, 1)
	tok := mint(t)
	go func() {
		req, _ := http.NewRequest("GET", gw.url+"/hang", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := gw.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	began := time.Now()
	gw.stop()
	select {
	case err := <-gw.done:
		gw.done <- err
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("Serve took %s to return", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging request was not cut")
	}
}

func newHandlerUpstream(t testing.TB, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLS: with tls, the gateway serves HTTPS, HTTP/2 included, and tells
// the upstream the client used https.
func TestTLS(t *testing.T) {
	ca, err := mtls.NewDevCA("gateway test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := ca.Issue(dir, "gateway", mtls.Leaf{ID: "spiffe://frostmint.test/gateway", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.TLS = &TLSFiles{Cert: files.Cert, Key: files.Key}
	gw := start(t, cfg)

	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+gw.addr+"/secure", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t))
	resp, body := send(t, &http.Client{Transport: tr}, req)
	checkStatus(t, resp, body, 200, "")
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if p := up.last(t).Header.Get("X-Forwarded-Proto"); p != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", p)
	}
	// Cleartext to a TLS listener gets nowhere.
	if resp, err := gw.client.Get(gw.url + "/secure"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("cleartext request to the TLS listener: %d", resp.StatusCode)
		}
	}
}
