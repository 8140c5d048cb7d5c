package middleware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/token"
)

const (
	issuer   = "https://a.frostmint.example"
	audience = "https://api.example"
	// t0 is the verifiers' clock in these tests (Unix seconds).
	t0 = 1_700_000_000
)

func now() time.Time { return time.Unix(t0, 0) }

// testKey returns a deterministic key for name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("frostmint middleware test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// newVerifier returns a verifier trusting issuer with key "a1", on the
// clock now, with a real in-memory replay cache.
func newVerifier(t testing.TB, mutate ...func(*verifier.Config)) *verifier.Verifier {
	t.Helper()
	keys, err := jwks.NewStatic(pubOf(testKey("a1")))
	if err != nil {
		t.Fatal(err)
	}
	cfg := verifier.Config{
		Issuers:  []verifier.Issuer{{Issuer: issuer, Keys: keys}},
		Audience: audience,
		Now:      now,
		Replay:   verifier.NewMemoryReplayCache(1<<12, now),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newMiddleware(t testing.TB, o middleware.Options) *middleware.Middleware {
	t.Helper()
	if o.Verifier == nil {
		o.Verifier = newVerifier(t)
	}
	m, err := middleware.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var jtiCounter atomic.Uint64

func freshJTI() string {
	sum := sha256.Sum256(strconv.AppendUint([]byte("middleware jti "), jtiCounter.Add(1), 10))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func claims() token.Claims {
	return token.Claims{
		Issuer:    issuer,
		Subject:   "alice",
		ClientID:  "client-1",
		Audience:  audience,
		Scope:     "read write",
		IssuedAt:  t0,
		NotBefore: t0,
		Expiry:    t0 + 300,
		ID:        freshJTI(),
	}
}

// mint signs c with k as frostmint does.
func mint(t testing.TB, k ed25519.PrivateKey, c token.Claims) string {
	t.Helper()
	kid, err := jwks.KeyID(pubOf(k))
	if err != nil {
		t.Fatal(err)
	}
	in, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid}, c)
	if err != nil {
		t.Fatal(err)
	}
	return token.Compact(in, ed25519.Sign(k, in))
}

// good returns a valid token under key a1, with claims modified by mutate.
func good(t testing.TB, mutate ...func(*token.Claims)) string {
	t.Helper()
	c := claims()
	for _, m := range mutate {
		m(&c)
	}
	return mint(t, testKey("a1"), c)
}

// openLog opens a real audit log in a fresh directory.
func openLog(t testing.TB) *audit.Log {
	t.Helper()
	l, err := audit.Open(filepath.Join(t.TempDir(), "verifier.audit"), now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// failingCache is a replay store that cannot answer.
type failingCache struct{}

var errStoreDown = errors.New("redis://10.0.0.7:6379: connection refused")

func (failingCache) Seen(context.Context, string, time.Time) (bool, error) {
	return false, errStoreDown
}

// failingAuditor cannot record.
type failingAuditor struct{ calls atomic.Int64 }

var errDiskFull = errors.New("write /var/log/frostmint/verifier.audit: no space left on device")

func (a *failingAuditor) Append(audit.Record) error {
	a.calls.Add(1)
	return errDiskFull
}

// errorResponse is the JSON body of a rejection; decoding refuses any other
// member.
type errorResponse struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// checkRejection checks everything a rejection must carry, and returns its
// body.
func checkRejection(t testing.TB, resp *http.Response, body []byte, status int, code string) errorResponse {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	for h, want := range map[string]string{
		"Content-Type":           "application/json",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	var e errorResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if e.Error != code {
		t.Errorf("error %q, want %q", e.Error, code)
	}
	// The message is the fixed one of the code: no detail of the request,
	// the token or the server.
	if e.Message != middleware.Message(code) || e.Message == "" {
		t.Errorf("message %q, want the fixed %q", e.Message, middleware.Message(code))
	}
	if rid := resp.Header.Get("X-Request-Id"); e.RequestID != rid || !middleware.ValidRequestID(rid) {
		t.Errorf("request_id %q, X-Request-Id %q", e.RequestID, rid)
	}
	return e
}
