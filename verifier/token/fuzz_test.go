package token_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/token"
)

func fuzzKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("frostmint token fuzz key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func fuzzClaims() token.Claims {
	return token.Claims{
		Issuer:    "https://issuer.example",
		Subject:   "alice",
		ClientID:  "client-1",
		Audience:  "https://api.example",
		Scope:     "read write",
		IssuedAt:  1_700_000_000,
		NotBefore: 1_700_000_000,
		Expiry:    1_700_000_300,
		ID:        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	}
}

func fuzzHeader() token.Header {
	return token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawToken signs arbitrary header and claims JSON.
func rawToken(headerJSON, claimsJSON string) string {
	in := b64(headerJSON) + "." + b64(claimsJSON)
	return token.Compact([]byte(in), ed25519.Sign(fuzzKey(), []byte(in)))
}

func validToken(tb testing.TB) string {
	tb.Helper()
	in, err := token.SigningInput(fuzzHeader(), fuzzClaims())
	if err != nil {
		tb.Fatal(err)
	}
	return token.Compact(in, ed25519.Sign(fuzzKey(), in))
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// knownIssues are inputs an earlier ParseSigningInput accepted although it
// should not (the verifier compensated for each). They are fixed; they stay
// as regression tests and fuzz seeds.
func knownIssues() map[string]string {
	h := mustMarshal(fuzzHeader())
	c := mustMarshal(fuzzClaims())
	overflow := fuzzClaims()
	overflow.Expiry = overflow.IssuedAt + 1<<55 // (exp-iat)*time.Second wraps to 0
	maxExp := fuzzClaims()
	maxExp.Expiry = 1<<63 - 1 // (exp-iat)*time.Second wraps negative
	return map[string]string{
		"exp = MaxInt64":                    rawToken(h, mustMarshal(maxExp)),
		"trailing brace after the header":   rawToken(h+"}", c),
		"trailing garbage after the header": rawToken(h+`]{"alg":"none"}`, c),
		"trailing garbage after the claims": rawToken(h, c+"]xyz"),
		"exp-iat overflows Claims.TTL":      rawToken(h, mustMarshal(overflow)),
		"CR LF inside a base64url segment":  crlf(rawToken(h, c)),
	}
}

func crlf(tok string) string { return tok[:10] + "\r\n" + tok[10:] }

// TestKnownIssues checks that the defects of ParseCompact found while
// writing the verifier stay fixed.
func TestKnownIssues(t *testing.T) {
	for name, tok := range knownIssues() {
		t.Run(name, func(t *testing.T) {
			if _, err := token.ParseCompact(tok); err == nil {
				t.Fatalf("ParseCompact accepts a token with %s", name)
			}
		})
	}
}

// FuzzParseCompact checks that ParseCompact never panics, that its errors
// wrap its sentinels, and that whatever it accepts is a token of the
// profile that SigningInput re-encodes, the re-encoding parsing back to the
// same header and claims (a fixed point).
//
// It does not require the re-encoding to be byte-identical to the input:
// ParseSigningInput accepts any member order and insignificant whitespace
// (the header go-jose writes is {"alg","kid","typ"}, not our order), so
// byte identity holds for tokens minted by SigningInput only.
func FuzzParseCompact(f *testing.F) {
	h := mustMarshal(fuzzHeader())
	c := mustMarshal(fuzzClaims())
	for _, tok := range knownIssues() {
		f.Add(tok)
	}
	for _, tok := range []string{
		validToken(f),
		"", ".", "..", "...", "a.b.c", "e30.e30.AA",
		rawToken(`{"alg":"EdDSA","kid":"k","typ":"at+jwt"}`, c),
		rawToken(` {"alg" : "EdDSA", "typ":"at+jwt","kid":"k"} `, c),
		rawToken(`{"alg":"none","typ":"at+jwt","kid":"k"}`, c),
		rawToken(`{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":["b64"],"b64":false}`, c),
		rawToken(`{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"k"}`, c),
		rawToken(`{"\u0061lg":"EdDSA","typ":"at+jwt","kid":"k"}`, c),
		rawToken(h, `{"iss":"a","iss":"b"}`),
		rawToken(h, strings.Replace(c, `"aud":"https://api.example"`, `"aud":["https://api.example"]`, 1)),
		rawToken(h, strings.Replace(c, `"exp":1700000300`, `"exp":1.7e9`, 1)),
		rawToken(h, strings.Replace(c, `"exp":1700000300`, `"exp":9223372036854775807`, 1)),
		rawToken(h, strings.Replace(c, `"sub":"alice"`, `"sub":"\ud800"`, 1)),
		rawToken(h, strings.Replace(c, `"sub":"alice"`, "\"sub\":\"\xff\"", 1)),
		rawToken(h, "null"),
		validToken(f) + "=",
		rawToken(h, mustMarshal(boundClaims())),
		rawToken(h, strings.Replace(mustMarshal(boundClaims()), `"m":"POST"`, `"m":"POST","m":"GET"`, 1)),
		rawToken(h, strings.Replace(mustMarshal(boundClaims()), `"m":"POST"`, `"M":"POST"`, 1)),
	} {
		f.Add(tok)
	}
	sentinels := []error{token.ErrMalformed, token.ErrHeader, token.ErrClaims, token.ErrTTL}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := token.ParseCompact(tok)
		if err != nil {
			if p != nil {
				t.Fatal("ParseCompact returned a token with an error")
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		checkParsed(t, tok, p)
	})
}

// checkParsed checks the properties of a token ParseCompact accepted.
func checkParsed(t *testing.T, tok string, p *token.Parsed) {
	t.Helper()
	if known := knownIssue(tok, p); known != "" {
		t.Fatalf("ParseCompact accepted a known issue: %s", known)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	if strings.ContainsFunc(tok, func(r rune) bool { return !strings.ContainsRune(alphabet, r) }) {
		t.Fatal("accepted a byte outside base64url")
	}
	if len(p.Signature) != ed25519.SignatureSize {
		t.Fatalf("signature of %d bytes", len(p.Signature))
	}
	if i := strings.LastIndexByte(tok, '.'); string(p.SigningInput) != tok[:i] {
		t.Fatal("SigningInput is not the token's first two parts")
	}
	if p.Claims.TTL() <= 0 || p.Claims.TTL() > token.MaxTTL {
		t.Fatalf("accepted a lifetime of %s", p.Claims.TTL())
	}
	in, err := token.SigningInput(p.Header, p.Claims)
	if err != nil {
		t.Fatalf("SigningInput refuses what ParseCompact accepted: %v", err)
	}
	h2, c2, err := token.ParseSigningInput(in)
	if err != nil || h2 != p.Header || !sameClaims(c2, p.Claims) {
		t.Fatalf("re-encoding does not parse back: %+v %+v %v", h2, c2, err)
	}
	again, err := token.SigningInput(h2, c2)
	if err != nil || !bytes.Equal(again, in) {
		t.Fatalf("SigningInput is not a fixed point:\n%s\n%s", in, again)
	}
	p2, err := token.ParseCompact(token.Compact(in, p.Signature))
	if err != nil || p2.Header != p.Header || !sameClaims(p2.Claims, p.Claims) || !bytes.Equal(p2.Signature, p.Signature) {
		t.Fatalf("re-encoded token does not parse back: %v", err)
	}
}

// FuzzParseSigningInput is FuzzParseCompact on the decoded JSON of the
// header and claims, where the parser's interesting decisions are.
func FuzzParseSigningInput(f *testing.F) {
	h := mustMarshal(fuzzHeader())
	c := mustMarshal(fuzzClaims())
	for _, seed := range [][2]string{
		{h, c},
		{h + "}", c},
		{h + " ", c + "\n"},
		{`{"alg":"EdDSA","kid":"k","typ":"at+jwt"}`, c},
		{`{"alg":"EdDSA","typ":"at+jwt","kid":"k","kid":"k"}`, c},
		{`{"alg":"EdDSA","typ":"at+jwt","KID":"k"}`, c},
		{h, strings.Replace(c, `"exp":1700000300`, `"exp":36028798718963968`, 1)},
		{h, strings.Replace(c, `"scope":"read write"`, `"scope":"read\u0020write"`, 1)},
		{h, strings.Replace(c, `"sub":"alice"`, `"sub":"\ud800"`, 1)},
		{h, strings.Replace(c, `"iat":1700000000`, `"iat":1700000000.0`, 1)},
		{h, strings.Replace(c, `"iat":1700000000`, `"iat":17e8`, 1)},
		{h, strings.Replace(c, `"iat":1700000000`, `"iat":-0`, 1)},
		{h, mustMarshal(boundClaims())},
		{h, strings.Replace(mustMarshal(boundClaims()), `"p":"/orders"`, `"p":"/orders","p":"/admin"`, 1)},
		{h, strings.Replace(mustMarshal(boundClaims()), `"p":"/orders"`, `"p":"\/orders"`, 1)},
	} {
		f.Add(seed[0], seed[1])
	}
	sig := base64.RawURLEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	f.Fuzz(func(t *testing.T, header, claims string) {
		in := b64(header) + "." + b64(claims)
		tok := in + "." + sig
		h, c, err := token.ParseSigningInput([]byte(in))
		if err != nil {
			for _, s := range []error{token.ErrMalformed, token.ErrHeader, token.ErrClaims, token.ErrTTL} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		p, err := token.ParseCompact(tok)
		if err != nil {
			if len(tok) > 8<<10 {
				return // the whole token is over the size limit
			}
			t.Fatalf("ParseSigningInput accepts what ParseCompact refuses: %v", err)
		}
		if p.Header != h || !sameClaims(p.Claims, c) {
			t.Fatal("ParseSigningInput and ParseCompact disagree")
		}
		checkParsed(t, tok, p)
	})
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

func boundClaims() token.Claims {
	c := fuzzClaims()
	c.Binding = &binding.Binding{Method: "POST", Authority: "api.example", Path: "/orders", BodySHA256: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}
	return c
}

// knownIssue names the (fixed) known issue tok reproduces, if any.
func knownIssue(tok string, p *token.Parsed) string {
	if strings.ContainsAny(tok, "\r\n") {
		return "CR or LF inside a base64url segment"
	}
	if ttl := p.Claims.Expiry - p.Claims.IssuedAt; ttl > int64(token.MaxTTL/time.Second) {
		return fmt.Sprintf("exp-iat of %ds passes as Claims.TTL %s", ttl, p.Claims.TTL())
	}
	hb, cb, _ := strings.Cut(string(p.SigningInput), ".")
	for _, seg := range []string{hb, cb} {
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err == nil && !json.Valid(b) {
			return "trailing data after a JSON object"
		}
	}
	return ""
}
