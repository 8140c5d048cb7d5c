package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/middleware"
)

// The middleware's overhead is BenchmarkMiddleware minus
// BenchmarkBareHandler: one Ed25519 verification, the header parsing, the
// Identity and two contexts. (A Reusable route: a single-use route adds a
// replay-cache insertion, see the verifier's benchmarks.)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func benchRequest(b *testing.B) *http.Request {
	r := httptest.NewRequest("GET", "http://api.example/read", nil)
	r.Header.Set("Authorization", "Bearer "+good(b))
	r.Header.Set("X-Request-Id", "bench-1")
	return r
}

func serve(b *testing.B, h http.Handler, r *http.Request) {
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func BenchmarkBareHandler(b *testing.B) {
	serve(b, okHandler, benchRequest(b))
}

func BenchmarkMiddleware(b *testing.B) {
	m := newMiddleware(b, middleware.Options{})
	h := m.Require(middleware.Route{Name: "read", Scopes: []string{"read"}, Replay: verifier.Reusable})(okHandler)
	serve(b, h, benchRequest(b))
}

// BenchmarkMiddlewareMissingToken is the cost of refusing a request without
// a token (no cryptography).
func BenchmarkMiddlewareMissingToken(b *testing.B) {
	m := newMiddleware(b, middleware.Options{})
	h := m.Require(middleware.Route{Scopes: []string{"read"}})(okHandler)
	r := httptest.NewRequest("GET", "http://api.example/read", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			b.Fatal(w.Code)
		}
	}
}
