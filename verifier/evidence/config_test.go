package evidence_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

func TestConfigValidate(t *testing.T) {
	ca := newCA(t, "root")
	iss := func(edit func(o *evidence.OIDCIssuer)) []evidence.OIDCIssuer {
		o := evidence.OIDCIssuer{Name: "github", Issuer: "https://token.actions.githubusercontent.com", Audience: "frostmint"}
		if edit != nil {
			edit(&o)
		}
		return []evidence.OIDCIssuer{o}
	}
	for _, c := range []struct {
		name string
		cfg  evidence.Config
		want string // a part of the message; "" = valid
	}{
		{"roots only", evidence.Config{Roots: ca.pool()}, ""},
		{"oidc only", evidence.Config{OIDC: iss(nil)}, ""},
		{"everything", evidence.Config{Roots: ca.pool(), OIDC: iss(func(o *evidence.OIDCIssuer) {
			o.JWKS = "https://example.com/jwks?x=1"
			o.Algorithms = []string{"ES256", "RS256"}
			o.SubjectClaim = "email"
			o.ClientIDClaim = "azp"
		}), MaxAge: 10 * time.Minute, Leeway: 5 * time.Minute, MaxOIDCLifetime: 24 * time.Hour}, ""},
		{"loopback http issuer", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "http://127.0.0.1:8080" })}, ""},
		{"localhost http issuer", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "http://localhost:8080/x" })}, ""},
		{"IPv6 loopback issuer", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "http://[::1]:8080" })}, ""},
		{"jwks file", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.JWKS = "/etc/frostmint/jwks.json" })}, ""},

		{"nothing trusted", evidence.Config{}, "no evidence could ever verify"},
		{"empty root pool", evidence.Config{Roots: x509.NewCertPool()}, "root pool is empty"},
		{"negative max age", evidence.Config{Roots: ca.pool(), MaxAge: -1}, "max_age"},
		{"max age too long", evidence.Config{Roots: ca.pool(), MaxAge: 11 * time.Minute}, "max_age"},
		{"leeway too long", evidence.Config{Roots: ca.pool(), Leeway: time.Hour}, "leeway"},
		{"negative leeway", evidence.Config{Roots: ca.pool(), Leeway: -time.Second}, "leeway"},
		{"lifetime too long", evidence.Config{Roots: ca.pool(), MaxOIDCLifetime: 25 * time.Hour}, "max_oidc_lifetime"},
		{"no name", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Name = "" })}, "name"},
		{"upper-case name", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Name = "GitHub" })}, "name"},
		{"name with colon", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Name = "git:hub" })}, "name"},
		{"long name", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Name = strings.Repeat("a", 65) })}, "name"},
		{"reserved name", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Name = "spiffe" })}, "reserved"},
		{"no issuer", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "" })}, "issuer"},
		{"http issuer", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "http://issuer.example" })}, "loopback"},
		{"issuer with query", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "https://issuer.example/?a=b" })}, "query"},
		{"issuer with fragment", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "https://issuer.example/#a" })}, "plain URL"},
		{"issuer with user", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "https://u:p@issuer.example" })}, "user"},
		{"issuer not a URL", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Issuer = "issuer.example" })}, "https"},
		{"no audience", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Audience = "" })}, "audience"},
		{"audience with space", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Audience = "a b" })}, "audience"},
		{"http jwks", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.JWKS = "http://example.com/jwks" })}, "jwks"},
		{"unknown algorithm", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Algorithms = []string{"HS256"} })}, "algorithm"},
		{"none algorithm", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Algorithms = []string{"none"} })}, "algorithm"},
		{"repeated algorithm", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Algorithms = []string{"RS256", "RS256"} })}, "twice"},
		{"empty algorithms", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.Algorithms = []string{} })}, "algorithms"},
		{"bad subject claim", evidence.Config{OIDC: iss(func(o *evidence.OIDCIssuer) { o.SubjectClaim = "a\nb" })}, "subject_claim"},
		{"duplicate names", evidence.Config{OIDC: append(iss(nil), evidence.OIDCIssuer{Name: "github", Issuer: "https://b.example", Audience: "x"})}, "twice"},
		{"duplicate issuers", evidence.Config{OIDC: append(iss(nil), evidence.OIDCIssuer{Name: "gh2", Issuer: "https://token.actions.githubusercontent.com", Audience: "x"})}, "twice"},
		{"issuer extending another with a colon", evidence.Config{OIDC: []evidence.OIDCIssuer{
			{Name: "a", Issuer: "https://a.example/p", Audience: "x"},
			{Name: "b", Issuer: "https://a.example/p:jti:x", Audience: "x"},
		}}, "ambiguous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				_, err := evidence.New(t.Context(), c.cfg)
				if c.name == "jwks file" {
					// Valid, but New reads the file, which is missing.
					wantErr(t, err, evidence.ErrConfig)
				} else if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			wantErr(t, err, evidence.ErrConfig)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v does not mention %q", err, c.want)
			}
			_, nerr := evidence.New(t.Context(), c.cfg)
			wantErr(t, nerr, evidence.ErrConfig)
		})
	}
}

// TestConfigValidateAll: every problem is reported at once, each wrapping
// ErrConfig.
func TestConfigValidateAll(t *testing.T) {
	err := evidence.Config{
		MaxAge: -1, Leeway: time.Hour,
		OIDC: []evidence.OIDCIssuer{{Name: "Bad", Issuer: "http://x.example"}},
	}.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("%v is not a joined error", err)
	}
	errs := joined.Unwrap()
	if len(errs) != 5 { // leeway, max_age, name, issuer, audience
		t.Fatalf("%d problems reported, want 5: %v", len(errs), err)
	}
	for _, e := range errs {
		if !errors.Is(e, evidence.ErrConfig) {
			t.Fatalf("%v does not wrap ErrConfig", e)
		}
	}
}

func TestNewCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := evidence.New(ctx, evidence.Config{OIDC: []evidence.OIDCIssuer{{Name: "a", Issuer: "https://a.example", Audience: "x"}}})
	if err == nil {
		t.Fatal("New succeeded with a done context")
	}
}
