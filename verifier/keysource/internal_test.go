package keysource

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzDiscovery checks that parseDiscovery never panics, that every error
// wraps ErrDiscovery, and that whatever it accepts is a document that
// encoding/json reads to the same issuer and jwks_uri, the issuer being the
// expected one and the jwks_uri an acceptable URL, https unless the issuer
// is plain http.
func FuzzDiscovery(f *testing.F) {
	const (
		iss   = "https://issuer.example"
		local = "http://127.0.0.1:8080"
	)
	for _, seed := range []struct{ doc, issuer string }{
		{`{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/.well-known/jwks.json"}`, iss},
		{`{"issuer":"https://issuer.example","jwks_uri":"https://keys.example/jwks","response_types_supported":["code"],"x":{"issuer":1}}`, iss},
		{`{"issuer":"http://127.0.0.1:8080","jwks_uri":"http://localhost:8080/jwks"}`, local},
		{`{"issuer":"http://127.0.0.1:8080","jwks_uri":"https://[::1]/jwks"}`, local},
		{`{"issuer":"https://issuer.example","jwks_uri":"http://127.0.0.1/jwks"}`, iss},
		{`{"issuer":"https://issuer.example/","jwks_uri":"https://issuer.example/jwks"}`, iss},
		{`{"issuer":"https://evil.example","issuer":"https://issuer.example","jwks_uri":"https://issuer.example/jwks"}`, iss},
		{`{"issuer":"https://issuer.example","jwks_uri":"https://u:p@issuer.example/jwks"}`, iss},
		{`{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/jwks#f"}`, iss},
		{`{"issuer":"https://issuer.example","jwks_uri":"/jwks"}`, iss},
		{`{"issuer":"https:\/\/issuer.example","jwks_uri":"https:\u002f\u002fissuer.example/jwks"}`, iss},
		{`{"issuer":null,"jwks_uri":"https://issuer.example/jwks"}`, iss},
		{` {"issuer" : "https://issuer.example" , "jwks_uri" : "https://i.example/j"} `, iss},
		{`[]`, iss},
		{`{}{}`, iss},
		{"{\"issuer\":\"\xff\"}", iss},
	} {
		f.Add([]byte(seed.doc), seed.issuer)
	}
	f.Fuzz(func(t *testing.T, data []byte, issuer string) {
		u, err := parseDiscovery(data, issuer)
		if err != nil {
			if !errors.Is(err, ErrDiscovery) {
				t.Fatalf("parseDiscovery error %v does not wrap ErrDiscovery", err)
			}
			if u != "" {
				t.Fatalf("parseDiscovery returned %q with an error", u)
			}
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("parseDiscovery accepted what encoding/json refuses: %v", err)
		}
		if doc["issuer"] != issuer {
			t.Fatalf("accepted issuer %v, want %q", doc["issuer"], issuer)
		}
		if doc["jwks_uri"] != u {
			t.Fatalf("returned jwks_uri %q, document says %v", u, doc["jwks_uri"])
		}
		parsed, err := checkURL(u)
		if err != nil {
			t.Fatalf("returned jwks_uri %q that checkURL refuses: %v", u, err)
		}
		if parsed.Scheme != "https" {
			if iu, err := url.Parse(issuer); err != nil || iu.Scheme != "http" {
				t.Fatalf("plain http jwks_uri %q for issuer %q", u, issuer)
			}
			if !isLoopback(parsed.Hostname()) {
				t.Fatalf("plain http jwks_uri %q on a remote host", u)
			}
		}
		if parsed.User != nil || parsed.RawQuery != "" || parsed.Fragment != "" || strings.Contains(u, "#") {
			t.Fatalf("jwks_uri %q has user information, a query or a fragment", u)
		}
	})
}

func TestBackoff(t *testing.T) {
	const (
		minInterval = 30 * time.Second
		refresh     = 5 * time.Minute
	)
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, refresh},
		{1, minInterval},
		{2, 2 * minInterval},
		{3, 4 * minInterval},
		{4, 8 * minInterval},
		{5, refresh},
		{1 << 30, refresh},
	} {
		if got := backoff(tc.failures, minInterval, refresh); got != tc.want {
			t.Errorf("backoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
	// MinInterval over Refresh: never over Refresh.
	if got := backoff(1, time.Hour, refresh); got != refresh {
		t.Errorf("backoff with a long MinInterval = %s, want %s", got, refresh)
	}
}

func TestNextDelayJitter(t *testing.T) {
	s, err := newSource(Config{Issuer: "https://issuer.example"})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if d := s.nextDelay(); d < DefaultRefresh-DefaultRefresh/10 || d > DefaultRefresh {
			t.Fatalf("nextDelay = %s, want in [%s, %s]", d, DefaultRefresh-DefaultRefresh/10, DefaultRefresh)
		}
	}
}
