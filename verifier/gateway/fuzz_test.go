package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/token"
)

// FuzzParseConfig feeds arbitrary configs to ParseConfig and Validate:
// nothing may panic; every error wraps ErrConfig (each one of Validate's
// joined errors too); only exactly one JSON object is accepted; and an
// accepted config written back as JSON parses to the very same config,
// valid exactly when the original is.
func FuzzParseConfig(f *testing.F) {
	full := Default()
	full.Listen, full.AdminListen, full.Audience, full.Upstream = "127.0.0.1:8443", "127.0.0.1:9090", "https://api.example", "h2c://127.0.0.1:9000"
	full.TLS = &TLSFiles{Cert: "c.pem", Key: "k.pem"}
	full.Issuers = []IssuerConfig{{Issuer: "https://mint.example"}, {Issuer: "https://b.example", JWKS: "jwks.json"}}
	full.Replay.Redis = &RedisConfig{Addr: "127.0.0.1:6379", Username: "u", PasswordFile: "pw", DB: 2}
	full.AuditLog, full.TrustForwardedProto = "audit.ndjson", true
	full.Routes = []RouteConfig{
		{Name: "all", PathPrefix: "/", Scopes: []string{"read"}},
		{Name: "pay", PathPrefix: "/pay/", Methods: []string{"POST"}, Upstream: "https://pay.internal", Scopes: []string{"pay"}, RequireBinding: true},
		{Name: "ws", PathPrefix: "/ws", Replay: ReplayReusable, Audience: "wss://api.example"},
	}
	for _, c := range []Config{Default(), full} {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"leeway":"6m","shutdown_timeout":"0s"}`, `{"routes":[{"name":"a b","path_prefix":"/a/../b"}]}`,
		`{"upstream":"http://u:p@host"}`, `{"listen":":1"} x`, `{"max_binding_body":-1}`, `{"unknown":true}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("ParseConfig = %v, want ErrConfig", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("ParseConfig accepted %q, which is not one JSON value", b)
		}
		verr := c.Validate()
		if verr != nil {
			for _, e := range unjoin(verr) {
				if !errors.Is(e, ErrConfig) {
					t.Fatalf("Validate error %v does not wrap ErrConfig", e)
				}
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted config does not encode: %v", err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("the config written back does not parse: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(c2); !bytes.Equal(out2, out) {
			t.Fatalf("the config changed on the way back:\n%s\n%s", out, out2)
		}
		if (c2.Validate() == nil) != (verr == nil) {
			t.Fatalf("Validate = %v, and after a round trip %v", verr, c2.Validate())
		}
	})
}

// FuzzRoute checks the gateway's routing on arbitrary paths against a
// plain reference. cleanPath accepts exactly the paths that start with
// "/", that path.Clean leaves as they are (but for one trailing slash
// after a segment),
// and that hold no backslash, ";" or control character; and a route's
// prefix matches exactly the path itself and the paths below it, segment
// by segment, for the methods it allows.
func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{{"/api", "/api/v1"}, {"/api", "/apix"}, {"/api/", "/api"}, {"/", "/x//y"},
		{"/a/./b", "/a/b"}, {"/a", "/a/.."}, {"/a;b", "/a;b"}, {"/a", "/a\\b"}, {"/ä", "/ä/ö"}, {"", ""}} {
		f.Add(s[0], s[1], "GET", "GET,POST")
	}
	f.Fuzz(func(t *testing.T, prefix, p, method, methods string) {
		want := strings.HasPrefix(p, "/") && !strings.ContainsFunc(p, func(r rune) bool {
			return r < 0x20 || r == 0x7f || r == '\\' || r == ';'
		}) && (path.Clean(p) == p || path.Clean(p) != "/" && path.Clean(p)+"/" == p)
		if got := cleanPath(p); got != want {
			t.Fatalf("cleanPath(%q) = %v, want %v", p, got, want)
		}
		if !cleanPath(prefix) || !cleanPath(p) {
			return
		}
		var ms []string
		if methods != "" {
			ms = strings.Split(methods, ",")
		}
		rt := &route{prefix: prefix, methods: ms}
		base := strings.TrimSuffix(prefix, "/")
		want = (p == prefix || strings.HasPrefix(p, base+"/")) && (len(ms) == 0 || slices.Contains(ms, method))
		if got := rt.matches(method, p); got != want {
			t.Fatalf("route %q %q matches(%q, %q) = %v, want %v", prefix, methods, method, p, got, want)
		}
	})
}

// FuzzForward sends arbitrary requests (method, target, extra header
// lines) to a running gateway in front of a recording upstream, with no
// token, a token granting "read write", or one granting "read". Whatever
// the client sends: at most one request reaches the upstream; only an
// authenticated one, on a clean path that a route takes, unchanged; and it
// carries no Authorization and, in the X-Frostmint- namespace (in any
// case, with "_" for "-"), exactly the gateway's own headers with the
// token's identity — never one the client wrote.
func FuzzForward(f *testing.F) {
	up := newRecorder(f)
	cfg := baseConfig(f, up.URL)
	cfg.Routes = []RouteConfig{
		{Name: "all", PathPrefix: "/", Scopes: []string{"read"}},
		{Name: "api", PathPrefix: "/api/", Methods: []string{"GET", "POST"}, Scopes: []string{"write"}},
		{Name: "bound", PathPrefix: "/bound", RequireBinding: true},
	}
	gw := start(f, cfg)
	for _, s := range []struct {
		method, target, extra string
		tok                   uint8
	}{
		{"GET", "/", "", 1},
		{"POST", "/api/v1/pay?x=1", "X-Frostmint-Subject: root\r\n", 1},
		{"GET", "/api/v1", "x_frostmint_scope: admin\r\nX-Request-Id: abc\r\n", 2},
		{"GET", "/x", "Connection: X-Frostmint-Subject\r\nX-Frostmint-Subject: root\r\n", 1},
		{"GET", "/a/../api/x", "", 1},
		{"GET", "/a%2F..%2Fapi", "", 1},
		{"GET", "/bound", "", 1},
		{"DELETE", "/api/x", "", 0},
		{"GET", "http://evil.example/x", "X-Forwarded-Proto: https\r\n", 1},
		{"GET", "/x", "Authorization: Bearer x\r\n", 1},
	} {
		f.Add(s.method, s.target, s.extra, s.tok)
	}
	f.Fuzz(func(t *testing.T, method, target, extra string, tok uint8) {
		// The framing of the body is left alone: a request that announces
		// a body it never sends would only wait for the timeout.
		if l := strings.ToLower(extra); strings.Contains(l, "content-length") || strings.Contains(l, "transfer-encoding") {
			return
		}
		var c token.Claims
		var bearer string
		switch tok % 3 {
		case 1:
			c = claims()
			bearer = mintClaims(t, c)
		case 2:
			c = claims()
			c.Scope = "read"
			bearer = mintClaims(t, c)
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: gw.example\r\n" + extra
		if bearer != "" {
			raw += "Authorization: Bearer " + bearer + "\r\n"
		}
		raw += "Connection: close\r\n\r\n"

		before := up.count()
		resp, err := roundTrip(gw.addr, raw)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		n := up.count() - before
		switch {
		case n > 1:
			t.Fatalf("one request reached the upstream %d times", n)
		case n == 0:
			if resp.StatusCode < 400 {
				t.Fatalf("status %d without reaching the upstream", resp.StatusCode)
			}
			return
		}

		// Forwarded: check it was due, and what the upstream saw.
		seen := up.last(t)
		if bearer == "" || resp.StatusCode != http.StatusOK {
			t.Fatalf("forwarded (status %d) a request with token kind %d", resp.StatusCode, tok%3)
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("forwarded a target that does not parse: %v", err)
		}
		if !cleanPath(u.Path) || gwRoute(gw, method, u.Path) == nil {
			t.Fatalf("forwarded %s %q, which no route takes", method, u.Path)
		}
		if seen.Path != u.Path || seen.RawPath != u.EscapedPath() {
			t.Fatalf("the upstream saw path %q (%q) for %q", seen.Path, seen.RawPath, target)
		}
		if v, ok := seen.Header["Authorization"]; ok {
			t.Fatalf("the upstream saw Authorization %q", v)
		}
		want := map[string]string{
			HeaderSubject: c.Subject, HeaderClientID: c.ClientID, HeaderIssuer: c.Issuer, HeaderScope: c.Scope,
			HeaderTokenID: c.ID, HeaderExpiry: strconv.FormatInt(c.Expiry, 10), HeaderRequestID: resp.Header.Get(HeaderRequestID),
		}
		for k, v := range seen.Header {
			if !isFrostmintHeader(k) {
				continue
			}
			if w, ok := want[k]; !ok || len(v) != 1 || v[0] != w {
				t.Fatalf("the upstream saw %s: %q (want %q, set by the gateway: %v)", k, v, w, ok)
			}
		}
		for k := range want {
			if _, ok := seen.Header[k]; !ok {
				t.Fatalf("the upstream did not get %s", k)
			}
		}
	})
}

// mintClaims signs c with the test issuer's key.
func mintClaims(t *testing.T, c token.Claims) string {
	tok, err := sign(issuerKey, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// gwRoute is the route the gateway picks for a request.
func gwRoute(r *running, method, p string) *route { return r.g.match(method, p) }

// roundTrip writes raw on a new connection to addr and reads the response.
func roundTrip(addr, raw string) (*http.Response, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte(raw)); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("reading the response to %q: %w", raw, err)
	}
	resp.Body.Close()
	return resp, nil
}
