package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

func testTime() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC) }

const (
	devCLI     = "spiffe://dev.frostmint.local/dev/cli"
	paymentsCI = "spiffe://dev.frostmint.local/team/payments/ci"
	deployer   = "spiffe://dev.frostmint.local/ci/deployer"
	apiAud     = "https://api.example.com"
)

func mintInput(subject, audience string, ttl time.Duration, scopes ...string) Input {
	return Input{
		Caller:  Caller{Subject: subject, ClientID: "test-client", Kind: "x509-svid"},
		Request: Request{Audience: audience, Scopes: scopes, TTL: ttl},
		Time:    testTime(),
	}
}

// githubClaims are the claims of a GitHub Actions ID token of a push to main
// of frostmint/demo, the repository the default bundle allows.
func githubClaims() map[string]any {
	return map[string]any{
		"sub":              "repo:frostmint/demo:ref:refs/heads/main",
		"repository":       "frostmint/demo",
		"repository_owner": "frostmint",
		"ref":              "refs/heads/main",
		"workflow":         "deploy",
		"event_name":       "push",
		"job_workflow_ref": "frostmint/demo/.github/workflows/deploy.yml@refs/heads/main",
	}
}

// oidcInput is a request by an OIDC caller, named "<issuer>:<sub claim>"
// as the authenticator names it.
func oidcInput(issuer string, claims map[string]any, scopes ...string) Input {
	sub, _ := claims["sub"].(string)
	return Input{
		Caller: Caller{
			Subject:  issuer + ":" + sub,
			ClientID: "test-client",
			Kind:     "oidc",
			Issuer:   issuer,
			Claims:   claims,
		},
		Request: Request{Audience: apiAud, Scopes: scopes},
		Time:    testTime(),
	}
}

// githubInput is a GitHub Actions request with githubClaims changed by
// patch.
func githubInput(patch map[string]any, scopes ...string) Input {
	claims := githubClaims()
	for k, v := range patch {
		claims[k] = v
	}
	return oidcInput("github", claims, scopes...)
}

// k8sInput is a request by a Kubernetes service account.
func k8sInput(namespace, name string, scopes ...string) Input {
	return oidcInput("k8s", map[string]any{
		"sub": "system:serviceaccount:" + namespace + ":" + name,
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": name, "uid": "0b3c1f2e-6a4d-4c59-9a57-0d8f7e6b5a43"},
		},
	}, scopes...)
}

func newEngine(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// writeFiles writes files (relative path -> content) into a new temporary
// directory and returns it.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyDefaultBundle copies the embedded bundle, tests included, into a new
// temporary directory.
func copyDefaultBundle(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dir, DefaultBundle()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func defaultModule(t testing.TB) string {
	t.Helper()
	b, err := fs.ReadFile(DefaultBundle(), "mint.rego")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegoUnitTests(t *testing.T) {
	passed, failed, err := RunTests(context.Background(), DefaultBundle())
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if failed != 0 {
		t.Fatalf("%d Rego tests failed", failed)
	}
	if passed == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests passed", passed)
}

// TestBundleFormatted keeps the bundle in `opa fmt` style.
func TestBundleFormatted(t *testing.T) {
	files, err := fs.Glob(DefaultBundle(), "*.rego")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Rego files in the bundle: %v", err)
	}
	for _, name := range files {
		src, err := fs.ReadFile(DefaultBundle(), name)
		if err != nil {
			t.Fatal(err)
		}
		formatted, err := format.SourceWithOpts(name, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(formatted) != string(src) {
			t.Errorf("%s is not formatted as opa fmt would", name)
		}
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"p.rego": "package p\n\nx := 1\n",
		"p_test.rego": "package p_test\n\nimport data.p\n\n" +
			"test_ok if p.x == 1\n\ntest_bad if p.x == 2\n\ntodo_test_later if false\n",
	})
	passed, failed, err := RunTests(context.Background(), os.DirFS(dir))
	if !errors.Is(err, ErrTestsFailed) {
		t.Fatalf("err = %v, want ErrTestsFailed", err)
	}
	if passed != 1 || failed != 1 {
		t.Fatalf("passed, failed = %d, %d, want 1, 1", passed, failed)
	}
}

func TestRunTestsErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  error
	}{
		{"no modules", map[string]string{"README": "hi"}, ErrLoad},
		{"parse error", map[string]string{"p.rego": "package p\n\nx := \n"}, ErrCompile},
		{"unsafe builtin", map[string]string{"p.rego": "package p\n\nx := rand.intn(\"k\", 10)\n"}, ErrCompile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := RunTests(context.Background(), os.DirFS(writeFiles(t, tt.files)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRunTestsNoTests(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": "package p\n\nx := 1\n"})
	passed, failed, err := RunTests(context.Background(), os.DirFS(dir))
	if err != nil || passed != 0 || failed != 0 {
		t.Fatalf("RunTests = %d, %d, %v; want 0, 0, nil", passed, failed, err)
	}
}

func TestEvaluateDefault(t *testing.T) {
	e := newEngine(t)
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "dev cli demo",
			in:   mintInput(devCLI, apiAud, 5*time.Minute, "read", "write"),
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 900 * time.Second},
		},
		{
			name: "team scopes and generic scopes",
			in:   mintInput(paymentsCI, "payments-api", 0, "payments:refund", "read"),
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 900 * time.Second},
		},
		{
			name: "prod deploy needs approval",
			in:   mintInput(deployer, "deploy-api", time.Minute, "deploy:prod/payments"),
			want: Decision{
				Allow:            true,
				Reasons:          []string{`scope "deploy:prod/payments" requires approval`},
				MaxTTL:           600 * time.Second,
				RequiresApproval: true,
			},
		},
		{
			name: "staging deploy needs none",
			in:   mintInput(deployer, "deploy-api", time.Minute, "deploy:staging"),
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 600 * time.Second},
		},
		{
			name: "github actions demo repository",
			in:   githubInput(nil, "read", "deploy:staging"),
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 600 * time.Second},
		},
		{
			name: "github repository not allowed",
			in:   githubInput(map[string]any{"repository": "octo/app", "sub": "repo:octo/app:ref:refs/heads/main"}, "read"),
			want: Decision{Reasons: []string{"repository octo/app is not allowed"}, MaxTTL: 900 * time.Second},
		},
		{
			name: "github ref not allowed",
			in:   githubInput(map[string]any{"ref": "refs/heads/feature", "sub": "repo:frostmint/demo:ref:refs/heads/feature"}, "read"),
			want: Decision{Reasons: []string{"ref refs/heads/feature is not allowed for frostmint/demo"}, MaxTTL: 900 * time.Second},
		},
		{
			name: "github scope not allowed",
			in:   githubInput(nil, "deploy:prod"),
			want: Decision{
				Reasons:          []string{`caller github:repo:frostmint/demo:ref:refs/heads/main may not request scope "deploy:prod"`},
				MaxTTL:           600 * time.Second,
				RequiresApproval: true,
			},
		},
		{
			name: "kubernetes service account",
			in:   k8sInput("payments", "api", "payments:read", "payments:write"),
			want: Decision{Allow: true, Reasons: []string{}, MaxTTL: 900 * time.Second},
		},
		{
			name: "kubernetes other namespace",
			in:   k8sInput("default", "api", "payments:read"),
			want: Decision{Reasons: []string{"service account default/api is not allowed"}, MaxTTL: 900 * time.Second},
		},
		{
			name: "unknown issuer",
			in: func() Input {
				in := githubInput(nil, "read")
				in.Caller.Issuer = "gitlab"
				in.Caller.Subject = "gitlab:" + in.Caller.Subject[len("github:"):]
				return in
			}(),
			want: Decision{Reasons: []string{`OIDC issuer "gitlab" is not supported`}, MaxTTL: 900 * time.Second},
		},
		{
			name: "unknown caller kind",
			in: func() Input {
				in := mintInput(devCLI, apiAud, 0, "read")
				in.Caller.Kind = "jwt-svid"
				return in
			}(),
			want: Decision{Reasons: []string{`caller kind "jwt-svid" is not supported`}, MaxTTL: 900 * time.Second},
		},
		{
			name: "ttl above limit is noted",
			in:   mintInput(devCLI, apiAud, time.Hour, "read"),
			want: Decision{
				Allow:   true,
				Reasons: []string{"requested ttl 3600s exceeds the policy maximum 900s and will be capped"},
				MaxTTL:  900 * time.Second,
			},
		},
		{
			name: "untrusted trust domain",
			in:   mintInput("spiffe://evil.example/dev/cli", apiAud, 0, "read"),
			want: Decision{
				Reasons: []string{
					`caller spiffe://evil.example/dev/cli may not request scope "read"`,
					`trust domain "evil.example" is not trusted`,
				},
				MaxTTL: 900 * time.Second,
			},
		},
		{
			name: "not a spiffe id",
			in:   mintInput("CN=dev-cli", apiAud, 0, "read"),
			want: Decision{
				Reasons: []string{"caller subject must be a SPIFFE ID (spiffe://<trust-domain>/<path>)"},
				MaxTTL:  900 * time.Second,
			},
		},
		{
			name: "empty audience and no scopes",
			in:   mintInput(devCLI, "", 0),
			want: Decision{Reasons: []string{
				"at least one scope is required",
				"audience must be a non-empty string",
			}},
		},
		{
			name: "other team's scope",
			in:   mintInput(paymentsCI, "aud", 0, "payments:refund", "billing:refund"),
			want: Decision{
				Reasons: []string{`caller spiffe://dev.frostmint.local/team/payments/ci may not request scope "billing:refund"`},
				MaxTTL:  900 * time.Second,
			},
		},
		{
			name: "malformed scope",
			in:   mintInput(devCLI, apiAud, 0, "read", "Write"),
			want: Decision{
				Reasons: []string{"scope Write is malformed (want ^[a-z0-9][a-z0-9:._/-]{0,63}$)"},
				MaxTTL:  900 * time.Second,
			},
		},
		{
			name: "too many scopes",
			in: mintInput(paymentsCI, "aud", 0,
				"read", "write", "payments:1", "payments:2", "payments:3", "payments:4",
				"payments:5", "payments:6", "payments:7", "payments:8", "payments:9",
				"payments:10", "payments:11", "payments:12", "payments:13", "payments:14",
				"payments:15"),
			want: Decision{
				Reasons: []string{"too many scopes: 17 requested, at most 16 allowed"},
				MaxTTL:  900 * time.Second,
			},
		},
		{
			name: "negative ttl",
			in:   mintInput(devCLI, apiAud, -time.Second, "read"),
			want: Decision{
				Reasons: []string{"ttl_seconds must be a non-negative number"},
				MaxTTL:  900 * time.Second,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Evaluate(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecision(t, got, tt.want)
		})
	}
}

func assertDecision(t *testing.T, got, want Decision) {
	t.Helper()
	if got.Allow != want.Allow || got.MaxTTL != want.MaxTTL ||
		got.RequiresApproval != want.RequiresApproval || !slices.Equal(got.Reasons, want.Reasons) {
		t.Fatalf("decision:\n got %+v\nwant %+v", got, want)
	}
}

// TestEvaluateCustomData runs the default module with site data: another
// trust domain, admin grants, and the admin TTL limit lowering MaxTTL.
func TestEvaluateCustomData(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"mint.rego": defaultModule(t),
		"site.json": `{"frostmint": {"config": {
			"trust_domains": ["prod.example"],
			"scope_ttl_limits": [
				{"prefix": "admin:", "max_ttl_seconds": 300},
				{"prefix": "admin:keys", "max_ttl_seconds": 120}
			],
			"grants": {"spiffe://prod.example/ops/oncall": ["read", "admin:*"]}
		}}}`,
	})
	e := newEngine(t, WithFiles(filepath.Join(dir, "mint.rego")), WithFiles(filepath.Join(dir, "site.json")))
	const oncall = "spiffe://prod.example/ops/oncall"
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{"read", mintInput(oncall, "aud", 0, "read"), Decision{Allow: true, Reasons: []string{}, MaxTTL: 900 * time.Second}},
		{"admin lowers", mintInput(oncall, "aud", 0, "read", "admin:users"), Decision{Allow: true, Reasons: []string{}, MaxTTL: 300 * time.Second}},
		{"tightest prefix wins", mintInput(oncall, "aud", 0, "admin:users", "admin:keys/rotate"), Decision{Allow: true, Reasons: []string{}, MaxTTL: 120 * time.Second}},
		{"dev domain no longer trusted", mintInput(devCLI, apiAud, 0, "read"), Decision{
			Reasons: []string{
				`caller spiffe://dev.frostmint.local/dev/cli may not request scope "read"`,
				`trust domain "dev.frostmint.local" is not trusted`,
			},
			MaxTTL: 900 * time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Evaluate(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecision(t, got, tt.want)
		})
	}
}

// badPolicy answers well for the self-check's sample request and badly, in
// a different way per audience, for the others.
const badPolicy = `package frostmint.mint

good := {"allow": true, "reasons": [], "max_ttl_seconds": 60, "requires_approval": false}

aud := input.request.audience

decision := good if aud == "https://api.example.com"

decision := "allow" if aud == "not-an-object"

decision := object.remove(good, ["max_ttl_seconds"]) if aud == "missing-max-ttl"

decision := object.remove(good, ["allow"]) if aud == "missing-allow"

decision := object.remove(good, ["reasons"]) if aud == "missing-reasons"

decision := object.remove(good, ["requires_approval"]) if aud == "missing-approval"

decision := object.union(good, {"allow": "true"}) if aud == "allow-string"

decision := object.union(good, {"requires_approval": null}) if aud == "approval-null"

decision := object.union(good, {"reasons": "none"}) if aud == "reasons-string"

decision := object.union(good, {"reasons": [1]}) if aud == "reasons-number"

decision := object.union(good, {"max_ttl_seconds": -1}) if aud == "ttl-negative"

decision := object.union(good, {"max_ttl_seconds": "60"}) if aud == "ttl-string"

decision := object.union(good, {"max_ttl_seconds": 1e30}) if aud == "ttl-huge"

decision := object.union(good, {"allow": to_number(aud) > 0}) if aud == "builtin-error"

decision := good if aud == "conflict"

decision := object.union(good, {"allow": false}) if aud == "conflict"
`

func TestEvaluateFailsClosed(t *testing.T) {
	dir := writeFiles(t, map[string]string{"bad.rego": badPolicy})
	e := newEngine(t, WithFiles(dir))

	// The sample request is well-formed.
	if d, err := e.Evaluate(context.Background(), mintInput(devCLI, apiAud, 0, "read")); err != nil || !d.Allow {
		t.Fatalf("control: Evaluate = %+v, %v; want allowed", d, err)
	}

	for _, aud := range []string{
		"undefined",
		"not-an-object",
		"missing-max-ttl",
		"missing-allow",
		"missing-reasons",
		"missing-approval",
		"allow-string",
		"approval-null",
		"reasons-string",
		"reasons-number",
		"ttl-negative",
		"ttl-string",
		"ttl-huge",
		"builtin-error",
		"conflict",
	} {
		t.Run(aud, func(t *testing.T) {
			d, err := e.Evaluate(context.Background(), mintInput(devCLI, aud, 0, "read"))
			if !errors.Is(err, ErrEvaluation) {
				t.Fatalf("err = %v, want ErrEvaluation", err)
			}
			if d.Allow {
				t.Fatal("failed evaluation allowed")
			}
		})
	}
}

func TestEvaluateCanceledContext(t *testing.T) {
	e := newEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := e.Evaluate(ctx, mintInput(devCLI, apiAud, 0, "read"))
	if !errors.Is(err, ErrEvaluation) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrEvaluation and context.Canceled", err)
	}
	if d.Allow {
		t.Fatal("canceled evaluation allowed")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  error
	}{
		{"parse error", map[string]string{"p.rego": "package frostmint.mint\n\ndecision := {\n"}, ErrCompile},
		{"rego v0 syntax", map[string]string{"p.rego": "package frostmint.mint\n\nallow { true }\n"}, ErrCompile},
		{"unsafe variable", map[string]string{"p.rego": "package frostmint.mint\n\ndecision := x if x > 1\n"}, ErrCompile},
		{"type error", map[string]string{"p.rego": "package frostmint.mint\n\ndecision := startswith(1, 2)\n"}, ErrCompile},
		{"network builtin", map[string]string{"p.rego": "package frostmint.mint\n\nr := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1\"})\n"}, ErrCompile},
		{"random builtin", map[string]string{"p.rego": "package frostmint.mint\n\nr := rand.intn(\"x\", 2)\n"}, ErrCompile},
		{"uuid builtin", map[string]string{"p.rego": "package frostmint.mint\n\nr := uuid.rfc4122(\"x\")\n"}, ErrCompile},
		{"decision undefined", map[string]string{"p.rego": "package frostmint.mint\n\nallow := true\n"}, ErrEvaluation},
		{"decision malformed", map[string]string{"p.rego": "package frostmint.mint\n\ndecision := {\"allow\": true}\n"}, ErrEvaluation},
		{"only tests", map[string]string{"p_test.rego": "package frostmint.mint_test\n\ntest_x if true\n"}, ErrLoad},
		{"bad data json", map[string]string{"p.rego": defaultModuleText, "data.json": "{"}, ErrLoad},
		{"data not object", map[string]string{"p.rego": defaultModuleText, "data.json": "[1]"}, ErrLoad},
		{"conflicting data", map[string]string{
			"p.rego":      defaultModuleText,
			"data.json":   `{"a": {"b": 1}}`,
			"a/data.json": `{"b": 2}`,
		}, ErrLoad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), WithFiles(writeFiles(t, tt.files)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// defaultModuleText is a minimal well-formed policy.
const defaultModuleText = `package frostmint.mint

decision := {"allow": false, "reasons": ["no"], "max_ttl_seconds": 0, "requires_approval": false}
`

func TestNewLoadErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": defaultModuleText, "notes.txt": "x"})
	tests := []struct {
		name string
		opts []Option
		want []error
	}{
		{"missing path", []Option{WithFiles(filepath.Join(dir, "nope.rego"))}, []error{ErrLoad, fs.ErrNotExist}},
		{"no paths", []Option{WithFiles()}, []error{ErrLoad}},
		{"not a policy file", []Option{WithFiles(filepath.Join(dir, "notes.txt"))}, []error{ErrLoad}},
		{"no modules in dir", []Option{WithFiles(t.TempDir())}, []error{ErrLoad}},
		{"nil clock", []Option{WithClock(nil)}, []error{ErrLoad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.opts...)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestDataMountedByDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"p.rego": `package frostmint.mint

decision := {"allow": false, "reasons": [data.x.y.v, data.top], "max_ttl_seconds": 0, "requires_approval": false}
`,
		"data.json":     `{"top": "root"}`,
		"x/y/data.json": `{"v": "nested"}`,
		"x/other.json":  `{"ignored": true}`,
	})
	e := newEngine(t, WithFiles(dir))
	d, err := e.Evaluate(context.Background(), mintInput(devCLI, apiAud, 0, "read"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nested", "root"}; !slices.Equal(d.Reasons, want) {
		t.Fatalf("reasons = %q, want %q", d.Reasons, want)
	}
}

// echoPolicy puts the rendered input and the Rego clock into reasons.
const echoPolicy = `package frostmint.mint

decision := {
	"allow": false,
	"reasons": [json.marshal(input), sprintf("%d", [time.now_ns()])],
	"max_ttl_seconds": 0,
	"requires_approval": false,
}
`

func TestInputRendering(t *testing.T) {
	clock := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEngine(t, WithFiles(writeFiles(t, map[string]string{"echo.rego": echoPolicy})),
		WithClock(func() time.Time { return clock }))

	loc := time.FixedZone("X", 3600)
	tests := []struct {
		name    string
		in      Input
		want    string
		wantNow int64
	}{
		{
			name: "full",
			in: Input{
				Caller: Caller{
					Subject:  devCLI,
					ClientID: "cli",
					Kind:     "oidc",
					Issuer:   "github",
					Claims:   map[string]any{"groups": []string{"a", "b"}, "n": 1},
				},
				Request:  Request{Audience: apiAud, Scopes: []string{"read", "write"}, TTL: 1500 * time.Millisecond},
				Time:     time.Date(2026, 3, 4, 6, 6, 7, 890, loc),
				SignerID: 3,
			},
			want: `{
				"caller": {"subject": "spiffe://dev.frostmint.local/dev/cli", "client_id": "cli", "kind": "oidc",
				           "issuer": "github", "claims": {"groups": ["a", "b"], "n": 1}},
				"request": {"audience": "https://api.example.com", "scopes": ["read", "write"], "ttl_seconds": 1.5},
				"time": "2026-03-04T05:06:07.00000089Z",
				"time_unix": 1772600767,
				"signer_id": 3
			}`,
			wantNow: time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC).UnixNano(),
		},
		{
			name: "zero values use the clock",
			in:   Input{},
			want: `{
				"caller": {"subject": "", "client_id": "", "kind": ""},
				"request": {"audience": "", "scopes": [], "ttl_seconds": 0},
				"time": "2027-01-01T00:00:00Z",
				"time_unix": 1798761600,
				"signer_id": 0
			}`,
			wantNow: clock.UnixNano(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Evaluate(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Reasons) != 2 {
				t.Fatalf("reasons = %q", d.Reasons)
			}
			var got, want any
			if err := json.Unmarshal([]byte(d.Reasons[0]), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("input:\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if want := json.Number(jsonInt(tt.wantNow)); d.Reasons[1] != string(want) {
				t.Fatalf("time.now_ns() = %s, want %s", d.Reasons[1], want)
			}
		})
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestHash(t *testing.T) {
	def := newEngine(t).Hash()
	if len(def) != 64 {
		t.Fatalf("Hash() = %q, want 64 hex digits", def)
	}
	if again := newEngine(t).Hash(); again != def {
		t.Fatalf("Hash not stable: %s vs %s", def, again)
	}

	// A copy of the bundle on disk (test modules included, and ignored)
	// is the same bundle.
	dir := copyDefaultBundle(t)
	if got := newEngine(t, WithFiles(dir)).Hash(); got != def {
		t.Fatalf("WithFiles(copy of bundle).Hash() = %s, want %s", got, def)
	}

	// Adding tests does not change it.
	extraTest := filepath.Join(dir, "extra_test.rego")
	if err := os.WriteFile(extraTest, []byte("package x_test\n\ntest_x if true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newEngine(t, WithFiles(dir)).Hash(); got != def {
		t.Fatalf("a test module changed the hash")
	}

	// Changing a module or the data does.
	seen := map[string]string{def: "default"}
	edit := func(name, file, appended string) {
		t.Helper()
		d := copyDefaultBundle(t)
		p := filepath.Join(d, file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(b, appended...), 0o644); err != nil {
			t.Fatal(err)
		}
		h := newEngine(t, WithFiles(d)).Hash()
		if prev, dup := seen[h]; dup {
			t.Fatalf("%s: hash %s equals that of %s", name, h, prev)
		}
		seen[h] = name
	}
	edit("module comment", "mint.rego", "# comment\n")
	edit("module rule", "mint.rego", "extra := 1\n")
	edit("data whitespace", "data.json", "\n")
}

func TestConcurrentEvaluate(t *testing.T) {
	e := newEngine(t)
	allowed := mintInput(devCLI, apiAud, 0, "read", "write")
	denied := mintInput("spiffe://evil.example/x", apiAud, 0, "read")
	const goroutines, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				in, want := allowed, true
				if (g+i)%2 == 1 {
					in, want = denied, false
				}
				in.SignerID = g
				d, err := e.Evaluate(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				if d.Allow != want {
					errs <- errors.New("wrong decision under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	// Without the memo: this measures evaluating the policy (see
	// BenchmarkEvaluateMemoized for a request asked again).
	e := newEngine(b, WithoutMemo())
	in := mintInput(paymentsCI, apiAud, 5*time.Minute, "payments:refund", "read", "write")
	ctx := context.Background()
	for b.Loop() {
		d, err := e.Evaluate(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("Evaluate = %+v, %v", d, err)
		}
	}
}
