package policy

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/util"
)

func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := util.UnmarshalJSON([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func TestDecodeDecision(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    Decision
		wantErr bool
	}{
		{
			name: "allow",
			doc:  `{"allow": true, "reasons": [], "max_ttl_seconds": 300, "requires_approval": false}`,
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 5 * time.Minute},
		},
		{
			name: "deny with reasons",
			doc:  `{"allow": false, "reasons": ["a", "b"], "max_ttl_seconds": 0, "requires_approval": true}`,
			want: Decision{Reasons: []string{"a", "b"}, RequiresApproval: true},
		},
		{
			name: "fractional ttl",
			doc:  `{"allow": true, "reasons": [], "max_ttl_seconds": 1.5, "requires_approval": false}`,
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 1500 * time.Millisecond},
		},
		{
			name: "exponent ttl",
			doc:  `{"allow": true, "reasons": [], "max_ttl_seconds": 3e2, "requires_approval": false}`,
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 5 * time.Minute},
		},
		{
			name: "extra keys ignored",
			doc:  `{"allow": true, "reasons": [], "max_ttl_seconds": 1, "requires_approval": false, "x": 1}`,
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: time.Second},
		},
		{name: "null", doc: `null`, wantErr: true},
		{name: "array", doc: `[true]`, wantErr: true},
		{name: "bool", doc: `true`, wantErr: true},
		{name: "empty", doc: `{}`, wantErr: true},
		{name: "allow missing", doc: `{"reasons": [], "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "allow string", doc: `{"allow": "true", "reasons": [], "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "allow number", doc: `{"allow": 1, "reasons": [], "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "reasons missing", doc: `{"allow": true, "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "reasons null", doc: `{"allow": true, "reasons": null, "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "reasons object", doc: `{"allow": true, "reasons": {}, "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "reason not string", doc: `{"allow": true, "reasons": ["a", 2], "max_ttl_seconds": 1, "requires_approval": false}`, wantErr: true},
		{name: "ttl missing", doc: `{"allow": true, "reasons": [], "requires_approval": false}`, wantErr: true},
		{name: "ttl string", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": "1", "requires_approval": false}`, wantErr: true},
		{name: "ttl negative", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": -1, "requires_approval": false}`, wantErr: true},
		{name: "ttl negative fraction", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": -0.5, "requires_approval": false}`, wantErr: true},
		{name: "ttl overflow", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": 9223372037, "requires_approval": false}`, wantErr: true},
		{name: "ttl huge", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": 1e300, "requires_approval": false}`, wantErr: true},
		{name: "ttl beyond float", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": 1e400, "requires_approval": false}`, wantErr: true},
		{name: "approval missing", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": 1}`, wantErr: true},
		{name: "approval string", doc: `{"allow": true, "reasons": [], "max_ttl_seconds": 1, "requires_approval": "no"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeDecision(decodeJSON(t, tt.doc))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decodeDecision = %+v, want an error", got)
				}
				if got.Allow {
					t.Fatal("error with an allowing decision")
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeDecision: %v", err)
			}
			assertDecision(t, got, tt.want)
		})
	}
}

func FuzzDecodeDecision(f *testing.F) {
	f.Add(`{"allow": true, "reasons": [], "max_ttl_seconds": 300, "requires_approval": false}`)
	f.Add(`{"allow": false, "reasons": ["x"], "max_ttl_seconds": 0.000000001, "requires_approval": true}`)
	f.Add(`{"allow": true, "reasons": [], "max_ttl_seconds": 9223372036.854775807, "requires_approval": false}`)
	f.Add(`{"allow": true, "reasons": [], "max_ttl_seconds": -0, "requires_approval": false}`)
	f.Add(`{"allow": true}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, doc string) {
		var v any
		if err := util.UnmarshalJSON([]byte(doc), &v); err != nil {
			return
		}
		d, err := decodeDecision(v)
		if err != nil {
			if d.Allow {
				t.Fatal("error with an allowing decision")
			}
			return
		}
		if d.MaxTTL < 0 {
			t.Fatalf("negative MaxTTL %v from %s", d.MaxTTL, doc)
		}
		if d.Reasons == nil {
			t.Fatalf("nil reasons from %s", doc)
		}
	})
}

// FuzzEvaluateDefault checks properties of the default policy for arbitrary
// requests: it always reaches a well-formed decision, and whatever it allows
// satisfies the documented rules.
func FuzzEvaluateDefault(f *testing.F) {
	e := newEngine(f)
	f.Add(devCLI, apiAud, "read write", int64(300))
	f.Add(paymentsCI, "aud", "payments:refund read", int64(0))
	f.Add(deployer, "aud", "deploy:prod", int64(-1))
	f.Add("spiffe://dev.frostmint.local/team/a/b", "x", "a: a:b", int64(1e12))
	f.Add("spiffe://dev.frostmint.local/dev/cli/", " ", "", int64(1))
	f.Add("spiffe://dev.frostmint.local/\xff", "\x00", "read\xffwrite", int64(1))

	scopeRE := regexp.MustCompile(`^[a-z0-9][a-z0-9:._/-]{0,63}$`)
	f.Fuzz(func(t *testing.T, subject, audience, scopeList string, ttlNanos int64) {
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, " ")
		}
		in := mintInput(subject, audience, time.Duration(ttlNanos), scopes...)
		d, err := e.Evaluate(context.Background(), in)
		if err != nil {
			t.Fatalf("Evaluate(%q, %q, %q): %v", subject, audience, scopes, err)
		}
		if !d.Allow {
			if len(d.Reasons) == 0 {
				t.Fatal("denied without reasons")
			}
			return
		}
		if !strings.HasPrefix(subject, "spiffe://dev.frostmint.local/") {
			t.Fatalf("allowed untrusted subject %q", subject)
		}
		if strings.TrimSpace(audience) == "" {
			t.Fatalf("allowed empty audience %q", audience)
		}
		if len(scopes) == 0 || len(scopes) > 16 {
			t.Fatalf("allowed %d scopes", len(scopes))
		}
		for _, s := range scopes {
			if !scopeRE.MatchString(s) {
				t.Fatalf("allowed malformed scope %q", s)
			}
		}
		if ttlNanos < 0 {
			t.Fatalf("allowed negative ttl")
		}
		if d.MaxTTL <= 0 || d.MaxTTL > 15*time.Minute {
			t.Fatalf("allowed with MaxTTL %v", d.MaxTTL)
		}
		approval := slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, "deploy:prod") })
		if d.RequiresApproval != approval {
			t.Fatalf("RequiresApproval = %v for scopes %q", d.RequiresApproval, scopes)
		}
	})
}

// FuzzEvaluateOIDC checks the default policy's OIDC rules for arbitrary
// tokens: only the shipped example identities (GitHub frostmint/demo on
// refs/heads/main, Kubernetes payments/api) are ever allowed, only with
// their scopes, and only when the subject is "<issuer>:<sub claim>".
func FuzzEvaluateOIDC(f *testing.F) {
	e := newEngine(f)
	f.Add("github", "github:repo:frostmint/demo:ref:refs/heads/main", "repo:frostmint/demo:ref:refs/heads/main", "frostmint/demo", "refs/heads/main", "", "read deploy:staging")
	f.Add("github", "github:x", "x", "frostmint/demo", "refs/heads/main", "prod", "read")
	f.Add("github", "github:x", "x", "frostmint/demo", "refs/heads/main*", "", "deploy:staging2")
	f.Add("k8s", "k8s:system:serviceaccount:payments:api", "system:serviceaccount:payments:api", "payments", "api", "", "payments:read payments:write")
	f.Add("k8s", "k8s:system:serviceaccount:payments:api", "system:serviceaccount:payments:api", "payments", "*", "", "payments:read")
	f.Add("k8s", "k8s:system:serviceaccount:payments/api:", "system:serviceaccount:payments/api:", "payments/api", "", "", "payments:read")
	f.Add("gitlab", "gitlab:x", "x", "frostmint/demo", "refs/heads/main", "", "read")

	f.Fuzz(func(t *testing.T, issuer, subject, sub, a, b, env, scopeList string) {
		claims := map[string]any{"sub": sub}
		switch issuer {
		case "github":
			claims["repository"], claims["ref"] = a, b
			if env != "" {
				claims["environment"] = env
			}
		case "k8s":
			claims["kubernetes.io"] = map[string]any{"namespace": a, "serviceaccount": map[string]any{"name": b}}
		}
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, " ")
		}
		in := oidcInput(issuer, claims, scopes...)
		in.Caller.Subject = subject
		d, err := e.Evaluate(context.Background(), in)
		if err != nil {
			t.Fatalf("Evaluate(%+v): %v", in.Caller, err)
		}
		if !d.Allow {
			if len(d.Reasons) == 0 {
				t.Fatal("denied without reasons")
			}
			return
		}
		if subject != issuer+":"+sub {
			t.Fatalf("allowed subject %q for sub %q of %q", subject, sub, issuer)
		}
		var allowed []string
		switch issuer {
		case "github":
			if a != "frostmint/demo" || b != "refs/heads/main" {
				t.Fatalf("allowed GitHub repository %q ref %q", a, b)
			}
			allowed = []string{"read", "deploy:staging"}
		case "k8s":
			if a != "payments" || b != "api" || sub != "system:serviceaccount:payments:api" {
				t.Fatalf("allowed service account %q/%q with sub %q", a, b, sub)
			}
			allowed = []string{"payments:read", "payments:write"}
		default:
			t.Fatalf("allowed issuer %q", issuer)
		}
		if len(scopes) == 0 {
			t.Fatal("allowed no scopes")
		}
		for _, s := range scopes {
			if !slices.Contains(allowed, s) {
				t.Fatalf("allowed scope %q for %s", s, issuer)
			}
		}
		if d.MaxTTL <= 0 || d.MaxTTL > 15*time.Minute || d.RequiresApproval {
			t.Fatalf("allowed with MaxTTL %v, approval %v", d.MaxTTL, d.RequiresApproval)
		}
	})
}
