package oidctest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/frostmint/frostmint/verifier/evidence/oidctest"
)

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestIssuer cross-checks the issuer with go-jose's jwt package, as a
// relying party that knows nothing of frostmint would: discovery, JWKS,
// signature, claims.
func TestIssuer(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			is, err := oidctest.Start(alg)
			if err != nil {
				t.Fatal(err)
			}
			defer is.Close()
			if !strings.HasPrefix(is.URL, "http://127.0.0.1:") {
				t.Fatalf("URL %q", is.URL)
			}
			var disc struct {
				Issuer  string `json:"issuer"`
				JWKSURI string `json:"jwks_uri"`
			}
			get(t, is.URL+"/.well-known/openid-configuration", &disc)
			if disc.Issuer != is.URL || disc.JWKSURI != is.URL+"/jwks" {
				t.Fatalf("discovery %+v", disc)
			}
			var set jose.JSONWebKeySet
			get(t, disc.JWKSURI, &set)
			if len(set.Keys) != 1 || set.Keys[0].KeyID != is.KeyID() || set.Keys[0].Algorithm != alg || !set.Keys[0].IsPublic() {
				t.Fatalf("JWKS %+v", set)
			}
			if is.JWKSRequests() != 1 || is.DiscoveryRequests() != 1 {
				t.Fatalf("request counts %d, %d", is.JWKSRequests(), is.DiscoveryRequests())
			}

			gh, err := is.GitHubToken("aud-1", "octo/app", "refs/heads/main", "ci", "prod", 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.ParseSigned(gh, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			if h := tok.Headers[0]; h.KeyID != is.KeyID() || h.ExtraHeaders["typ"] != "JWT" {
				t.Fatalf("header %+v", h)
			}
			var std jwt.Claims
			var extra map[string]any
			if err := tok.Claims(set, &std, &extra); err != nil {
				t.Fatal(err)
			}
			if err := std.Validate(jwt.Expected{Issuer: is.URL, AnyAudience: jwt.Audience{"aud-1"}, Time: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if std.Subject != "repo:octo/app:environment:prod" || std.ID == "" || extra["repository_owner"] != "octo" ||
				extra["environment"] != "prod" {
				t.Fatalf("claims %+v %v", std, extra)
			}

			k8s, err := is.KubernetesToken("aud-2", "ns", "sa", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			tok, _ = jwt.ParseSigned(k8s, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			extra = nil
			if err := tok.Claims(set, &std, &extra); err != nil {
				t.Fatal(err)
			}
			kio, _ := extra["kubernetes.io"].(map[string]any)
			if std.Subject != "system:serviceaccount:ns:sa" || kio["namespace"] != "ns" || !std.Audience.Contains("aud-2") {
				t.Fatalf("claims %+v %v", std, extra)
			}

			// After rotation the old key is gone and new tokens use the new one.
			old := is.KeyID()
			if err := is.RotateKey(); err != nil {
				t.Fatal(err)
			}
			get(t, disc.JWKSURI, &set)
			if len(set.Keys) != 1 || set.Keys[0].KeyID == old || set.Keys[0].KeyID != is.KeyID() {
				t.Fatalf("JWKS after rotation %+v", set)
			}
			if err := tok.Claims(set, &std); err == nil {
				t.Fatal("a token of the old key verifies with the new set")
			}

			is.SetUnavailable(true)
			resp, err := http.Get(disc.JWKSURI)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("unavailable JWKS: %s", resp.Status)
			}
		})
	}
	if _, err := oidctest.Start("HS256"); err == nil {
		t.Fatal("Start(HS256) succeeded")
	}
}

func TestClosed(t *testing.T) {
	is, err := oidctest.Start("ES256")
	if err != nil {
		t.Fatal(err)
	}
	is.Close()
	if resp, err := http.Get(is.URL + "/jwks"); err == nil {
		resp.Body.Close()
		t.Fatal("a closed issuer still serves")
	}
}
