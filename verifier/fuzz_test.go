package verifier_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/token"
)

// FuzzVerify checks that Verify never panics, that every refusal is an
// *Error with a known code, and that whatever it accepts is genuinely
// valid: signed by the named issuer's key (which go-jose, independently,
// confirms), within its lifetime, for our audience, and canonical.
func FuzzVerify(f *testing.F) {
	for _, tc := range verifyCases() {
		f.Add(tc.tok(f))
	}
	f.Add(good(f, func(c *token.Claims) { c.Issuer = issuerB }))
	f.Add(mint(f, testKey("b"), header(f, testKey("b")), func() token.Claims { c := claims(); c.Issuer = issuerB; return c }()))

	issuers := testIssuers(f)
	v := newVerifier(f, func(c *verifier.Config) { c.Replay = nopCache{} })
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(t.Context(), tok)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if code := verifier.CodeOf(err); !slices.Contains(allCodes, code) {
				t.Fatalf("Verify = %v: code %q is not a known code", err, code)
			}
			return
		}

		checkAccepted(t, issuers, tok, c)
	})
}

// checkAccepted checks, independently of Verify, a token it accepted.
func checkAccepted(t *testing.T, issuers []verifier.Issuer, tok string, c *token.Claims) {
	t.Helper()
	// Accepted: check it independently.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token of %d parts", len(parts))
	}
	var keys = issuers[0].Keys
	switch c.Issuer {
	case issuerA:
	case issuerB:
		keys = issuers[1].Keys
	default:
		t.Fatalf("accepted issuer %q", c.Issuer)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("go-jose cannot parse an accepted token: %v", err)
	}
	h := jws.Signatures[0].Header
	if h.Algorithm != "EdDSA" || h.ExtraHeaders["typ"] != "at+jwt" || len(h.ExtraHeaders) != 1 {
		t.Fatalf("accepted header %+v", h)
	}
	pub, err := keys.Key(h.KeyID)
	if err != nil {
		t.Fatalf("accepted kid %q: %v", h.KeyID, err)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		t.Fatalf("go-jose does not verify an accepted token: %v", err)
	}
	if want, _ := base64.RawURLEncoding.DecodeString(parts[1]); string(payload) != string(want) {
		t.Fatal("go-jose and we disagree on the payload")
	}
	n := now().Unix()
	if c.Audience != audience || c.Expiry <= n-30 || c.IssuedAt > n+30 || c.NotBefore > n+30 ||
		c.Expiry-c.IssuedAt > int64(token.MaxTTL/time.Second) || c.Expiry <= c.IssuedAt {
		t.Fatalf("accepted claims %+v", *c)
	}
	// The accepted token must re-encode to a token that is accepted as
	// the same claims.
	in, err := token.SigningInput(token.Header{Algorithm: h.Algorithm, Type: token.Type, KeyID: h.KeyID}, *c)
	if err != nil {
		t.Fatalf("accepted claims do not re-encode: %v", err)
	}
	_, c2, err := token.ParseSigningInput(in)
	if err != nil || !sameClaims(c2, *c) {
		t.Fatalf("accepted claims do not round-trip: %+v, %v", c2, err)
	}
}

// sameClaims compares claims by value, the binding included.
func sameClaims(a, b token.Claims) bool {
	x, y := a, b
	x.Binding, y.Binding = nil, nil
	if x != y || (a.Binding == nil) != (b.Binding == nil) {
		return false
	}
	return a.Binding == nil || *a.Binding == *b.Binding
}

// FuzzVerifySigned is FuzzVerify on the JSON of the header and claims,
// signed with a trusted key, so that the fuzzer explores what passes the
// signature check, where the verifier's remaining decisions are.
func FuzzVerifySigned(f *testing.F) {
	f.Add(mustJSON(f, header(f, testKey("a1"))), claimsJSON(f, claims()))
	f.Add(`{"alg":"EdDSA","kid":"`+kidOf(f, testKey("a1"))+`","typ":"at+jwt"}`, claimsJSON(f, claims()))
	f.Add(mustJSON(f, header(f, testKey("a1"))), claimsJSON(f, claims())+"}")
	f.Add(mustJSON(f, header(f, testKey("a1"))), strings.Replace(claimsJSON(f, claims()), `"exp":1700000300`, `"exp":36028798718963968`, 1))
	f.Add(mustJSON(f, header(f, testKey("a1"))), strings.Replace(claimsJSON(f, claims()), `"iat":1700000000`, `"iat":1700000031`, 1))
	f.Add(mustJSON(f, header(f, testKey("a1"))), claimsJSON(f, func() token.Claims {
		c := claims()
		c.Binding = &binding.Binding{Method: "GET", Authority: "api.example", Path: "/"}
		return c
	}()))
	issuers := testIssuers(f)
	v := newVerifier(f, func(c *verifier.Config) { c.Replay = nopCache{} })
	// Check with a binding checker that accepts any binding: it accepts
	// what Verify does, and bound tokens Verify refuses.
	var checked []binding.Binding
	anyBinding := verifier.Requirements{Scopes: []string{"read"}, CheckBinding: func(b binding.Binding) error {
		checked = append(checked, b)
		return nil
	}}
	f.Fuzz(func(t *testing.T, headerJSON, claimsJSON string) {
		tok := signRaw(testKey("a1"), headerJSON, claimsJSON)
		checked = checked[:0]
		cc, cerr := v.Check(t.Context(), tok, anyBinding)
		c, err := v.Verify(t.Context(), tok, "read")
		switch {
		case cerr != nil:
			if verifier.CodeOf(cerr) != verifier.CodeOf(err) || len(checked) != 0 {
				t.Fatalf("Check = %v after %d binding checks, Verify = %v", cerr, len(checked), err)
			}
		case cc.Binding != nil:
			if verifier.CodeOf(err) != verifier.CodeBindingMismatch || len(checked) != 1 || checked[0] != *cc.Binding {
				t.Fatalf("bound token: Verify = %v, binding checks %v", err, checked)
			}
			checkAccepted(t, issuers, tok, cc)
		case err != nil || len(checked) != 0:
			t.Fatalf("unbound token: Check accepts, Verify = %v, binding checks %v", err, checked)
		}
		if err != nil {
			if code := verifier.CodeOf(err); !slices.Contains(allCodes, code) || c != nil {
				t.Fatalf("Verify = %v, %v", c, err)
			}
			return
		}
		checkAccepted(t, issuers, tok, c)
		if !c.HasScopes("read") {
			t.Fatalf("accepted scope %q", c.Scope)
		}
	})
}
