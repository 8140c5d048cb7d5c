package keysource_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/jwks"
)

// issuer is a real HTTP server playing a frostmint coordinator: it serves
// /.well-known/openid-configuration and /.well-known/jwks.json, and counts
// the requests to each.
type issuer struct {
	*httptest.Server
	t testing.TB

	mu   sync.Mutex
	keys []ed25519.PublicKey
	down bool // every request fails with 503
	// discovery, if set, answers the discovery request instead.
	discovery http.HandlerFunc
	// jwks, if set, answers the JWKS request instead.
	jwks http.HandlerFunc
	// gate, if set, holds every JWKS request until it is closed, after
	// signalling entered.
	gate    chan struct{}
	entered chan struct{}

	discoveries atomic.Int64
	fetches     atomic.Int64 // JWKS requests
}

// newIssuer starts a plain-http issuer on 127.0.0.1 that publishes keys.
func newIssuer(t testing.TB, keys ...ed25519.PublicKey) *issuer {
	t.Helper()
	is := &issuer{t: t, keys: keys}
	is.Server = httptest.NewServer(is.handler())
	t.Cleanup(is.Close)
	return is
}

// newTLSIssuer starts an https issuer on 127.0.0.1 that publishes keys.
// Its certificate is trusted by is.Client() only.
func newTLSIssuer(t testing.TB, keys ...ed25519.PublicKey) *issuer {
	t.Helper()
	is := &issuer{t: t, keys: keys}
	is.Server = httptest.NewTLSServer(is.handler())
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discoveries.Add(1)
		is.mu.Lock()
		down, h := is.down, is.discovery
		is.mu.Unlock()
		switch {
		case down:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case h != nil:
			h(w, r)
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"issuer":                                is.URL,
				"jwks_uri":                              is.URL + "/.well-known/jwks.json",
				"id_token_signing_alg_values_supported": []string{"EdDSA"},
			})
		}
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		down, h, gate, entered, keys := is.down, is.jwks, is.gate, is.entered, is.keys
		is.mu.Unlock()
		if gate != nil {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-gate
		}
		switch {
		case down:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case h != nil:
			h(w, r)
		default:
			doc, err := jwks.Marshal(keys...)
			if err != nil {
				is.t.Errorf("jwks.Marshal: %v", err)
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Write(doc)
		}
	})
	return mux
}

func (is *issuer) setKeys(keys ...ed25519.PublicKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = keys
}

func (is *issuer) setDown(down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down = down
}

func (is *issuer) setDiscovery(h http.HandlerFunc) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.discovery = h
}

func (is *issuer) setJWKS(h http.HandlerFunc) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwks = h
}

// hold makes JWKS requests wait until the returned release is called;
// entered receives a value when a request is waiting.
func (is *issuer) hold() (entered <-chan struct{}, release func()) {
	is.mu.Lock()
	defer is.mu.Unlock()
	gate, ent := make(chan struct{}), make(chan struct{}, 1)
	is.gate, is.entered = gate, ent
	var once sync.Once
	return ent, func() {
		once.Do(func() {
			is.mu.Lock()
			is.gate, is.entered = nil, nil
			is.mu.Unlock()
			close(gate)
		})
	}
}

// wantRequests checks the number of discovery and JWKS requests served.
func (is *issuer) wantRequests(t testing.TB, discoveries, fetches int64) {
	t.Helper()
	if d, f := is.discoveries.Load(), is.fetches.Load(); d != discoveries || f != fetches {
		t.Fatalf("issuer served %d discovery and %d JWKS requests, want %d and %d", d, f, discoveries, fetches)
	}
}

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func newPub(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _ := newKey(t)
	return pub
}

func kidOf(t testing.TB, pub ed25519.PublicKey) string {
	t.Helper()
	kid, err := jwks.KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// testLog logs to the test's output.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
