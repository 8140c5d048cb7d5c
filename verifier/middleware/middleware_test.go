package middleware_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/token"
)

const otherAudience = "https://other.example"

// seen is what the protected handler saw, as it answers it.
type seen struct {
	Subject, ClientID, Audience, TokenID, Route, RequestID string
	Scopes                                                 []string
	Expiry                                                 int64
	Body                                                   string
}

// protected is a handler that answers what it saw, and counts its calls.
func protected(calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, ok := middleware.FromContext(r.Context())
		if !ok {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(seen{
			Subject: id.Subject, ClientID: id.ClientID, Audience: id.Audience, TokenID: id.TokenID,
			Route: id.Route, RequestID: id.RequestID, Scopes: id.Scopes, Expiry: id.Expiry.Unix(),
			Body: string(body),
		})
	})
}

// maxBody is the MaxBindingBody of the test server.
const maxBody = 64

// testServer serves the routes of the HTTP tests, protected by m, on a
// ServeMux.
func testServer(t *testing.T, m *middleware.Middleware) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	calls := new(atomic.Int64)
	h := protected(calls)
	mux := http.NewServeMux()
	mux.Handle("GET /read", m.Require(middleware.Route{Name: "read", Scopes: []string{"read"}})(h))
	mux.Handle("GET /admin", m.Require(middleware.Route{Scopes: []string{"admin", "read"}})(h))
	mux.Handle("GET /other", m.Require(middleware.Route{Audience: otherAudience, Scopes: []string{"read"}})(h))
	mux.Handle("GET /reusable", m.Require(middleware.Route{Scopes: []string{"read"}, Replay: verifier.Reusable})(h))
	mux.Handle("/bound/", m.Require(middleware.Route{Name: "bound", RequireBinding: true})(h))
	mux.Handle("POST /upload", m.Handler(middleware.Route{Name: "upload", Scopes: []string{"write"}}, h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, calls
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// boundTo returns a token bound to method, the test server's authority,
// path and, if body is not nil, body.
func boundTo(method, path string, body *string, mutate ...func(*token.Claims)) func(t testing.TB, host string) http.Header {
	return func(t testing.TB, host string) http.Header {
		b := &binding.Binding{Method: method, Authority: host, Path: path}
		if body != nil {
			b.BodySHA256 = binding.BodyHash([]byte(*body))
		}
		return bearer(good(t, append(mutate, func(c *token.Claims) { c.Binding = b })...))
	}
}

func ptr(s string) *string { return &s }

func withToken(mutate ...func(*token.Claims)) func(t testing.TB, host string) http.Header {
	return func(t testing.TB, host string) http.Header { return bearer(good(t, mutate...)) }
}

func invalid(code verifier.Code) string {
	return `Bearer realm="frostmint", error="invalid_token", error_description="` + string(code) + `"`
}

type httpCase struct {
	name         string
	method, path string
	body         string
	header       func(t testing.TB, host string) http.Header
	uses         int // requests made with the same header; the last is checked (default 1)
	status       int
	code         string // "" means served
	challenge    string // WWW-Authenticate
	route        string // the Identity's Route, when served
}

func httpCases() []httpCase {
	upload := "amount=42&to=bob"
	return []httpCase{
		// Served.
		{name: "valid", path: "/read", header: withToken(), status: 200, route: "read"},
		{name: "scheme lower case", path: "/read", status: 200, route: "read",
			header: func(t testing.TB, _ string) http.Header { return http.Header{"Authorization": {"bearer " + good(t)}} }},
		{name: "scheme upper case, two spaces", path: "/read", status: 200, route: "read",
			header: func(t testing.TB, _ string) http.Header { return http.Header{"Authorization": {"BEARER  " + good(t)}} }},
		{name: "route name defaults to the pattern", path: "/admin", status: 200, route: "GET /admin",
			header: withToken(func(c *token.Claims) { c.Scope = "admin read" })},
		{name: "route audience", path: "/other", status: 200, route: "GET /other",
			header: withToken(func(c *token.Claims) { c.Audience = otherAudience })},
		{name: "reusable route accepts twice", path: "/reusable", uses: 2, status: 200, route: "GET /reusable", header: withToken()},
		{name: "bound token", path: "/bound/x", status: 200, route: "bound", header: boundTo("GET", "/bound/x", nil)},
		{name: "bound token on a route without RequireBinding", path: "/read", status: 200, route: "read", header: boundTo("GET", "/read", nil)},
		{name: "body-bound token, body restored", method: "POST", path: "/upload", body: upload, status: 200, route: "upload",
			header: boundTo("POST", "/upload", &upload)},
		{name: "body-bound empty body", method: "POST", path: "/upload", status: 200, route: "upload",
			header: boundTo("POST", "/upload", ptr(""))},
		{name: "body at the limit", method: "POST", path: "/upload", body: strings.Repeat("x", maxBody), status: 200, route: "upload",
			header: boundTo("POST", "/upload", ptr(strings.Repeat("x", maxBody)))},

		// missing_token: no bearer credential at all.
		{name: "no header", path: "/read", status: 401, code: "missing_token", challenge: `Bearer realm="frostmint"`},
		{name: "empty header", path: "/read", status: 401, code: "missing_token", challenge: `Bearer realm="frostmint"`,
			header: func(testing.TB, string) http.Header { return http.Header{"Authorization": {""}} }},
		{name: "basic scheme", path: "/read", status: 401, code: "missing_token", challenge: `Bearer realm="frostmint"`,
			header: func(testing.TB, string) http.Header { return http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}} }},
		{name: "token in the query string", status: 401, code: "missing_token", challenge: `Bearer realm="frostmint"`,
			header: func(t testing.TB, _ string) http.Header {
				return http.Header{"X-Path": {"/read?access_token=" + url.QueryEscape(good(t))}}
			}},
		{name: "token in a cookie", path: "/read", status: 401, code: "missing_token", challenge: `Bearer realm="frostmint"`,
			header: func(t testing.TB, _ string) http.Header { return http.Header{"Cookie": {"access_token=" + good(t)}} }},

		// malformed
		{name: "two Authorization headers", path: "/read", status: 401, code: "malformed", challenge: invalid(verifier.CodeMalformed),
			header: func(t testing.TB, _ string) http.Header {
				return http.Header{"Authorization": {"Bearer " + good(t), "Bearer " + good(t)}}
			}},
		{name: "Bearer without token", path: "/read", status: 401, code: "malformed", challenge: invalid(verifier.CodeMalformed),
			header: func(testing.TB, string) http.Header { return http.Header{"Authorization": {"Bearer"}} }},
		{name: "token with a space", path: "/read", status: 401, code: "malformed", challenge: invalid(verifier.CodeMalformed),
			header: func(t testing.TB, _ string) http.Header { return http.Header{"Authorization": {"Bearer a b"}} }},
		{name: "not a JWS", path: "/read", status: 401, code: "malformed", challenge: invalid(verifier.CodeMalformed),
			header: func(testing.TB, string) http.Header { return bearer("abc") }},

		// The verifier's refusals.
		{name: "unknown key", path: "/read", status: 401, code: "unknown_key", challenge: invalid(verifier.CodeUnknownKey),
			header: func(t testing.TB, _ string) http.Header { return bearer(mint(t, testKey("evil"), claims())) }},
		{name: "expired", path: "/read", status: 401, code: "expired", challenge: invalid(verifier.CodeExpired),
			header: withToken(func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-600, t0-600, t0-60 })},
		{name: "wrong audience", path: "/read", status: 401, code: "wrong_audience", challenge: invalid(verifier.CodeWrongAudience),
			header: withToken(func(c *token.Claims) { c.Audience = otherAudience })},
		{name: "wrong audience for the route", path: "/other", status: 401, code: "wrong_audience", challenge: invalid(verifier.CodeWrongAudience),
			header: withToken()},
		{name: "insufficient scope", path: "/admin", status: 403, code: "insufficient_scope",
			challenge: `Bearer realm="frostmint", error="insufficient_scope", scope="admin read"`, header: withToken()},
		{name: "replayed", path: "/read", uses: 2, status: 401, code: "replayed", challenge: invalid(verifier.CodeReplayed), header: withToken()},
		{name: "binding required", path: "/bound/x", status: 401, code: "binding_required", challenge: invalid(verifier.CodeBindingRequired),
			header: withToken()},
		{name: "bound to another path", path: "/bound/y", status: 401, code: "binding_mismatch", challenge: invalid(verifier.CodeBindingMismatch),
			header: boundTo("GET", "/bound/x", nil)},
		{name: "bound to another method", method: "POST", path: "/bound/x", status: 401, code: "binding_mismatch", challenge: invalid(verifier.CodeBindingMismatch),
			header: boundTo("GET", "/bound/x", nil)},
		{name: "bound to another authority", path: "/read", status: 401, code: "binding_mismatch", challenge: invalid(verifier.CodeBindingMismatch),
			header: func(t testing.TB, _ string) http.Header { return boundTo("GET", "/read", nil)(t, "api.example") }},
		{name: "bound to another body", method: "POST", path: "/upload", body: upload + "0", status: 401, code: "binding_mismatch",
			challenge: invalid(verifier.CodeBindingMismatch), header: boundTo("POST", "/upload", &upload)},
		{name: "body too large", method: "POST", path: "/upload", body: strings.Repeat("x", maxBody+1), status: 413, code: "body_too_large",
			header: boundTo("POST", "/upload", ptr(strings.Repeat("x", maxBody+1)))},
	}
}

func TestHTTP(t *testing.T) {
	m := newMiddleware(t, middleware.Options{MaxBindingBody: maxBody})
	srv, calls := testServer(t, m)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range httpCases() {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = "GET"
			}
			var h http.Header
			if tc.header != nil {
				h = tc.header(t, host)
			}
			if p := h.Get("X-Path"); p != "" {
				path = p
				h.Del("X-Path")
			}
			uses := max(tc.uses, 1)
			var (
				resp *http.Response
				body []byte
			)
			before := calls.Load()
			for range uses {
				req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body == "" {
					req.Body, req.ContentLength = http.NoBody, 0
				}
				for k, v := range h {
					req.Header[k] = v
				}
				resp, err = srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !middleware.ValidRequestID(resp.Header.Get("X-Request-Id")) {
					t.Errorf("X-Request-Id %q", resp.Header.Get("X-Request-Id"))
				}
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), tc.challenge; got != want {
				t.Errorf("WWW-Authenticate: %s\nwant %s", got, want)
			}
			if tc.code == "" {
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
				}
				if n := calls.Load() - before; n != int64(uses) {
					t.Errorf("handler called %d times, want %d", n, uses)
				}
				var s seen
				if err := json.Unmarshal(body, &s); err != nil {
					t.Fatalf("%s: %v", body, err)
				}
				if s.Subject != "alice" || s.ClientID != "client-1" || s.TokenID == "" || s.Expiry != t0+300 || s.Route != tc.route ||
					s.RequestID != resp.Header.Get("X-Request-Id") || len(s.Scopes) == 0 {
					t.Errorf("handler saw %+v", s)
				}
				if s.Body != tc.body {
					t.Errorf("handler read body %q, want %q", s.Body, tc.body)
				}
				return
			}
			if n := calls.Load() - before; n != int64(uses-1) {
				t.Errorf("handler called %d times, want %d", n, uses-1)
			}
			checkRejection(t, resp, body, tc.status, tc.code)
			if ra := resp.Header.Get("Retry-After"); ra != "" {
				t.Errorf("Retry-After %q", ra)
			}
		})
	}
}

// TestIdentity checks the Identity in full, and the accessors.
func TestIdentity(t *testing.T) {
	if _, ok := middleware.FromContext(t.Context()); ok {
		t.Fatal("FromContext of a bare context reports an identity")
	}
	m := newMiddleware(t, middleware.Options{})
	c := claims()
	c.Scope = "read write admin"
	tok := mint(t, testKey("a1"), c)
	r := httptest.NewRequest("GET", "/read", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("X-Request-Id", "req-1")
	r2, id, err := m.Authenticate(r, middleware.Route{Name: "read", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	fromCtx, ok := middleware.FromContext(r2.Context())
	if !ok || fromCtx != id {
		t.Fatalf("FromContext = %v, %v; Authenticate returned %v", fromCtx, ok, id)
	}
	want := middleware.Identity{
		Subject: "alice", ClientID: "client-1", Audience: audience, TokenID: c.ID,
		Scopes: []string{"read", "write", "admin"}, Expiry: time.Unix(t0+300, 0),
		RequestID: "req-1", Route: "read",
	}
	got := *id
	if got.Claims == nil || *got.Claims != c {
		t.Errorf("Claims = %+v, want %+v", got.Claims, c)
	}
	got.Claims = nil
	if !slices.Equal(got.Scopes, want.Scopes) || !got.Expiry.Equal(want.Expiry) {
		t.Errorf("Identity = %+v, want %+v", got, want)
	}
	if got.Subject != want.Subject || got.ClientID != want.ClientID || got.Audience != want.Audience ||
		got.TokenID != want.TokenID || got.RequestID != want.RequestID || got.Route != want.Route {
		t.Errorf("Identity = %+v, want %+v", got, want)
	}
	if rid := middleware.RequestIDFromContext(r2.Context()); rid != "req-1" {
		t.Errorf("RequestIDFromContext = %q", rid)
	}
}

// TestAuthenticateErrors checks the errors the gateway sees, with
// errors.Is and errors.As.
func TestAuthenticateErrors(t *testing.T) {
	m := newMiddleware(t, middleware.Options{})
	read := middleware.Route{Scopes: []string{"read"}}
	for _, tc := range []struct {
		name    string
		auth    []string
		rt      middleware.Route
		wantIs  error
		code    verifier.Code
		check   func(t *testing.T, err error)
		inQuery bool
	}{
		{name: "missing", rt: read, wantIs: middleware.ErrMissingToken},
		{name: "query string", rt: read, wantIs: middleware.ErrMissingToken, inQuery: true},
		{name: "two headers", auth: []string{"Bearer a.b.c", "Bearer a.b.c"}, rt: read, wantIs: middleware.ErrBadAuthorization, code: verifier.CodeMalformed},
		{name: "Bearer\\ttoken", auth: []string{"Bearer\ta.b.c"}, rt: read, wantIs: middleware.ErrBadAuthorization, code: verifier.CodeMalformed},
		{name: "expired", auth: []string{"Bearer " + good(t, func(c *token.Claims) { c.Expiry = t0 - 60; c.IssuedAt, c.NotBefore = t0-120, t0-120 })},
			rt: read, code: verifier.CodeExpired},
		{name: "insufficient scope", auth: []string{"Bearer " + good(t)}, rt: middleware.Route{Scopes: []string{"admin"}},
			code: verifier.CodeInsufficientScope, check: func(t *testing.T, err error) {
				e, ok := errors.AsType[*middleware.RequiredScopesError](err)
				if !ok || !slices.Equal(e.Scopes, []string{"admin"}) {
					t.Errorf("RequiredScopesError = %v, %v", e, ok)
				}
			}},
		{name: "bound token", auth: []string{"Bearer " + good(t, func(c *token.Claims) {
			c.Binding = &binding.Binding{Method: "GET", Authority: "api.example", Path: "/write"}
		})}, rt: read, code: verifier.CodeBindingMismatch, check: func(t *testing.T, err error) {
			if !errors.Is(err, binding.ErrMismatch) {
				t.Errorf("error %v does not wrap binding.ErrMismatch", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "http://api.example/read"
			if tc.inQuery {
				target += "?access_token=" + good(t)
			}
			r := httptest.NewRequest("GET", target, nil)
			r.Header["Authorization"] = tc.auth
			r2, id, err := m.Authenticate(r, tc.rt)
			if err == nil || id != nil {
				t.Fatalf("Authenticate = %v, %v", id, err)
			}
			if _, ok := middleware.FromContext(r2.Context()); ok {
				t.Error("a refused request carries an identity")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if tc.code != "" {
				e, ok := errors.AsType[*verifier.Error](err)
				if !ok || e.Code != tc.code {
					t.Errorf("error %v, want a *verifier.Error of code %s", err, tc.code)
				}
			}
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

func TestReplayStoreUnavailable(t *testing.T) {
	m := newMiddleware(t, middleware.Options{Verifier: newVerifier(t, func(c *verifier.Config) { c.Replay = failingCache{} })})
	srv, calls := testServer(t, m)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/read", nil)
	req.Header = bearer(good(t))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e := checkRejection(t, resp, body, http.StatusServiceUnavailable, "replay_store_unavailable")
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	if wa := resp.Header.Get("WWW-Authenticate"); wa != "" {
		t.Errorf("WWW-Authenticate %q on a 503", wa)
	}
	if calls.Load() != 0 {
		t.Error("handler called")
	}
	if strings.Contains(string(body), "redis") || strings.Contains(e.Message, "10.0.0.7") {
		t.Errorf("body leaks the store's error: %s", body)
	}
}

func TestAudit(t *testing.T) {
	log := openLog(t)
	m := newMiddleware(t, middleware.Options{Audit: log, MaxBindingBody: maxBody})
	srv, calls := testServer(t, m)
	do := func(path, rid string, h http.Header) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
		if h != nil {
			req.Header = h
		}
		req.Header.Set("X-Request-Id", rid)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	c := claims()
	tok := mint(t, testKey("a1"), c)
	if s := do("/read", "req-allow", bearer(tok)); s != 200 {
		t.Fatalf("allow: %d", s)
	}
	if s := do("/read", "req-replay", bearer(tok)); s != 401 {
		t.Fatalf("replay: %d", s)
	}
	if s := do("/admin", "req-scope", bearer(good(t))); s != 403 {
		t.Fatalf("scope: %d", s)
	}
	if s := do("/read", "req-missing", nil); s != 401 {
		t.Fatalf("missing: %d", s)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times", calls.Load())
	}

	recs, err := audit.ReadAll(log.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Record{
		{Daemon: "verifier", RequestID: "req-allow", Decision: "allow", Subject: "alice", ClientID: "client-1",
			Granted: &audit.Granted{Audience: audience, Scope: "read write", Expiry: t0 + 300}, JTI: c.ID, Route: "read"},
		{Daemon: "verifier", RequestID: "req-replay", Decision: "deny", Code: "replayed", Route: "read"},
		{Daemon: "verifier", RequestID: "req-scope", Decision: "deny", Code: "insufficient_scope", Route: "GET /admin"},
		{Daemon: "verifier", RequestID: "req-missing", Decision: "deny", Code: "missing_token", Route: "read"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, got := range recs {
		if got.Time.IsZero() {
			t.Errorf("record %d has no time", i)
		}
		// Denials of the verifier carry its reason, for the operator.
		if got.Decision == "deny" && got.Code != "missing_token" && len(got.Reasons) != 1 {
			t.Errorf("record %d: reasons %q", i, got.Reasons)
		}
		got.Time, got.Reasons = time.Time{}, nil
		w := want[i]
		if (got.Granted == nil) != (w.Granted == nil) || got.Granted != nil && *got.Granted != *w.Granted {
			t.Errorf("record %d: granted %+v, want %+v", i, got.Granted, w.Granted)
		}
		got.Granted, w.Granted = nil, nil
		if !recordEqual(got, w) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}

func recordEqual(a, b audit.Record) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestAuditUnavailable: when the decision cannot be recorded, the request
// is refused with 503 and the handler is not called, whatever the
// decision; the error wraps both ErrAuditUnavailable and the log's error.
func TestAuditUnavailable(t *testing.T) {
	closed := openLog(t)
	closed.Close()
	for _, tc := range []struct {
		name    string
		auditor middleware.Auditor
		wantIs  error
	}{
		{"closed audit log", closed, audit.ErrClosed},
		{"failing auditor", &failingAuditor{}, errDiskFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMiddleware(t, middleware.Options{Audit: tc.auditor})
			srv, calls := testServer(t, m)
			for _, h := range []http.Header{bearer(good(t)), nil, bearer("abc")} {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/read", nil)
				if h != nil {
					req.Header = h
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkRejection(t, resp, body, http.StatusServiceUnavailable, "audit_unavailable")
				if strings.Contains(string(body), "space") || strings.Contains(string(body), "closed") {
					t.Errorf("body leaks the audit error: %s", body)
				}
			}
			if calls.Load() != 0 {
				t.Errorf("handler called %d times", calls.Load())
			}

			r := httptest.NewRequest("GET", "/read", nil)
			r.Header = bearer(good(t))
			_, id, err := m.Authenticate(r, middleware.Route{Scopes: []string{"read"}})
			if id != nil || !errors.Is(err, middleware.ErrAuditUnavailable) || !errors.Is(err, tc.wantIs) {
				t.Errorf("Authenticate = %v, %v; want ErrAuditUnavailable wrapping %v", id, err, tc.wantIs)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	m := newMiddleware(t, middleware.Options{})
	srv, _ := testServer(t, m)
	long := strings.Repeat("a", middleware.MaxRequestIDLen)
	for _, tc := range []struct {
		name string
		ids  []string // X-Request-Id headers sent
		keep bool
	}{
		{"sane", []string{"abc-123_X.y"}, true},
		{"longest", []string{long}, true},
		{"none", nil, false},
		{"too long", []string{long + "a"}, false},
		{"space", []string{"abc 123"}, false},
		{"quote", []string{`abc"123`}, false},
		{"non-ASCII", []string{"abcé"}, false},
		{"header injection", []string{"abc%0d%0aSet-Cookie:x"}, false},
		{"two headers", []string{"a", "b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, auth := range []http.Header{nil, bearer(good(t))} { // refused and served
				req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/read", nil)
				if auth != nil {
					req.Header = auth
				}
				req.Header["X-Request-Id"] = tc.ids
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := resp.Header.Get("X-Request-Id")
				if !middleware.ValidRequestID(got) {
					t.Fatalf("X-Request-Id %q", got)
				}
				if tc.keep != (got == strings.Join(tc.ids, "")) {
					t.Errorf("sent %q, got %q; want kept %v", tc.ids, got, tc.keep)
				}
				var e struct {
					RequestID string `json:"request_id"`
				}
				if auth == nil {
					json.Unmarshal(body, &e)
				} else {
					var s seen
					json.Unmarshal(body, &s)
					e.RequestID = s.RequestID
				}
				if e.RequestID != got {
					t.Errorf("request id %q in the body, %q in the header", e.RequestID, got)
				}
			}
		})
	}

	// A custom RequestID that misbehaves is overruled.
	m = newMiddleware(t, middleware.Options{RequestID: func(*http.Request) string { return "bad\r\nid" }})
	w := httptest.NewRecorder()
	m.Require(middleware.Route{Scopes: []string{"read"}})(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if rid := w.Header().Get("X-Request-Id"); !middleware.ValidRequestID(rid) {
		t.Errorf("X-Request-Id %q from a bad RequestID func", rid)
	}
	m = newMiddleware(t, middleware.Options{RequestID: func(r *http.Request) string { return r.Header.Get("Trace") }})
	w = httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Trace", "trace-7")
	m.Require(middleware.Route{Scopes: []string{"read"}})(http.NotFoundHandler()).ServeHTTP(w, r)
	if rid := w.Header().Get("X-Request-Id"); rid != "trace-7" {
		t.Errorf("X-Request-Id %q, want the custom trace-7", rid)
	}
}

// TestWriteError pins the response of each code, for the gateway.
func TestWriteError(t *testing.T) {
	verr := func(c verifier.Code) error { return &verifier.Error{Code: c, Reason: "secret detail: " + audience} }
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		challenge  string
		retryAfter string
	}{
		{"missing", middleware.ErrMissingToken, 401, "missing_token", `Bearer realm="frostmint"`, ""},
		{"audit", errors.Join(middleware.ErrAuditUnavailable, verr(verifier.CodeExpired)), 503, "audit_unavailable", "", ""},
		{"expired", verr(verifier.CodeExpired), 401, "expired", invalid(verifier.CodeExpired), ""},
		{"scope without scopes", verr(verifier.CodeInsufficientScope), 403, "insufficient_scope", `Bearer realm="frostmint", error="insufficient_scope"`, ""},
		{"scope", &verifier.Error{Code: verifier.CodeInsufficientScope, Err: &middleware.RequiredScopesError{Scopes: []string{"a", "b:c"}}},
			403, "insufficient_scope", `Bearer realm="frostmint", error="insufficient_scope", scope="a b:c"`, ""},
		{"scope not a scope-token", &verifier.Error{Code: verifier.CodeInsufficientScope, Err: &middleware.RequiredScopesError{Scopes: []string{`a", evil="1`}}},
			403, "insufficient_scope", `Bearer realm="frostmint", error="insufficient_scope"`, ""},
		{"replay store", verr(verifier.CodeReplayStoreUnavailable), 503, "replay_store_unavailable", "", "1"},
		{"body too large", verr(verifier.CodeBodyTooLarge), 413, "body_too_large", "", ""},
		{"binding mismatch", verr(verifier.CodeBindingMismatch), 401, "binding_mismatch", invalid(verifier.CodeBindingMismatch), ""},
		{"binding required", verr(verifier.CodeBindingRequired), 401, "binding_required", invalid(verifier.CodeBindingRequired), ""},
		{"unknown error", errors.New("panic: nil map at 0xdeadbeef"), 500, "internal_error", "", ""},
		{"nil", nil, 500, "internal_error", "", ""},
		{"code unsafe in a header", verr(`x", error="none`), 500, "internal_error", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			middleware.WriteError(w, httptest.NewRequest("GET", "/", nil), "req-9", tc.err)
			resp := w.Result()
			body := w.Body.Bytes()
			e := checkRejection(t, resp, body, tc.status, tc.code)
			if e.RequestID != "req-9" {
				t.Errorf("request_id %q", e.RequestID)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate: %s\nwant %s", got, tc.challenge)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if strings.Contains(string(body), "secret") || strings.Contains(string(body), "0xdeadbeef") {
				t.Errorf("body leaks the error: %s", body)
			}
		})
	}

	// A bad request id is replaced; HEAD gets no body.
	w := httptest.NewRecorder()
	middleware.WriteError(w, httptest.NewRequest("HEAD", "/", nil), "bad id\n", middleware.ErrMissingToken)
	if rid := w.Header().Get("X-Request-Id"); !middleware.ValidRequestID(rid) {
		t.Errorf("X-Request-Id %q", rid)
	}
	if w.Body.Len() != 0 {
		t.Errorf("HEAD body %q", w.Body)
	}
}

// TestMessagesFixed: every code the verifier documents has its own
// message, and no message is the fallback but for unknown codes.
func TestMessagesFixed(t *testing.T) {
	codes := []string{
		"missing_token", "audit_unavailable", "no_rule", "internal_error",
		"malformed", "bad_header", "missing_claim", "ttl_exceeds_cap", "untrusted_issuer", "unknown_key",
		"bad_signature", "expired", "issued_in_future", "not_yet_valid", "wrong_audience",
		"insufficient_scope", "replayed", "replay_store_unavailable", "binding_required",
		"binding_mismatch", "body_too_large",
	}
	fallback := middleware.Message("some_future_code")
	for _, c := range codes {
		if m := middleware.Message(c); m == "" || m == fallback {
			t.Errorf("code %s has message %q", c, m)
		}
	}
}

func TestNew(t *testing.T) {
	for _, o := range []middleware.Options{
		{},
		{Verifier: newVerifier(t), MaxBindingBody: -1},
	} {
		if m, err := middleware.New(o); m != nil || !errors.Is(err, middleware.ErrConfig) {
			t.Errorf("New(%+v) = %v, %v; want ErrConfig", o, m, err)
		}
	}
}

func TestRequirePanicsOnBadRoute(t *testing.T) {
	m := newMiddleware(t, middleware.Options{})
	for _, scopes := range [][]string{{""}, {"a b"}, {`a"b`}, {"a\\b"}, {"é"}} {
		func() {
			defer func() {
				if p := recover(); p == nil {
					t.Errorf("Require(scopes %q) did not panic", scopes)
				} else if err, ok := p.(error); !ok || !errors.Is(err, middleware.ErrConfig) {
					t.Errorf("Require(scopes %q) panicked with %v", scopes, p)
				}
			}()
			m.Require(middleware.Route{Scopes: scopes})
		}()
		// Authenticate refuses such a route instead.
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = bearer(good(t))
		if _, id, err := m.Authenticate(r, middleware.Route{Scopes: scopes}); err == nil || id != nil {
			t.Errorf("Authenticate(scopes %q) = %v, %v", scopes, id, err)
		}
	}
}

// TestLog: a denial is logged with its request id, route and code; a token
// never is.
func TestLog(t *testing.T) {
	var buf strings.Builder
	m := newMiddleware(t, middleware.Options{Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv, _ := testServer(t, m)
	expired := good(t, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-600, t0-600, t0-60 })
	valid := good(t)
	for rid, tok := range map[string]string{"log-deny": expired, "log-allow": valid} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/read", nil)
		req.Header = bearer(tok)
		req.Header.Set("X-Request-Id", rid)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	type line struct {
		Level, Msg, RequestID, Route, Code, Sub string
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(l), &raw); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		str := func(k string) string { s, _ := raw[k].(string); return s }
		lines = append(lines, line{str("level"), str("msg"), str("request_id"), str("route"), str("code"), str("sub")})
	}
	slices.SortFunc(lines, func(a, b line) int { return strings.Compare(a.RequestID, b.RequestID) })
	want := []line{
		{"DEBUG", "request allowed", "log-allow", "read", "", "alice"},
		{"INFO", "request denied", "log-deny", "read", "expired", ""},
	}
	if !slices.Equal(lines, want) {
		t.Errorf("log lines %+v\nwant %+v", lines, want)
	}
	for _, tok := range []string{expired, valid} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(buf.String(), sig) {
			t.Errorf("the log holds a token: %s", buf.String())
		}
	}
}
