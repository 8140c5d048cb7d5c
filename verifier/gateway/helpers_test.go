package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

const (
	testIssuer   = "https://issuer.frostmint.test"
	testAudience = "https://api.frostmint.test"
)

// testKey returns a deterministic signing key for name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("frostmint gateway test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

var issuerKey = testKey("issuer")

// writeJWKS writes the public keys of keys as a JWKS file and returns its
// path.
func writeJWKS(t testing.TB, keys ...ed25519.PrivateKey) string {
	t.Helper()
	pubs := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		pubs[i] = k.Public().(ed25519.PublicKey)
	}
	doc, err := jwks.Marshal(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// claims returns the claims of a fresh token of the test issuer for the
// test audience, valid for five minutes, granting "read write".
func claims() token.Claims {
	now := time.Now().Unix()
	jti := make([]byte, 32)
	rand.Read(jti)
	return token.Claims{
		Issuer:    testIssuer,
		Subject:   "spiffe://frostmint.test/team/a/alice",
		ClientID:  "client-1",
		Audience:  testAudience,
		Scope:     "read write",
		IssuedAt:  now,
		NotBefore: now,
		Expiry:    now + 300,
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}
}

// mint signs the claims of claims(), changed by each of opts, with key.
func mintWith(t testing.TB, key ed25519.PrivateKey, opts ...func(*token.Claims)) string {
	t.Helper()
	c := claims()
	for _, o := range opts {
		o(&c)
	}
	tok, err := sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign signs c with key, for goroutines that cannot t.Fatal.
func sign(key ed25519.PrivateKey, c token.Claims) (string, error) {
	kid, err := jwks.KeyID(key.Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	in, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid}, c)
	if err != nil {
		return "", err
	}
	return token.Compact(in, ed25519.Sign(key, in)), nil
}

// mint is mintWith the issuer's key.
func mint(t testing.TB, opts ...func(*token.Claims)) string {
	t.Helper()
	return mintWith(t, issuerKey, opts...)
}

func withScope(s string) func(*token.Claims) { return func(c *token.Claims) { c.Scope = s } }

// seenRequest is what an upstream received.
type seenRequest struct {
	Method, Path, RawPath, Host string
	Header                      http.Header
	Body                        []byte
}

// recorder is an upstream that records every request and answers 200
// "ok".
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seenRequest
}

func newRecorder(t testing.TB) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seenRequest{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Host: r.Host,
			Header: r.Header.Clone(), Body: body,
		})
		rec.mu.Unlock()
		w.Header().Set("X-Request-Id", "upstream-own-id")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func (rec *recorder) last(t testing.TB) seenRequest {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return rec.reqs[len(rec.reqs)-1]
}

// baseConfig is a valid config: one issuer (a JWKS file), the test
// audience, upstream, and one route "all" for every path, requiring
// "read".
func baseConfig(t testing.TB, upstream string) Config {
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Issuers = []IssuerConfig{{Issuer: testIssuer, JWKS: writeJWKS(t, issuerKey)}}
	cfg.Audience = testAudience
	cfg.Upstream = upstream
	cfg.Routes = []RouteConfig{{Name: "all", PathPrefix: "/", Scopes: []string{"read"}}}
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// running is a gateway served on loopback listeners.
type running struct {
	g      *Gateway
	url    string // http://127.0.0.1:port
	addr   string
	admin  string // http://127.0.0.1:port of the admin listener
	stop   context.CancelFunc
	done   chan error
	client *http.Client
}

// start makes a gateway of cfg and serves it until the test ends.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	g, err := New(t.Context(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		g: g, addr: lis.Addr().String(), url: "http://" + lis.Addr().String(),
		admin: "http://" + admin.Addr().String(), stop: cancel, done: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
	}
	go func() { r.done <- g.Serve(ctx, lis, admin) }()
	t.Cleanup(func() {
		r.client.CloseIdleConnections()
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return r
}

// do sends a request with tok (if not empty) as a bearer token.
func (r *running) do(t testing.TB, method, path, tok string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header[header[i]] = append(req.Header[header[i]], header[i+1])
	}
	return send(t, r.client, req)
}

func send(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

// errorCode returns the "error" member of a JSON rejection, or "".
func errorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error
}

// checkStatus fails the test unless resp has status and, when code is
// not empty, a JSON body with that error code.
func checkStatus(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, strings.TrimSpace(string(body)))
	}
	if code != "" && errorCode(body) != code {
		t.Fatalf("error %q, want %q; body %s", errorCode(body), code, strings.TrimSpace(string(body)))
	}
}
