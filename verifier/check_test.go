package verifier_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/token"
)

const (
	otherAudience = "https://other.example"
	// maxBody is the body limit of the binding checks of these tests.
	maxBody = 64
)

var orderBody = []byte(`{"item":"book","qty":1}`)

// orderBinding is the binding of a POST of orderBody to
// https://api.example/orders.
func orderBinding(t testing.TB) binding.Binding {
	t.Helper()
	b, err := binding.New(http.MethodPost, "api.example", "https", "/orders", orderBody, true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bound mints a valid token bound to b.
func bound(b func(testing.TB) binding.Binding) func(testing.TB) string {
	return func(t testing.TB) string {
		return good(t, func(c *token.Claims) {
			x := b(t)
			c.Binding = &x
		})
	}
}

// request returns the requirements of a route that checks bindings
// against an HTTPS request of method to path with body, with binding.Check.
func request(method, path string, body []byte, mutate func(*verifier.Requirements)) func(testing.TB) verifier.Requirements {
	return func(testing.TB) verifier.Requirements {
		r := verifier.Requirements{CheckBinding: func(want binding.Binding) error {
			req := httptest.NewRequest(method, "https://api.example"+path, strings.NewReader(string(body)))
			return binding.Check(req, want, maxBody)
		}}
		if mutate != nil {
			mutate(&r)
		}
		return r
	}
}

func requirements(r verifier.Requirements) func(testing.TB) verifier.Requirements {
	return func(testing.TB) verifier.Requirements { return r }
}

// requirementCases are the cases of verifyCases about Requirements.
func requirementCases() []verifyCase {
	order := func(mutate func(*verifier.Requirements)) func(testing.TB) verifier.Requirements {
		return request(http.MethodPost, "/orders", orderBody, mutate)
	}
	return []verifyCase{
		// Audience per call.
		{name: "audience of the route", tok: withClaims(func(c *token.Claims) { c.Audience = otherAudience }),
			req: requirements(verifier.Requirements{Audience: otherAudience})},
		{name: "route audience replaces the configured one", tok: withClaims(nil),
			req: requirements(verifier.Requirements{Audience: otherAudience}), want: verifier.CodeWrongAudience},
		{name: "token for the route's audience elsewhere", tok: withClaims(func(c *token.Claims) { c.Audience = otherAudience }),
			want: verifier.CodeWrongAudience},

		// Reuse.
		{name: "reusable token used twice", tok: withClaims(nil), req: requirements(verifier.Requirements{Replay: verifier.Reusable}),
			before: func(t *testing.T, v *verifier.Verifier, tok string) {
				if _, err := v.Check(t.Context(), tok, verifier.Requirements{Replay: verifier.Reusable}); err != nil {
					t.Fatalf("first Check = %v", err)
				}
			}},
		{name: "reusable with the replay store down", tok: withClaims(nil), req: requirements(verifier.Requirements{Replay: verifier.Reusable}),
			config: func(c *verifier.Config) { c.Replay = failingCache{} }},
		{name: "unknown replay mode is single use", tok: withClaims(nil), req: requirements(verifier.Requirements{Replay: 7}),
			before: func(t *testing.T, v *verifier.Verifier, tok string) {
				if _, err := v.Check(t.Context(), tok, verifier.Requirements{Replay: 7}); err != nil {
					t.Fatalf("first Check = %v", err)
				}
			}, want: verifier.CodeReplayed},

		// binding_required
		{name: "binding required, token unbound", tok: withClaims(nil), req: order(func(r *verifier.Requirements) { r.RequireBinding = true }),
			want: verifier.CodeBindingRequired},
		{name: "binding required, token bound", tok: bound(orderBinding), req: order(func(r *verifier.Requirements) { r.RequireBinding = true })},
		{name: "binding not required, token unbound", tok: withClaims(nil), req: order(nil)},
		{name: "binding required, checker missing, token unbound", tok: withClaims(nil),
			req: requirements(verifier.Requirements{RequireBinding: true}), want: verifier.CodeBindingRequired},

		// binding_mismatch
		{name: "bound token, the request", tok: bound(orderBinding), req: order(nil)},
		{name: "bound token without a body hash", tok: bound(func(t testing.TB) binding.Binding {
			b := orderBinding(t)
			b.BodySHA256 = ""
			return b
		}), req: request(http.MethodPost, "/orders", []byte("any body"), nil)},
		{name: "bound token, no checker", tok: bound(orderBinding), want: verifier.CodeBindingMismatch},
		{name: "bound token, no checker, binding required", tok: bound(orderBinding),
			req: requirements(verifier.Requirements{RequireBinding: true}), want: verifier.CodeBindingMismatch},
		{name: "bound token, other path", tok: bound(orderBinding), req: request(http.MethodPost, "/orders/1", orderBody, nil),
			want: verifier.CodeBindingMismatch, wantErr: binding.ErrMismatch},
		{name: "bound token, other method", tok: bound(orderBinding), req: request(http.MethodPut, "/orders", orderBody, nil),
			want: verifier.CodeBindingMismatch, wantErr: binding.ErrMismatch},
		{name: "bound token, other body", tok: bound(orderBinding), req: request(http.MethodPost, "/orders", []byte(`{"item":"car","qty":1}`), nil),
			want: verifier.CodeBindingMismatch, wantErr: binding.ErrMismatch},
		{name: "bound token, checker fails", tok: bound(orderBinding), req: requirements(verifier.Requirements{
			CheckBinding: func(binding.Binding) error { return errStoreDown },
		}), want: verifier.CodeBindingMismatch, wantErr: errStoreDown},

		// body_too_large
		{name: "bound token, body over the limit", tok: bound(orderBinding),
			req:  request(http.MethodPost, "/orders", []byte(strings.Repeat("x", maxBody+1)), nil),
			want: verifier.CodeBodyTooLarge, wantErr: binding.ErrBodyTooLarge},
		{name: "bound token, wrapped ErrBodyTooLarge", tok: bound(orderBinding), req: requirements(verifier.Requirements{
			CheckBinding: func(binding.Binding) error { return fmt.Errorf("proxy: %w", binding.ErrBodyTooLarge) },
		}), want: verifier.CodeBodyTooLarge, wantErr: binding.ErrBodyTooLarge},

		// The binding is checked after the scopes and before the replay cache.
		{name: "bound token, other path, missing scope", tok: bound(orderBinding),
			req:  request(http.MethodPost, "/orders/1", orderBody, func(r *verifier.Requirements) { r.Scopes = []string{"admin"} }),
			want: verifier.CodeInsufficientScope},
		{name: "bound token, replayed", tok: bound(orderBinding), req: order(nil),
			before: func(t *testing.T, v *verifier.Verifier, tok string) {
				if _, err := v.Check(t.Context(), tok, order(nil)(t)); err != nil {
					t.Fatalf("first Check = %v", err)
				}
			}, want: verifier.CodeReplayed},
	}
}

// TestCheckReusable checks that a Reusable route accepts a token any
// number of times without touching the replay cache, and that single use
// still applies to the token elsewhere.
func TestCheckReusable(t *testing.T) {
	cache := &countingCache{inner: verifier.NewMemoryReplayCache(16, now)}
	v := newVerifier(t, func(c *verifier.Config) { c.Replay = cache })
	tok := good(t)
	reusable := verifier.Requirements{Scopes: []string{"read"}, Replay: verifier.Reusable}
	for i := range 3 {
		c, err := v.Check(t.Context(), tok, reusable)
		if err != nil || c.ID == "" {
			t.Fatalf("use %d: %+v, %v", i+1, c, err)
		}
	}
	if n := cache.calls.Load(); n != 0 {
		t.Fatalf("Reusable consulted the replay cache %d times", n)
	}
	if _, err := v.Check(t.Context(), tok, verifier.Requirements{}); err != nil {
		t.Fatalf("first single use = %v", err)
	}
	if _, err := v.Verify(t.Context(), tok); verifier.CodeOf(err) != verifier.CodeReplayed {
		t.Fatalf("second single use = %v, want replayed", err)
	}
	if _, err := v.Check(t.Context(), tok, reusable); err != nil {
		t.Fatalf("reusable after single use = %v", err)
	}
	if n := cache.calls.Load(); n != 2 {
		t.Fatalf("replay cache calls = %d, want 2", n)
	}
}

// TestCheckBindingOrder checks when CheckBinding is called: only for a
// bound token that passed every other check but replay, once, with the
// token's binding; and that a binding refusal spends nothing, so the token
// still works for its request.
func TestCheckBindingOrder(t *testing.T) {
	want := orderBinding(t)
	tok := bound(orderBinding)(t)
	var calls []binding.Binding
	checker := func(r *http.Request) func(binding.Binding) error {
		return func(b binding.Binding) error {
			calls = append(calls, b)
			return binding.Check(r, b, maxBody)
		}
	}
	post := func(path string) *http.Request {
		return httptest.NewRequest(http.MethodPost, "https://api.example"+path, strings.NewReader(string(orderBody)))
	}
	cache := &countingCache{inner: verifier.NewMemoryReplayCache(16, now)}
	v := newVerifier(t, func(c *verifier.Config) { c.Replay = cache })

	for _, tc := range []struct {
		name string
		req  verifier.Requirements
		code verifier.Code
	}{
		{"wrong audience", verifier.Requirements{Audience: otherAudience, CheckBinding: checker(post("/orders"))}, verifier.CodeWrongAudience},
		{"missing scope", verifier.Requirements{Scopes: []string{"admin"}, CheckBinding: checker(post("/orders"))}, verifier.CodeInsufficientScope},
	} {
		if _, err := v.Check(t.Context(), tok, tc.req); verifier.CodeOf(err) != tc.code {
			t.Fatalf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if len(calls) != 0 {
		t.Fatalf("CheckBinding called %d times before the other checks passed", len(calls))
	}

	if _, err := v.Check(t.Context(), tok, verifier.Requirements{CheckBinding: checker(post("/elsewhere"))}); verifier.CodeOf(err) != verifier.CodeBindingMismatch {
		t.Fatalf("other request: %v", err)
	}
	if cache.calls.Load() != 0 {
		t.Fatal("a binding mismatch reached the replay cache")
	}
	r := post("/orders")
	c, err := v.Check(t.Context(), tok, verifier.Requirements{CheckBinding: checker(r)})
	if err != nil {
		t.Fatalf("the bound request, after a mismatch: %v", err)
	}
	if c.Binding == nil || *c.Binding != want {
		t.Fatalf("claims binding = %+v, want %+v", c.Binding, want)
	}
	if len(calls) != 2 || calls[1] != want {
		t.Fatalf("CheckBinding calls = %+v", calls)
	}
	// binding.Check put the body back for the handler.
	if b, _ := io.ReadAll(r.Body); string(b) != string(orderBody) {
		t.Fatalf("body after the check = %q", b)
	}
	if _, err := v.Check(t.Context(), tok, verifier.Requirements{CheckBinding: checker(post("/orders"))}); verifier.CodeOf(err) != verifier.CodeReplayed {
		t.Fatalf("bound token replayed: %v", err)
	}
}

func TestCodeMappings(t *testing.T) {
	want := map[verifier.Code]struct {
		http int
		grpc codes.Code
	}{
		verifier.CodeMalformed:              {401, codes.Unauthenticated},
		verifier.CodeBadHeader:              {401, codes.Unauthenticated},
		verifier.CodeMissingClaim:           {401, codes.Unauthenticated},
		verifier.CodeTTLExceedsCap:          {401, codes.Unauthenticated},
		verifier.CodeUntrustedIssuer:        {401, codes.Unauthenticated},
		verifier.CodeUnknownKey:             {401, codes.Unauthenticated},
		verifier.CodeBadSignature:           {401, codes.Unauthenticated},
		verifier.CodeExpired:                {401, codes.Unauthenticated},
		verifier.CodeIssuedInFuture:         {401, codes.Unauthenticated},
		verifier.CodeNotYetValid:            {401, codes.Unauthenticated},
		verifier.CodeWrongAudience:          {401, codes.Unauthenticated},
		verifier.CodeInsufficientScope:      {403, codes.PermissionDenied},
		verifier.CodeBindingRequired:        {401, codes.Unauthenticated},
		verifier.CodeBindingMismatch:        {401, codes.Unauthenticated},
		verifier.CodeBodyTooLarge:           {413, codes.ResourceExhausted},
		verifier.CodeReplayed:               {401, codes.Unauthenticated},
		verifier.CodeReplayStoreUnavailable: {503, codes.Unavailable},
		// Not codes of this version: still refusals.
		"":                 {401, codes.Unauthenticated},
		"some_future_code": {401, codes.Unauthenticated},
	}
	for _, code := range allCodes {
		if _, ok := want[code]; !ok {
			t.Errorf("code %s has no expected mapping", code)
		}
	}
	for code, w := range want {
		if got := code.HTTPStatus(); got != w.http {
			t.Errorf("%q.HTTPStatus() = %d, want %d", code, got, w.http)
		}
		if got := code.GRPCCode(); got != w.grpc {
			t.Errorf("%q.GRPCCode() = %v, want %v", code, got, w.grpc)
		}
	}
}
