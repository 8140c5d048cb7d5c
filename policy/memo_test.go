package policy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/binding"
)

// rulePolicy is a policy whose allow rule is body: the decision's shape
// is fixed, so that only body decides whether it may be memoized.
func rulePolicy(body string) string {
	return `package frostmint.mint

default allow := false

allow if {
	` + body + `
}

decision := {"allow": allow, "reasons": [], "max_ttl_seconds": 0, "requires_approval": false}
`
}

func TestMemoizedOnlyWhenTimeless(t *testing.T) {
	if ok, why := newEngine(t).Memoized(); !ok {
		t.Fatalf("the default bundle is not memoized: it %s", why)
	}
	if ok, _ := newEngine(t, WithoutMemo()).Memoized(); ok {
		t.Fatal("WithoutMemo engine is memoized")
	}
	tests := []struct {
		name string
		body string
		why  string // "" if memoized
	}{
		{"caller and request only", `input.caller.kind == "x509-svid"
	count(input.request.scopes) > 0
	startswith(input.caller.subject, "spiffe://")`, ""},
		{"signer id", `input.signer_id >= 0`, ""},
		{"time", `input.time != ""`, "reads input.time"},
		{"time_unix", `input.time_unix > 0`, "reads input.time_unix"},
		{"whole input", `x := input
	x.caller.kind == "x509-svid"`, "input as a whole"},
		{"object.get on input", `object.get(input, "time_unix", 0) > 0`, "input as a whole"},
		{"computed key", `some k
	input[k]`, "computed key"},
		{"now", `time.now_ns() > 0`, "calls time.now_ns"},
		{"x509 verify uses the clock", `crypto.x509.parse_and_verify_certificates("")[0]`, "calls crypto.x509.parse_and_verify_certificates"},
		{"with input", `f with input as {"caller": {"kind": "x"}}`, "input as a whole"},
		{"with data", `f with data.frostmint.mint.kind as "x"`, "uses with"},
		// The compiler erases print statements: nothing is called.
		{"print", `print("hi")
	input.signer_id >= 0`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := rulePolicy(tt.body)
			switch tt.name {
			case "with input":
				src += "\nf if input.caller.kind == \"x\"\n"
			case "with data":
				src += "\nkind := \"y\"\n\nf if kind == \"x\"\n"
			}
			e := newEngine(t, WithFiles(writeFiles(t, map[string]string{"p.rego": src})))
			ok, why := e.Memoized()
			if tt.why == "" {
				if !ok {
					t.Fatalf("not memoized: the policy %s", why)
				}
				return
			}
			if ok || !strings.Contains(why, tt.why) {
				t.Fatalf("Memoized() = %v, %q; want false, %q", ok, why, tt.why)
			}
		})
	}
}

// TestMemoDecidesAsEvaluation: a memoized engine returns, for every input
// and on every call, what evaluating returns.
func TestMemoDecidesAsEvaluation(t *testing.T) {
	memo, eval := newEngine(t), newEngine(t, WithoutMemo())
	bound := mintInput(devCLI, apiAud, 0, "read")
	bound.Request.Binding = &binding.Binding{Method: "POST", Authority: "api.example.com", Path: "/pay"}
	signer := mintInput(paymentsCI, apiAud, 5*time.Minute, "payments:refund")
	signer.SignerID = 2
	inputs := []Input{
		mintInput(devCLI, apiAud, 0, "read"),
		mintInput(devCLI, apiAud, 0, "read", "write"),
		mintInput(devCLI, apiAud, 0, "admin:all"),
		mintInput(devCLI, "", 0, "read"),
		mintInput(paymentsCI, apiAud, 5*time.Minute, "payments:refund", "read"),
		mintInput(paymentsCI, apiAud, 20*time.Minute, "payments:refund"),
		mintInput(deployer, apiAud, 0, "deploy:prod-eu"),
		mintInput("spiffe://untrusted.example/x", apiAud, 0, "read"),
		githubInput(nil, "read"),
		githubInput(map[string]any{"ref": "refs/heads/feature"}, "read"),
		k8sInput("payments", "api", "payments:read"),
		k8sInput("payments", "worker", "payments:read"),
		bound, signer,
	}
	for round := range 3 {
		for i, in := range inputs {
			in.Time = testTime().Add(time.Duration(round) * time.Minute)
			got, err := memo.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := eval.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, input %d: memoized %+v, evaluated %+v", round, i, got, want)
			}
			// A caller may change the reasons it gets: the next round
			// must still get the policy's.
			if len(got.Reasons) > 0 {
				got.Reasons[0] = "changed by the caller"
			}
			_ = append(got.Reasons, "appended by the caller")
		}
	}
}

// TestTimeDependentPolicyNotMemoized: a policy that reads the time decides
// anew at each time, the rest of the input being the same.
func TestTimeDependentPolicyNotMemoized(t *testing.T) {
	cutoff := testTime().Unix()
	src := rulePolicy(fmt.Sprintf("input.time_unix < %d", cutoff))
	e := newEngine(t, WithFiles(writeFiles(t, map[string]string{"p.rego": src})))
	in := mintInput(devCLI, apiAud, 0, "read")
	for _, tt := range []struct {
		at    time.Time
		allow bool
	}{
		{testTime().Add(-time.Minute), true},
		{testTime().Add(time.Minute), false},
		{testTime().Add(-time.Hour), true},
	} {
		in.Time = tt.at
		d, err := e.Evaluate(context.Background(), in)
		if err != nil || d.Allow != tt.allow {
			t.Fatalf("at %s: %+v, %v; want allow %v", tt.at, d, err, tt.allow)
		}
	}
}

// TestMemoKeyDistinguishes: inputs that differ in anything but the time
// have different keys; the time alone does not change the key.
func TestMemoKeyDistinguishes(t *testing.T) {
	base := func() Input {
		in := githubInput(nil, "read", "write")
		in.Request.TTL = 5 * time.Minute
		in.Request.Binding = &binding.Binding{Method: "POST", Authority: "a", Path: "/p", BodySHA256: "x"}
		in.SignerID = 1
		return in
	}
	changes := map[string]func(*Input){
		"subject":       func(in *Input) { in.Caller.Subject += "x" },
		"client id":     func(in *Input) { in.Caller.ClientID += "x" },
		"kind":          func(in *Input) { in.Caller.Kind = "x509-svid" },
		"issuer":        func(in *Input) { in.Caller.Issuer = "k8s" },
		"claim":         func(in *Input) { in.Caller.Claims["ref"] = "refs/heads/dev" },
		"claim type":    func(in *Input) { in.Caller.Claims["n"] = 1 },
		"claim string":  func(in *Input) { in.Caller.Claims["n"] = "1" },
		"audience":      func(in *Input) { in.Request.Audience += "/x" },
		"scope order":   func(in *Input) { in.Request.Scopes = []string{"write", "read"} },
		"scopes joined": func(in *Input) { in.Request.Scopes = []string{"read write"} },
		"ttl":           func(in *Input) { in.Request.TTL += time.Millisecond },
		"no binding":    func(in *Input) { in.Request.Binding = nil },
		"body":          func(in *Input) { in.Request.Binding.BodySHA256 = "" },
		"path":          func(in *Input) { in.Request.Binding.Path = "/q" },
		"signer":        func(in *Input) { in.SignerID = 2 },
	}
	k0, ok := memoKey(base())
	if !ok {
		t.Fatal("no key")
	}
	later := base()
	later.Time = later.Time.Add(time.Hour)
	if k, _ := memoKey(later); k != k0 {
		t.Fatal("the time changes the key")
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			in := base()
			change(&in)
			if k, ok := memoKey(in); !ok || k == k0 {
				t.Fatalf("key unchanged (%v)", ok)
			}
		})
	}
	bad := base()
	bad.Caller.Claims["f"] = func() {}
	if _, ok := memoKey(bad); ok {
		t.Fatal("a key for claims that do not encode")
	}
	// JSON writes every invalid UTF-8 byte alike; the policy sees them
	// apart.
	for name, change := range map[string]func(*Input){
		"subject": func(in *Input) { in.Caller.Subject += "\xff" },
		"claim":   func(in *Input) { in.Caller.Claims["ref"] = "refs/heads/\xfe" },
		"scope":   func(in *Input) { in.Request.Scopes = append(in.Request.Scopes, "read\x80") },
	} {
		in := base()
		change(&in)
		if k, ok := memoKey(in); ok {
			t.Errorf("%s not valid UTF-8: key %s", name, k)
		}
	}
}

func TestMemoBounded(t *testing.T) {
	var m memo
	for i := range memoSize + 10 {
		m.put(fmt.Sprint(i), Decision{Allow: true})
	}
	if len(m.m) != memoSize {
		t.Fatalf("%d decisions remembered, want %d", len(m.m), memoSize)
	}
}

// BenchmarkEvaluateMemoized is BenchmarkEvaluate's request asked again:
// what a workload minting again for the same thing pays.
func BenchmarkEvaluateMemoized(b *testing.B) {
	e := newEngine(b)
	in := mintInput(paymentsCI, apiAud, 5*time.Minute, "payments:refund", "read", "write")
	ctx := context.Background()
	for b.Loop() {
		in.Time = in.Time.Add(time.Millisecond)
		d, err := e.Evaluate(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("Evaluate = %+v, %v", d, err)
		}
	}
}
