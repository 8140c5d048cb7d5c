package keysource_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/keysource"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      keysource.Config
		problems int // 0: valid
	}{
		{"discovery", keysource.Config{Issuer: "https://issuer.example"}, 0},
		{"discovery with path", keysource.Config{Issuer: "https://issuer.example/tenant/"}, 0},
		{"discovery on loopback http", keysource.Config{Issuer: "http://127.0.0.1:8080"}, 0},
		{"discovery on localhost http", keysource.Config{Issuer: "http://localhost:8080"}, 0},
		{"discovery on [::1] http", keysource.Config{Issuer: "http://[::1]:8080"}, 0},
		{"JWKS URL", keysource.Config{Issuer: "frostmint", JWKSURL: "https://issuer.example/jwks.json"}, 0},
		{"file", keysource.Config{Issuer: "frostmint", File: "jwks.json"}, 0},
		{"durations", keysource.Config{Issuer: "https://i.example", Refresh: keysource.MinRefresh, MinInterval: keysource.MinMinInterval}, 0},

		{"zero", keysource.Config{}, 1},
		{"file and URL", keysource.Config{Issuer: "i", File: "f.json", JWKSURL: "https://i.example/jwks"}, 1},
		{"file is a URL", keysource.Config{Issuer: "i", File: "https://i.example/jwks"}, 1},
		{"JWKS URL over http", keysource.Config{Issuer: "i", JWKSURL: "http://i.example/jwks"}, 1},
		{"JWKS URL not a URL", keysource.Config{Issuer: "i", JWKSURL: "jwks.json"}, 1},
		{"issuer over http", keysource.Config{Issuer: "http://issuer.example"}, 1},
		{"issuer over http on a lookalike host", keysource.Config{Issuer: "http://127.0.0.1.example"}, 1},
		{"issuer not a URL", keysource.Config{Issuer: "frostmint"}, 1},
		{"issuer ftp", keysource.Config{Issuer: "ftp://issuer.example"}, 1},
		{"issuer with user", keysource.Config{Issuer: "https://u:p@issuer.example"}, 1},
		{"issuer with query", keysource.Config{Issuer: "https://issuer.example?a=b"}, 1},
		{"issuer with fragment", keysource.Config{Issuer: "https://issuer.example#x"}, 1},
		{"issuer without host", keysource.Config{Issuer: "https:///x"}, 1},
		{"refresh too short", keysource.Config{Issuer: "https://i.example", Refresh: time.Second}, 1},
		{"refresh negative", keysource.Config{Issuer: "https://i.example", Refresh: -time.Minute}, 1},
		{"min interval too short", keysource.Config{Issuer: "https://i.example", MinInterval: time.Millisecond}, 1},
		{"min interval negative", keysource.Config{Issuer: "https://i.example", MinInterval: -time.Second}, 1},
		{"everything", keysource.Config{File: "a", JWKSURL: "b", Refresh: 1, MinInterval: 1}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.problems == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, keysource.ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("Validate = %T, want an errors.Join", err)
			}
			if errs := joined.Unwrap(); len(errs) != tc.problems {
				t.Fatalf("Validate found %d problems, want %d: %v", len(errs), tc.problems, err)
			}
			for _, e := range joined.Unwrap() {
				if !errors.Is(e, keysource.ErrConfig) {
					t.Errorf("problem %v does not wrap ErrConfig", e)
				}
			}
			if s, err := keysource.New(context.Background(), tc.cfg); !errors.Is(err, keysource.ErrConfig) || s != nil {
				t.Fatalf("New = %v, %v; want ErrConfig", s, err)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	k1, k2 := newPub(t), newPub(t)
	is := newIssuer(t, k1, k2)
	clk := newClock()
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, Now: clk.Now, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Ready() || s.LastError() != nil {
		t.Fatalf("Ready = %v, LastError = %v", s.Ready(), s.LastError())
	}
	if s.Issuer() != is.URL {
		t.Errorf("Issuer = %q, want %q", s.Issuer(), is.URL)
	}
	for range 3 {
		for _, k := range []ed25519.PublicKey{k1, k2} {
			pub, err := s.Key(kidOf(t, k))
			if err != nil || !pub.Equal(k) {
				t.Fatalf("Key = %x, %v; want %x", pub, err, k)
			}
		}
	}
	is.wantRequests(t, 1, 1)
}

func TestJWKSURL(t *testing.T) {
	k := newPub(t)
	is := newIssuer(t, k)
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: "frostmint", JWKSURL: is.URL + "/.well-known/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := s.Key(kidOf(t, k)); err != nil || !pub.Equal(k) {
		t.Fatalf("Key = %x, %v", pub, err)
	}
	is.wantRequests(t, 0, 1)
}

func TestDiscoveryTLS(t *testing.T) {
	k := newPub(t)
	is := newTLSIssuer(t, k)
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, HTTPClient: is.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := s.Key(kidOf(t, k)); err != nil || !pub.Equal(k) {
		t.Fatalf("Key = %x, %v (last error %v)", pub, err, s.LastError())
	}

	// The default client does not trust the test certificate: fail closed.
	s, err = keysource.New(context.Background(), keysource.Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready() || !errors.Is(s.LastError(), keysource.ErrDiscovery) {
		t.Fatalf("Ready = %v, LastError = %v; want an untrusted certificate refused", s.Ready(), s.LastError())
	}
}

// checkUnavailable checks that s has no keys because of a failure wrapping
// cause, and that Key says so.
func checkUnavailable(t *testing.T, s *keysource.Source, kid string, cause error) {
	t.Helper()
	if s.Ready() {
		t.Fatal("Ready = true")
	}
	if err := s.LastError(); !errors.Is(err, cause) {
		t.Fatalf("LastError = %v, want %v", err, cause)
	}
	_, err := s.Key(kid)
	if !errors.Is(err, keysource.ErrUnavailable) || !errors.Is(err, cause) {
		t.Fatalf("Key = %v, want ErrUnavailable and %v", err, cause)
	}
	if errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("Key = %v wraps ErrUnknownKey", err)
	}
}

func TestDiscoveryRefused(t *testing.T) {
	k := newPub(t)
	kid := kidOf(t, k)
	plain := newIssuer(t, k) // a plain-http server to point at
	doc := func(body string) func(*issuer) http.HandlerFunc {
		return func(is *issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(strings.NewReplacer("ISSUER", is.URL, "PLAIN", plain.URL).Replace(body)))
			}
		}
	}
	status := func(code int) func(*issuer) http.HandlerFunc {
		return func(is *issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				w.Write([]byte(`{"issuer":"` + is.URL + `","jwks_uri":"` + is.URL + `/.well-known/jwks.json"}`))
			}
		}
	}
	const good = `"jwks_uri":"ISSUER/.well-known/jwks.json"`
	for _, tc := range []struct {
		name      string
		tls       bool
		slash     bool // configure the issuer with a trailing slash
		discovery func(*issuer) http.HandlerFunc
	}{
		{name: "other issuer", discovery: doc(`{"issuer":"https://evil.example",` + good + `}`)},
		{name: "issuer with a trailing slash", discovery: doc(`{"issuer":"ISSUER/",` + good + `}`)},
		{name: "configured with a trailing slash", slash: true},
		{name: "issuer of another case", discovery: func(is *issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"issuer":"` + strings.ToUpper(is.URL) + `","jwks_uri":"` + is.URL + `/.well-known/jwks.json"}`))
			}
		}},
		{name: "no issuer", discovery: doc(`{` + good + `}`)},
		{name: "issuer not a string", discovery: doc(`{"issuer":["ISSUER"],` + good + `}`)},
		{name: "duplicate issuer", discovery: doc(`{"issuer":"https://evil.example","issuer":"ISSUER",` + good + `}`)},
		{name: "duplicate jwks_uri", discovery: doc(`{"issuer":"ISSUER",` + good + `,` + good + `}`)},
		{name: "no jwks_uri", discovery: doc(`{"issuer":"ISSUER"}`)},
		{name: "jwks_uri null", discovery: doc(`{"issuer":"ISSUER","jwks_uri":null}`)},
		{name: "jwks_uri over http on a remote host", discovery: doc(`{"issuer":"ISSUER","jwks_uri":"http://jwks.example/jwks.json"}`)},
		{name: "jwks_uri file", discovery: doc(`{"issuer":"ISSUER","jwks_uri":"file:///etc/passwd"}`)},
		{name: "jwks_uri relative", discovery: doc(`{"issuer":"ISSUER","jwks_uri":"/.well-known/jwks.json"}`)},
		{name: "jwks_uri with user", discovery: doc(`{"issuer":"ISSUER","jwks_uri":"https://u:p@jwks.example/"}`)},
		{name: "https issuer, http jwks_uri on loopback", tls: true, discovery: doc(`{"issuer":"ISSUER","jwks_uri":"PLAIN/.well-known/jwks.json"}`)},
		{name: "not JSON", discovery: doc(`<html>hello</html>`)},
		{name: "empty", discovery: doc(``)},
		{name: "array", discovery: doc(`[{"issuer":"ISSUER",` + good + `}]`)},
		{name: "trailing data", discovery: doc(`{"issuer":"ISSUER",` + good + `}{}`)},
		{name: "invalid UTF-8", discovery: doc(`{"issuer":"ISSUER",` + good + `,"x":"` + "\xff" + `"}`)},
		{name: "oversized", discovery: doc(`{"issuer":"ISSUER",` + good + `}` + strings.Repeat(" ", keysource.MaxDiscoverySize))},
		{name: "status 404", discovery: status(http.StatusNotFound)},
		{name: "status 201", discovery: status(http.StatusCreated)},
		{name: "status 503", discovery: status(http.StatusServiceUnavailable)},
		{name: "redirect off https", tls: true, discovery: func(*issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, plain.URL+"/.well-known/openid-configuration", http.StatusFound)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer
			if tc.tls {
				is = newTLSIssuer
			}
			srv := is(t, k)
			if tc.discovery != nil {
				srv.setDiscovery(tc.discovery(srv))
			}
			cfg := keysource.Config{Issuer: srv.URL, HTTPClient: srv.Client(), Log: testLog(t)}
			if tc.slash {
				cfg.Issuer += "/"
			}
			before := plain.fetches.Load()
			s, err := keysource.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkUnavailable(t, s, kid, keysource.ErrDiscovery)
			if srv.fetches.Load() != 0 || plain.fetches.Load() != before {
				t.Fatal("the JWKS was fetched")
			}
		})
	}
}

func TestDiscoveryRedirect(t *testing.T) {
	k := newPub(t)
	is := newIssuer(t, k)
	is.setDiscovery(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			http.Redirect(w, r, "/.well-known/openid-configuration?moved=1", http.StatusFound)
			return
		}
		w.Write([]byte(`{"issuer":"` + is.URL + `","jwks_uri":"` + is.URL + `/.well-known/jwks.json"}`))
	})
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(kidOf(t, k)); err != nil {
		t.Fatalf("Key = %v", err)
	}
	is.wantRequests(t, 2, 1)
}

func TestJWKSRefused(t *testing.T) {
	k := newPub(t)
	kid := kidOf(t, k)
	doc, err := jwks.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	plain := newIssuer(t, k)
	body := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
	}
	for _, tc := range []struct {
		name string
		tls  bool
		jwks http.HandlerFunc
		want error
	}{
		{name: "garbage", jwks: body([]byte("<html>")), want: jwks.ErrInvalid},
		{name: "empty set", jwks: body([]byte(`{"keys":[]}`)), want: jwks.ErrInvalid},
		{name: "private key", jwks: body(bytes.Replace(doc, []byte(`"kty"`), []byte(`"d":"`+base64.RawURLEncoding.EncodeToString(make([]byte, 32))+`","kty"`), 1)), want: jwks.ErrInvalid},
		{name: "wrong kid", jwks: body(bytes.Replace(doc, []byte(kid), []byte(kidOf(t, newPub(t))), 1)), want: jwks.ErrInvalid},
		{name: "oversized", jwks: body(append(bytes.Clone(doc), bytes.Repeat([]byte(" "), jwks.MaxSize)...)), want: jwks.ErrInvalid},
		{name: "status 500", jwks: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }, want: jwks.ErrFetch},
		{name: "status 204", jwks: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, want: jwks.ErrFetch},
		{name: "redirect off https", tls: true, jwks: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL+"/.well-known/jwks.json", http.StatusFound)
		}, want: jwks.ErrFetch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer
			if tc.tls {
				is = newTLSIssuer
			}
			srv := is(t, k)
			srv.setJWKS(tc.jwks)
			s, err := keysource.New(context.Background(), keysource.Config{Issuer: srv.URL, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			checkUnavailable(t, s, kid, tc.want)
		})
	}
}

func TestIssuerUnreachable(t *testing.T) {
	k := newPub(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	for _, cfg := range []keysource.Config{
		{Issuer: u},
		{Issuer: u, JWKSURL: u + "/.well-known/jwks.json"},
	} {
		s, err := keysource.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Ready() || s.LastError() == nil {
			t.Fatalf("Ready = %v, LastError = %v", s.Ready(), s.LastError())
		}
		if _, err := s.Key(kidOf(t, k)); !errors.Is(err, keysource.ErrUnavailable) {
			t.Fatalf("Key = %v, want ErrUnavailable", err)
		}
	}
}

func TestNewContext(t *testing.T) {
	k := newPub(t)
	is := newIssuer(t, k)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := keysource.New(ctx, keysource.Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, s, kidOf(t, k), context.Canceled)
}

func TestFile(t *testing.T) {
	k1, k2 := newPub(t), newPub(t)
	doc, err := jwks.Marshal(k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: "https://issuer.example", File: file, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Ready() || s.LastError() != nil {
		t.Fatalf("Ready = %v, LastError = %v", s.Ready(), s.LastError())
	}
	for _, k := range []ed25519.PublicKey{k1, k2} {
		if pub, err := s.Key(kidOf(t, k)); err != nil || !pub.Equal(k) {
			t.Fatalf("Key = %x, %v", pub, err)
		}
	}
	// The file is read once.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"", "nope", kidOf(t, newPub(t))} {
		if _, err := s.Key(kid); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatalf("Key(%q) = %v, want ErrUnknownKey", kid, err)
		}
	}
	if _, err := s.Key(kidOf(t, k1)); err != nil {
		t.Fatalf("Key = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file string
		want error
	}{
		"missing": {filepath.Join(dir, "missing.json"), fs.ErrNotExist},
		"invalid": {bad, jwks.ErrInvalid},
	} {
		s, err := keysource.New(context.Background(), keysource.Config{Issuer: "i", File: tc.file})
		if !errors.Is(err, tc.want) || s != nil {
			t.Errorf("%s: New = %v, %v; want %v", name, s, err, tc.want)
		}
	}
}

// TestRotation checks that a new kid is fetched on demand, exactly once,
// once MinInterval has passed, and that a removed kid is forgotten.
func TestRotation(t *testing.T) {
	k1, k2 := newPub(t), newPub(t)
	kid1, kid2 := kidOf(t, k1), kidOf(t, k2)
	is := newIssuer(t, k1)
	clk := newClock()
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, Now: clk.Now, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	is.wantRequests(t, 1, 1)

	is.setKeys(k1, k2)
	clk.Advance(keysource.DefaultMinInterval - time.Nanosecond)
	if _, err := s.Key(kid2); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("Key(new kid) within MinInterval = %v, want ErrUnknownKey", err)
	}
	is.wantRequests(t, 1, 1)

	clk.Advance(time.Nanosecond)
	if pub, err := s.Key(kid2); err != nil || !pub.Equal(k2) {
		t.Fatalf("Key(new kid) = %x, %v", pub, err)
	}
	is.wantRequests(t, 2, 2)
	for range 10 {
		for _, kid := range []string{kid1, kid2} {
			if _, err := s.Key(kid); err != nil {
				t.Fatalf("Key = %v", err)
			}
		}
	}
	is.wantRequests(t, 2, 2)

	// The issuer retires k1: the next fetch forgets it.
	is.setKeys(k2)
	clk.Advance(keysource.DefaultMinInterval)
	if _, err := s.Key("garbage"); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("Key(garbage) = %v, want ErrUnknownKey", err)
	}
	is.wantRequests(t, 3, 3)
	if _, err := s.Key(kid1); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("Key(retired kid) = %v, want ErrUnknownKey", err)
	}
	if _, err := s.Key(kid2); err != nil {
		t.Fatalf("Key = %v", err)
	}
	is.wantRequests(t, 3, 3)
}

func randomKid(t testing.TB) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestGarbageKids checks that lookups of unknown kids fetch at most once per
// MinInterval.
func TestGarbageKids(t *testing.T) {
	k := newPub(t)
	is := newIssuer(t, k)
	clk := newClock()
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, Now: clk.Now, MinInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(n int) {
		t.Helper()
		for range n {
			kid := randomKid(t)
			_, err := s.Key(kid)
			if !errors.Is(err, jwks.ErrUnknownKey) || errors.Is(err, keysource.ErrUnavailable) {
				t.Fatalf("Key(%q) = %v, want ErrUnknownKey", kid, err)
			}
		}
	}
	// Right after the first fetch: none.
	lookup(1000)
	is.wantRequests(t, 1, 1)
	// Once MinInterval has passed: one, for 1000 lookups within the next.
	clk.Advance(time.Minute)
	lookup(500)
	clk.Advance(time.Minute - time.Nanosecond)
	lookup(500)
	is.wantRequests(t, 2, 2)
	// A clock that goes back costs one fetch, not one per lookup.
	clk.Advance(-time.Hour)
	lookup(1000)
	is.wantRequests(t, 3, 3)
	if _, err := s.Key(kidOf(t, k)); err != nil {
		t.Fatalf("Key = %v", err)
	}
}

// TestConcurrentMisses checks that concurrent lookups of a new kid share one
// fetch.
func TestConcurrentMisses(t *testing.T) {
	k1, k2 := newPub(t), newPub(t)
	kid2 := kidOf(t, k2)
	is := newIssuer(t, k1)
	clk := newClock()
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	is.setKeys(k1, k2)
	clk.Advance(keysource.DefaultMinInterval)
	entered, release := is.hold()
	defer release()

	const n = 64
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			kid := kid2
			if i%2 == 1 {
				kid = randomKid(t)
			}
			pub, err := s.Key(kid)
			switch {
			case i%2 == 0 && (err != nil || !pub.Equal(k2)):
				errs <- err
			case i%2 == 1 && !errors.Is(err, jwks.ErrUnknownKey):
				errs <- err
			}
		})
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch started")
	}
	time.Sleep(50 * time.Millisecond) // let the other lookups pile up
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Key = %v", err)
	}
	is.wantRequests(t, 2, 2)
}

// TestIssuerDownAtStart checks that a source made while its issuer is down
// refuses every kid with ErrUnavailable, and that Run fetches the keys once
// the issuer is up.
func TestIssuerDownAtStart(t *testing.T) {
	k := newPub(t)
	kid := kidOf(t, k)
	is := newIssuer(t, k)
	is.setDown(true)
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, MinInterval: keysource.MinMinInterval, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, s, kid, keysource.ErrDiscovery)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	}()

	is.setDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the issuer came up; LastError = %v", s.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pub, err := s.Key(kid); err != nil || !pub.Equal(k) {
		t.Fatalf("Key = %x, %v", pub, err)
	}
	if err := s.LastError(); err != nil {
		t.Fatalf("LastError = %v", err)
	}
}

// TestFailedRefreshKeepsKeys checks that a failed refresh keeps the last good
// keys and reports its error.
func TestFailedRefreshKeepsKeys(t *testing.T) {
	k := newPub(t)
	kid := kidOf(t, k)
	is := newIssuer(t, k)
	clk := newClock()
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL, Now: clk.Now, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func()
		want   error
	}{
		{"issuer down", func() { is.setDown(true) }, keysource.ErrDiscovery},
		{"JWKS garbage", func() {
			is.setJWKS(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":"nope"}`)) })
		}, jwks.ErrInvalid},
		{"JWKS 500", func() {
			is.setJWKS(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "", 500) })
		}, jwks.ErrFetch},
		{"discovery names another issuer", func() {
			is.setDiscovery(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"issuer":"https://evil.example","jwks_uri":"` + is.URL + `/.well-known/jwks.json"}`))
			})
		}, keysource.ErrDiscovery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			clk.Advance(keysource.DefaultMinInterval)
			before := is.discoveries.Load()
			if _, err := s.Key("rotated?"); !errors.Is(err, jwks.ErrUnknownKey) || errors.Is(err, keysource.ErrUnavailable) {
				t.Fatalf("Key(unknown) = %v, want ErrUnknownKey", err)
			}
			if is.discoveries.Load() != before+1 {
				t.Fatal("no refresh was attempted")
			}
			if !s.Ready() || !errors.Is(s.LastError(), tc.want) {
				t.Fatalf("Ready = %v, LastError = %v; want true, %v", s.Ready(), s.LastError(), tc.want)
			}
			if pub, err := s.Key(kid); err != nil || !pub.Equal(k) {
				t.Fatalf("Key = %x, %v", pub, err)
			}

			// Repaired: the next refresh clears the error.
			is.setDown(false)
			is.setJWKS(nil)
			is.setDiscovery(nil)
			clk.Advance(keysource.DefaultMinInterval)
			s.Key("rotated?")
			if err := s.LastError(); err != nil {
				t.Fatalf("LastError = %v after a good refresh", err)
			}
		})
	}
}

// TestKeyHitAllocs checks that a known kid is answered without allocating.
func TestKeyHitAllocs(t *testing.T) {
	k := newPub(t)
	kid := kidOf(t, k)
	is := newIssuer(t, k)
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Key(kid); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Key allocates %v times on a hit", n)
	}
}

func BenchmarkKeyHit(b *testing.B) {
	keys := make([]ed25519.PublicKey, 4)
	for i := range keys {
		keys[i] = newPub(b)
	}
	kid := kidOf(b, keys[2])
	is := newIssuer(b, keys...)
	s, err := keysource.New(context.Background(), keysource.Config{Issuer: is.URL})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Key(kid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Key(kid); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
