package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

// allCodes is every code Verify returns; the table test must cover each.
var allCodes = []verifier.Code{
	verifier.CodeMalformed, verifier.CodeBadHeader, verifier.CodeMissingClaim,
	verifier.CodeTTLExceedsCap, verifier.CodeUntrustedIssuer, verifier.CodeUnknownKey,
	verifier.CodeBadSignature, verifier.CodeExpired, verifier.CodeIssuedInFuture,
	verifier.CodeNotYetValid, verifier.CodeWrongAudience, verifier.CodeInsufficientScope,
	verifier.CodeBindingRequired, verifier.CodeBindingMismatch, verifier.CodeBodyTooLarge,
	verifier.CodeReplayed, verifier.CodeReplayStoreUnavailable,
}

type verifyCase struct {
	name   string
	tok    func(t testing.TB) string
	scopes []string
	// req, if set, are the requirements of a Check (with Scopes from
	// scopes when it has none); if nil, the case runs through both Verify
	// and Check with Requirements{Scopes: scopes}, which must agree.
	req    func(t testing.TB) verifier.Requirements
	config func(*verifier.Config)
	// before runs on the verifier before the token is verified.
	before func(t *testing.T, v *verifier.Verifier, tok string)
	want   verifier.Code // "" means accepted
	// wantErr, if set, must be in the error's tree.
	wantErr error
}

// s is shorthand for a fixed token.
func s(tok string) func(testing.TB) string { return func(testing.TB) string { return tok } }

// rawCase signs headerJSON and claims (edited by edit) with key a1.
func rawClaims(headerJSON func(t testing.TB) string, edit func(m map[string]any)) func(testing.TB) string {
	return func(t testing.TB) string {
		m := claimsMap(t, claims())
		if edit != nil {
			edit(m)
		}
		h := mustJSON(t, header(t, testKey("a1")))
		if headerJSON != nil {
			h = headerJSON(t)
		}
		return signRaw(testKey("a1"), h, mustJSON(t, m))
	}
}

// rawHeader signs a header given as JSON text (with %s for the kid of a1)
// over valid claims.
func rawHeader(format string) func(testing.TB) string {
	return func(t testing.TB) string {
		h := format
		if strings.Contains(format, "%s") {
			h = fmt.Sprintf(format, kidOf(t, testKey("a1")))
		}
		return signRaw(testKey("a1"), h, claimsJSON(t, claims()))
	}
}

func withClaims(mutate func(*token.Claims)) func(testing.TB) string {
	return func(t testing.TB) string { return good(t, mutate) }
}

// replaceSegment replaces segment i of tok.
func replaceSegment(tok string, i int, seg string) string {
	parts := strings.Split(tok, ".")
	parts[i] = seg
	return strings.Join(parts, ".")
}

// nonCanonicalS returns sig with S replaced by S + L, which verifies under
// implementations that skip the S < L check (signature malleability).
func nonCanonicalS(sig []byte) []byte {
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := slices.Clone(sig[32:])
	slices.Reverse(le)
	s := new(big.Int).SetBytes(le)
	s.Add(s, l)
	be := s.FillBytes(make([]byte, 32))
	slices.Reverse(be)
	return append(slices.Clone(sig[:32]), be...)
}

func verifyCases() []verifyCase {
	const leeway = 30 // DefaultLeeway, in seconds
	cases := []verifyCase{
		// Accepted.
		{name: "valid", tok: withClaims(nil)},
		{name: "valid second key of issuer", tok: func(t testing.TB) string {
			return mint(t, testKey("a2"), header(t, testKey("a2")), claims())
		}},
		{name: "valid other issuer", tok: func(t testing.TB) string {
			c := claims()
			c.Issuer = issuerB
			return mint(t, testKey("b"), header(t, testKey("b")), c)
		}},
		{name: "valid with required scopes", tok: withClaims(nil), scopes: []string{"write", "read"}},
		{name: "valid max TTL", tok: withClaims(func(c *token.Claims) { c.Expiry = c.IssuedAt + int64(token.MaxTTL/time.Second) })},
		{name: "valid exp within leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-leeway+1
		})},
		{name: "valid iat and nbf within leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0+leeway, t0+leeway, t0+leeway+60
		})},
		{name: "valid nbf after iat", tok: withClaims(func(c *token.Claims) { c.NotBefore = t0 + 10 })},
		{name: "valid go-jose header order", tok: rawHeader(`{"alg":"EdDSA","kid":"%s","typ":"at+jwt"}`)},

		// malformed
		{name: "empty", tok: s(""), want: verifier.CodeMalformed, wantErr: token.ErrMalformed},
		{name: "one part", tok: s("abc"), want: verifier.CodeMalformed},
		{name: "two parts", tok: func(t testing.TB) string {
			tok := good(t)
			return tok[:strings.LastIndexByte(tok, '.')]
		}, want: verifier.CodeMalformed},
		{name: "four parts", tok: func(t testing.TB) string { return good(t) + ".AAAA" }, want: verifier.CodeMalformed},
		{name: "JWE-like five parts", tok: s("a.b.c.d.e"), want: verifier.CodeMalformed},
		{name: "empty signature", tok: func(t testing.TB) string { return replaceSegment(good(t), 2, "") }, want: verifier.CodeMalformed},
		{name: "empty header", tok: func(t testing.TB) string { return replaceSegment(good(t), 0, "") }, want: verifier.CodeMalformed},
		{name: "short signature", tok: func(t testing.TB) string {
			return replaceSegment(good(t), 2, base64.RawURLEncoding.EncodeToString(make([]byte, 63)))
		}, want: verifier.CodeMalformed},
		{name: "long signature", tok: func(t testing.TB) string {
			return replaceSegment(good(t), 2, base64.RawURLEncoding.EncodeToString(make([]byte, 65)))
		}, want: verifier.CodeMalformed},
		{name: "padded header", tok: func(t testing.TB) string {
			tok := good(t)
			h := strings.Split(tok, ".")[0]
			return replaceSegment(tok, 0, h+strings.Repeat("=", (4-len(h)%4)%4)+"=")
		}, want: verifier.CodeMalformed},
		{name: "standard base64 signature", tok: func(t testing.TB) string {
			tok := good(t)
			sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
			sig[0], sig[1], sig[2] = 0xfb, 0xff, 0xbf // encodes to +/ in std base64
			return replaceSegment(tok, 2, base64.RawStdEncoding.EncodeToString(sig))
		}, want: verifier.CodeMalformed},
		{name: "non-canonical base64 bits", tok: func(t testing.TB) string {
			tok := good(t)
			sig := strings.Split(tok, ".")[2] // 64 bytes: last char carries 2 spare bits
			last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
			alt := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1]
			return replaceSegment(tok, 2, sig[:len(sig)-1]+string(alt))
		}, want: verifier.CodeMalformed},
		{name: "whitespace", tok: func(t testing.TB) string { return " " + good(t) }, want: verifier.CodeMalformed},
		{name: "newline in header", tok: func(t testing.TB) string {
			tok := good(t)
			return tok[:10] + "\n" + tok[10:]
		}, want: verifier.CodeMalformed},
		{name: "CRLF in signature", tok: func(t testing.TB) string {
			tok := good(t)
			return tok[:len(tok)-10] + "\r\n" + tok[len(tok)-10:]
		}, want: verifier.CodeMalformed},
		{name: "CRLF in signed header", tok: func(t testing.TB) string {
			// The newline is part of what is signed, so only the syntax
			// check can refuse it.
			in := b64(mustJSON(t, header(t, testKey("a1"))))
			in = in[:8] + "\r\n" + in[8:] + "." + b64(claimsJSON(t, claims()))
			return token.Compact([]byte(in), ed25519.Sign(testKey("a1"), []byte(in)))
		}, want: verifier.CodeMalformed},
		{name: "too long", tok: func(t testing.TB) string {
			return good(t, func(c *token.Claims) { c.Subject = strings.Repeat("a", 8<<10) })
		}, want: verifier.CodeMalformed},
		{name: "header trailing brace", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s"}}`), want: verifier.CodeMalformed, wantErr: token.ErrMalformed},
		{name: "header trailing garbage", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s"}]{"alg":"none"}`), want: verifier.CodeMalformed},
		{name: "claims trailing data", tok: func(t testing.TB) string {
			return signRaw(testKey("a1"), mustJSON(t, header(t, testKey("a1"))), claimsJSON(t, claims())+`}`)
		}, want: verifier.CodeMalformed},

		// bad_header
		{name: "alg none", tok: func(t testing.TB) string {
			h := b64(fmt.Sprintf(`{"alg":"none","typ":"at+jwt","kid":"%s"}`, kidOf(t, testKey("a1"))))
			return h + "." + b64(claimsJSON(t, claims())) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, want: verifier.CodeBadHeader, wantErr: token.ErrHeader},
		{name: "alg none signed", tok: rawHeader(`{"alg":"none","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "alg HS256", tok: rawHeader(`{"alg":"HS256","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "alg HS512 keyed with the public key", tok: func(t testing.TB) string {
			h := fmt.Sprintf(`{"alg":"HS512","typ":"at+jwt","kid":"%s"}`, kidOf(t, testKey("a1")))
			in := b64(h) + "." + b64(claimsJSON(t, claims()))
			mac := hmac.New(sha512.New, pubOf(testKey("a1")))
			mac.Write([]byte(in))
			return token.Compact([]byte(in), mac.Sum(nil)) // 64 bytes, like an Ed25519 signature
		}, want: verifier.CodeBadHeader},
		{name: "alg Ed25519", tok: rawHeader(`{"alg":"Ed25519","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "alg lower case", tok: rawHeader(`{"alg":"eddsa","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "alg missing", tok: rawHeader(`{"typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "alg not a string", tok: rawHeader(`{"alg":["EdDSA"],"typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "typ JWT", tok: rawHeader(`{"alg":"EdDSA","typ":"JWT","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "typ application/at+jwt", tok: rawHeader(`{"alg":"EdDSA","typ":"application/at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "typ missing", tok: rawHeader(`{"alg":"EdDSA","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "kid missing", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt"}`), want: verifier.CodeBadHeader},
		{name: "kid empty", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":""}`), want: verifier.CodeBadHeader},
		{name: "kid null", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":null}`), want: verifier.CodeBadHeader},
		{name: "crit", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","crit":["exp"],"exp":1}`), want: verifier.CodeBadHeader},
		{name: "crit empty", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","crit":[]}`), want: verifier.CodeBadHeader},
		{name: "b64 false", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","b64":false,"crit":["b64"]}`), want: verifier.CodeBadHeader},
		{name: "jku", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","jku":"https://evil.example/jwks"}`), want: verifier.CodeBadHeader},
		{name: "embedded jwk", tok: func(t testing.TB) string {
			x := base64.RawURLEncoding.EncodeToString(pubOf(testKey("evil")))
			h := fmt.Sprintf(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","jwk":{"kty":"OKP","crv":"Ed25519","x":"%s"}}`, kidOf(t, testKey("evil")), x)
			return signRaw(testKey("evil"), h, claimsJSON(t, claims()))
		}, want: verifier.CodeBadHeader},
		{name: "x5u", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","x5u":"https://evil.example/"}`), want: verifier.CodeBadHeader},
		{name: "cty", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"%s","cty":"JWT"}`), want: verifier.CodeBadHeader},
		{name: "header member case", tok: rawHeader(`{"ALG":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "duplicate alg", tok: rawHeader(`{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "duplicate alg same value", tok: rawHeader(`{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"%s"}`), want: verifier.CodeBadHeader},
		{name: "duplicate kid", tok: rawHeader(`{"alg":"EdDSA","typ":"at+jwt","kid":"other","kid":"%s"}`), want: verifier.CodeBadHeader},
		// A JWS header is a JSON object (RFC 7515): anything else is malformed.
		{name: "header array", tok: rawHeader(`[]`), want: verifier.CodeMalformed},
		{name: "header null", tok: rawHeader(`null`), want: verifier.CodeMalformed},
		{name: "header not JSON", tok: rawHeader(`alg=EdDSA`), want: verifier.CodeMalformed},

		// missing_claim
		{name: "no sub", tok: rawClaims(nil, func(m map[string]any) { delete(m, "sub") }), want: verifier.CodeMissingClaim, wantErr: token.ErrClaims},
		{name: "no iss", tok: rawClaims(nil, func(m map[string]any) { delete(m, "iss") }), want: verifier.CodeMissingClaim},
		{name: "no aud", tok: rawClaims(nil, func(m map[string]any) { delete(m, "aud") }), want: verifier.CodeMissingClaim},
		{name: "no exp", tok: rawClaims(nil, func(m map[string]any) { delete(m, "exp") }), want: verifier.CodeMissingClaim},
		{name: "no jti", tok: rawClaims(nil, func(m map[string]any) { delete(m, "jti") }), want: verifier.CodeMissingClaim},
		{name: "no scope", tok: rawClaims(nil, func(m map[string]any) { delete(m, "scope") }), want: verifier.CodeMissingClaim},
		{name: "null exp", tok: rawClaims(nil, func(m map[string]any) { m["exp"] = nil }), want: verifier.CodeMissingClaim},
		{name: "unknown claim", tok: rawClaims(nil, func(m map[string]any) { m["admin"] = true }), want: verifier.CodeMissingClaim},
		{name: "aud array", tok: rawClaims(nil, func(m map[string]any) { m["aud"] = []string{audience} }), want: verifier.CodeMissingClaim},
		{name: "exp string", tok: rawClaims(nil, func(m map[string]any) { m["exp"] = fmt.Sprint(t0 + 300) }), want: verifier.CodeMissingClaim},
		{name: "exp fractional", tok: rawClaims(nil, func(m map[string]any) { m["exp"] = t0 + 300.5 }), want: verifier.CodeMissingClaim},
		{name: "jti short", tok: rawClaims(nil, func(m map[string]any) { m["jti"] = "short" }), want: verifier.CodeMissingClaim},
		{name: "nbf before iat", tok: rawClaims(nil, func(m map[string]any) { m["nbf"] = t0 - 1 }), want: verifier.CodeMissingClaim},
		{name: "exp not after nbf", tok: rawClaims(nil, func(m map[string]any) { m["exp"] = t0 }), want: verifier.CodeMissingClaim},
		{name: "negative exp", tok: rawClaims(nil, func(m map[string]any) { m["exp"] = -1 }), want: verifier.CodeMissingClaim},
		{name: "scope with double space", tok: rawClaims(nil, func(m map[string]any) { m["scope"] = "read  write" }), want: verifier.CodeMissingClaim},
		{name: "duplicate iss", tok: func(t testing.TB) string {
			c := claimsJSON(t, claims())
			c = `{"iss":"https://evil.example",` + c[1:]
			return signRaw(testKey("a1"), mustJSON(t, header(t, testKey("a1"))), c)
		}, want: verifier.CodeMissingClaim},
		{name: "duplicate aud", tok: func(t testing.TB) string {
			c := claimsJSON(t, claims())
			c = c[:len(c)-1] + `,"aud":"https://other.example"}`
			return signRaw(testKey("a1"), mustJSON(t, header(t, testKey("a1"))), c)
		}, want: verifier.CodeMissingClaim},
		{name: "claims array", tok: func(t testing.TB) string {
			return signRaw(testKey("a1"), mustJSON(t, header(t, testKey("a1"))), `[]`)
		}, want: verifier.CodeMalformed},

		// ttl_exceeds_cap
		{name: "TTL over the profile cap", tok: rawClaims(nil, func(m map[string]any) {
			m["exp"] = t0 + int64(token.MaxTTL/time.Second) + 1
		}), want: verifier.CodeTTLExceedsCap, wantErr: token.ErrTTL},
		{name: "TTL over the configured cap", tok: withClaims(func(c *token.Claims) { c.Expiry = t0 + 601 }),
			config: func(c *verifier.Config) { c.MaxTTL = 10 * time.Minute }, want: verifier.CodeTTLExceedsCap},
		{name: "TTL at the configured cap", tok: withClaims(func(c *token.Claims) { c.Expiry = t0 + 600 }),
			config: func(c *verifier.Config) { c.MaxTTL = 10 * time.Minute }},
		{name: "TTL overflowing time.Duration", tok: rawClaims(nil, func(m map[string]any) {
			// (exp - iat) * time.Second wraps to 0 in int64 nanoseconds.
			m["exp"] = t0 + int64(1)<<55
		}), want: verifier.CodeTTLExceedsCap},
		{name: "exp MaxInt64", tok: rawClaims(nil, func(m map[string]any) {
			m["exp"] = int64(1<<63 - 1) // (exp - iat) * time.Second is negative
		}), want: verifier.CodeTTLExceedsCap},
		{name: "TTL overflowing time.Duration to a small value", tok: rawClaims(nil, func(m map[string]any) {
			m["exp"] = t0 + int64(1)<<55 + 60
		}), want: verifier.CodeTTLExceedsCap},

		// untrusted_issuer
		{name: "unknown issuer", tok: withClaims(func(c *token.Claims) { c.Issuer = "https://evil.example" }), want: verifier.CodeUntrustedIssuer},
		{name: "issuer trailing slash", tok: withClaims(func(c *token.Claims) { c.Issuer = issuerA + "/" }), want: verifier.CodeUntrustedIssuer},
		{name: "issuer case", tok: withClaims(func(c *token.Claims) { c.Issuer = strings.ToUpper(issuerA) }), want: verifier.CodeUntrustedIssuer},

		// unknown_key
		{name: "unknown kid", tok: func(t testing.TB) string {
			return mint(t, testKey("evil"), header(t, testKey("evil")), claims())
		}, want: verifier.CodeUnknownKey, wantErr: jwks.ErrUnknownKey},
		{name: "key of another issuer", tok: func(t testing.TB) string {
			// Issuer B's key is trusted, but not for issuer A's tokens.
			return mint(t, testKey("b"), header(t, testKey("b")), claims())
		}, want: verifier.CodeUnknownKey},
		{name: "key set fails", tok: withClaims(nil), config: func(c *verifier.Config) {
			c.Issuers[0].Keys = keySetFunc(func(string) (ed25519.PublicKey, error) { return nil, errStoreDown })
		}, want: verifier.CodeUnknownKey, wantErr: errStoreDown},
		{name: "key set returns a short key", tok: withClaims(nil), config: func(c *verifier.Config) {
			c.Issuers[0].Keys = keySetFunc(func(string) (ed25519.PublicKey, error) { return make([]byte, 31), nil })
		}, want: verifier.CodeUnknownKey},

		// bad_signature
		{name: "signed by another key under a trusted kid", tok: func(t testing.TB) string {
			return mint(t, testKey("evil"), header(t, testKey("a1")), claims())
		}, want: verifier.CodeBadSignature},
		{name: "signed by the other key of the issuer", tok: func(t testing.TB) string {
			return mint(t, testKey("a2"), header(t, testKey("a1")), claims())
		}, want: verifier.CodeBadSignature},
		{name: "tampered claims", tok: func(t testing.TB) string {
			tok := good(t)
			c := claims()
			c.Subject = "admin"
			return replaceSegment(tok, 1, b64(claimsJSON(t, c)))
		}, want: verifier.CodeBadSignature},
		{name: "zero signature", tok: func(t testing.TB) string {
			return replaceSegment(good(t), 2, base64.RawURLEncoding.EncodeToString(make([]byte, 64)))
		}, want: verifier.CodeBadSignature},
		{name: "flipped signature bit", tok: func(t testing.TB) string {
			tok := good(t)
			sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
			sig[40] ^= 1
			return replaceSegment(tok, 2, base64.RawURLEncoding.EncodeToString(sig))
		}, want: verifier.CodeBadSignature},
		{name: "non-canonical S", tok: func(t testing.TB) string {
			tok := good(t)
			sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
			return replaceSegment(tok, 2, base64.RawURLEncoding.EncodeToString(nonCanonicalS(sig)))
		}, want: verifier.CodeBadSignature},
		{name: "expired and badly signed", tok: func(t testing.TB) string {
			c := claims()
			c.IssuedAt, c.NotBefore, c.Expiry = t0-3600, t0-3600, t0-3000
			return mint(t, testKey("evil"), header(t, testKey("a1")), c)
		}, want: verifier.CodeBadSignature},

		// expired
		{name: "expired", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-600, t0-600, t0-300
		}), want: verifier.CodeExpired},
		{name: "expired at the leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-leeway
		}), want: verifier.CodeExpired},
		{name: "expired with a smaller leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-5
		}), config: func(c *verifier.Config) { c.Leeway = 5 * time.Second }, want: verifier.CodeExpired},
		{name: "sub-second clock past the leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-leeway+1
		}), config: func(c *verifier.Config) {
			c.Now = func() time.Time { return now().Add(time.Second + time.Nanosecond) }
		}, want: verifier.CodeExpired},
		{name: "sub-second clock within the leeway", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-leeway+1
		}), config: func(c *verifier.Config) {
			c.Now = func() time.Time { return now().Add(time.Second - time.Nanosecond) }
		}},

		// issued_in_future
		{name: "issued in the future", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0+leeway+1, t0+leeway+1, t0+leeway+301
		}), want: verifier.CodeIssuedInFuture},
		{name: "issued far in the future", tok: withClaims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = t0+86400, t0+86400, t0+86400+300
		}), want: verifier.CodeIssuedInFuture},

		// not_yet_valid
		{name: "not yet valid", tok: withClaims(func(c *token.Claims) { c.NotBefore = t0 + leeway + 1 }), want: verifier.CodeNotYetValid},

		// wrong_audience
		{name: "other audience", tok: withClaims(func(c *token.Claims) { c.Audience = "https://other.example" }), want: verifier.CodeWrongAudience},
		{name: "audience prefix", tok: withClaims(func(c *token.Claims) { c.Audience = audience + "/admin" }), want: verifier.CodeWrongAudience},
		{name: "audience case", tok: withClaims(func(c *token.Claims) { c.Audience = strings.ToUpper(audience) }), want: verifier.CodeWrongAudience},

		// insufficient_scope
		{name: "missing scope", tok: withClaims(nil), scopes: []string{"read", "admin"}, want: verifier.CodeInsufficientScope},
		{name: "scope prefix", tok: withClaims(func(c *token.Claims) { c.Scope = "read:all" }), scopes: []string{"read"}, want: verifier.CodeInsufficientScope},
		{name: "empty required scope", tok: withClaims(nil), scopes: []string{""}, want: verifier.CodeInsufficientScope},
		{name: "two scopes as one", tok: withClaims(nil), scopes: []string{"read write"}, want: verifier.CodeInsufficientScope},

		// replayed
		{name: "replayed", tok: withClaims(nil), before: func(t *testing.T, v *verifier.Verifier, tok string) {
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("first Verify = %v", err)
			}
		}, want: verifier.CodeReplayed},
		{name: "replayed with other scopes", tok: withClaims(nil), scopes: []string{"write"}, before: func(t *testing.T, v *verifier.Verifier, tok string) {
			if _, err := v.Verify(t.Context(), tok, "read"); err != nil {
				t.Fatalf("first Verify = %v", err)
			}
		}, want: verifier.CodeReplayed},
		{name: "same jti from two issuers is no replay", tok: func(t testing.TB) string {
			c := claims()
			c.ID = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			c.Issuer = issuerB
			return mint(t, testKey("b"), header(t, testKey("b")), c)
		}, before: func(t *testing.T, v *verifier.Verifier, _ string) {
			tok := good(t, func(c *token.Claims) { c.ID = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("first Verify = %v", err)
			}
		}},

		// replay_store_unavailable
		{name: "replay store down", tok: withClaims(nil), config: func(c *verifier.Config) { c.Replay = failingCache{} },
			want: verifier.CodeReplayStoreUnavailable, wantErr: errStoreDown},
		{name: "replay cache full", tok: withClaims(nil), config: func(c *verifier.Config) {
			c.Replay = verifier.NewMemoryReplayCache(1, now)
		}, before: func(t *testing.T, v *verifier.Verifier, _ string) {
			if _, err := v.Verify(t.Context(), good(t)); err != nil {
				t.Fatalf("first Verify = %v", err)
			}
		}, want: verifier.CodeReplayStoreUnavailable, wantErr: verifier.ErrReplayCacheFull},
	}
	return append(cases, requirementCases()...)
}

// requirements returns the requirements of a case.
func (tc verifyCase) requirements(t testing.TB) verifier.Requirements {
	var r verifier.Requirements
	if tc.req != nil {
		r = tc.req(t)
	}
	if r.Scopes == nil {
		r.Scopes = tc.scopes
	}
	return r
}

// checkers are the ways a case is checked: through Check with the case's
// requirements and, for cases without requirements, through Verify.
func (tc verifyCase) checkers() map[string]func(t testing.TB, v *verifier.Verifier, tok string) (*token.Claims, error) {
	m := map[string]func(t testing.TB, v *verifier.Verifier, tok string) (*token.Claims, error){
		"Check": func(t testing.TB, v *verifier.Verifier, tok string) (*token.Claims, error) {
			return v.Check(t.Context(), tok, tc.requirements(t))
		},
	}
	if tc.req == nil {
		m["Verify"] = func(t testing.TB, v *verifier.Verifier, tok string) (*token.Claims, error) {
			return v.Verify(t.Context(), tok, tc.scopes...)
		}
	}
	return m
}

func TestVerify(t *testing.T) {
	covered := map[verifier.Code]bool{}
	for _, tc := range verifyCases() {
		for how, check := range tc.checkers() {
			t.Run(how+"/"+tc.name, func(t *testing.T) {
				cfg := testConfig(t)
				if tc.config != nil {
					tc.config(&cfg)
				}
				v, err := verifier.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				tok := tc.tok(t)
				if tc.before != nil {
					tc.before(t, v, tok)
				}
				c, err := check(t, v, tok)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("%s = %v, want success", how, err)
					}
					wantAud := tc.requirements(t).Audience
					if wantAud == "" {
						wantAud = audience
					}
					if c == nil || c.Audience != wantAud {
						t.Fatalf("%s returned claims %+v", how, c)
					}
					return
				}
				covered[tc.want] = true
				if c != nil {
					t.Fatalf("%s returned claims with error %v", how, err)
				}
				var verr *verifier.Error
				if !errors.As(err, &verr) {
					t.Fatalf("%s = %v (%T), want a *verifier.Error", how, err, err)
				}
				if verr.Code != tc.want || verifier.CodeOf(err) != tc.want {
					t.Fatalf("%s = %v, want code %s", how, err, tc.want)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("%s = %v, want it to wrap %v", how, err, tc.wantErr)
				}
				if got, want := err.Error(), string(tc.want)+": "+verr.Reason; got != want || verr.Reason == "" {
					t.Fatalf("Error() = %q, want %q with a reason", got, want)
				}
			})
		}
	}
	for _, code := range allCodes {
		if !covered[code] {
			t.Errorf("no test case for code %s", code)
		}
	}
}

// TestVerifyRefusalsSpareTheReplayCache checks that tokens refused for any
// reason before the replay check never reach the replay cache.
func TestVerifyRefusalsSpareTheReplayCache(t *testing.T) {
	for _, tc := range verifyCases() {
		if tc.want == "" || tc.want == verifier.CodeReplayed || tc.want == verifier.CodeReplayStoreUnavailable || tc.before != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			cache := &countingCache{inner: verifier.NewMemoryReplayCache(16, now)}
			cfg := testConfig(t)
			if tc.config != nil {
				tc.config(&cfg)
			}
			cfg.Replay = cache
			v, err := verifier.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Check(t.Context(), tc.tok(t), tc.requirements(t)); verifier.CodeOf(err) != tc.want {
				t.Fatalf("Check = %v, want %s", err, tc.want)
			}
			if n := cache.calls.Load(); n != 0 {
				t.Fatalf("a %s token reached the replay cache (%d calls)", tc.want, n)
			}
		})
	}
}

func TestVerifyReturnsClaims(t *testing.T) {
	v := newVerifier(t)
	want := claims()
	got, err := v.Verify(t.Context(), mint(t, testKey("a1"), header(t, testKey("a1")), want), "read")
	if err != nil {
		t.Fatal(err)
	}
	if *got != want {
		t.Fatalf("claims = %+v, want %+v", *got, want)
	}
}

// TestVerifyReplayExpiry checks the expiry the verifier hands the replay
// cache: exp + leeway, exactly when the token stops being accepted.
func TestVerifyReplayExpiry(t *testing.T) {
	var got time.Time
	v := newVerifier(t, func(c *verifier.Config) {
		c.Leeway = 7 * time.Second
		c.Replay = replayFunc(func(_ context.Context, _ string, exp time.Time) (bool, error) {
			got = exp
			return false, nil
		})
	})
	if _, err := v.Verify(t.Context(), good(t)); err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(t0+300+7, 0); !got.Equal(want) {
		t.Fatalf("replay expiry = %v, want %v", got, want)
	}
}

type replayFunc func(context.Context, string, time.Time) (bool, error)

func (f replayFunc) Seen(ctx context.Context, jti string, exp time.Time) (bool, error) {
	return f(ctx, jti, exp)
}

func TestCodeOf(t *testing.T) {
	e := &verifier.Error{Code: verifier.CodeExpired, Reason: "r", Err: token.ErrClaims}
	for _, tc := range []struct {
		err  error
		want verifier.Code
	}{
		{nil, ""},
		{errors.New("x"), ""},
		{e, verifier.CodeExpired},
		{fmt.Errorf("wrapped: %w", e), verifier.CodeExpired},
		{errors.Join(errors.New("x"), e), verifier.CodeExpired},
	} {
		if got := verifier.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if e.Error() != "expired: r" || !errors.Is(e, token.ErrClaims) {
		t.Errorf("Error() = %q, Unwrap = %v", e.Error(), e.Unwrap())
	}
}

func TestConfigValidate(t *testing.T) {
	ks := keySet(t, testKey("a1"))
	var nilSet jwks.KeySet
	for _, tc := range []struct {
		name   string
		mutate func(*verifier.Config)
		nerrs  int // 0: valid
	}{
		{"valid", func(*verifier.Config) {}, 0},
		{"max leeway", func(c *verifier.Config) { c.Leeway = verifier.MaxLeeway }, 0},
		{"lower max TTL", func(c *verifier.Config) { c.MaxTTL = time.Minute }, 0},
		{"no issuer", func(c *verifier.Config) { c.Issuers = nil }, 1},
		{"empty issuer", func(c *verifier.Config) { c.Issuers = []verifier.Issuer{{Keys: ks}} }, 1},
		{"duplicate issuer", func(c *verifier.Config) {
			c.Issuers = []verifier.Issuer{{Issuer: issuerA, Keys: ks}, {Issuer: issuerA, Keys: ks}}
		}, 1},
		{"nil keys", func(c *verifier.Config) { c.Issuers = []verifier.Issuer{{Issuer: issuerA, Keys: nilSet}} }, 1},
		{"no audience", func(c *verifier.Config) { c.Audience = "" }, 1},
		{"negative leeway", func(c *verifier.Config) { c.Leeway = -time.Second }, 1},
		{"leeway too large", func(c *verifier.Config) { c.Leeway = verifier.MaxLeeway + 1 }, 1},
		{"negative max TTL", func(c *verifier.Config) { c.MaxTTL = -time.Second }, 1},
		{"max TTL above the profile cap", func(c *verifier.Config) { c.MaxTTL = token.MaxTTL + time.Second }, 1},
		{"everything wrong", func(c *verifier.Config) {
			*c = verifier.Config{Leeway: time.Hour, MaxTTL: time.Hour}
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			err := cfg.Validate()
			v, newErr := verifier.New(cfg)
			if tc.nerrs == 0 {
				if err != nil || newErr != nil || v == nil {
					t.Fatalf("Validate = %v, New = %v", err, newErr)
				}
				return
			}
			if !errors.Is(err, verifier.ErrConfig) || !errors.Is(newErr, verifier.ErrConfig) || v != nil {
				t.Fatalf("Validate = %v, New = %v, want ErrConfig", err, newErr)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok || len(joined.Unwrap()) != tc.nerrs {
				t.Fatalf("Validate = %v, want %d problems", err, tc.nerrs)
			}
			for _, e := range joined.Unwrap() {
				if !errors.Is(e, verifier.ErrConfig) {
					t.Errorf("problem %v does not wrap ErrConfig", e)
				}
			}
		})
	}
}

// TestNewDefaults checks the defaults through behaviour: the default
// leeway is 30 seconds, the default cap is token.MaxTTL, and the default
// replay cache refuses a second use.
func TestNewDefaults(t *testing.T) {
	v := newVerifier(t)
	in := good(t, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-29 })
	if _, err := v.Verify(t.Context(), in); err != nil {
		t.Errorf("token expired 29s ago: %v", err)
	}
	out := good(t, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-300, t0-300, t0-30 })
	if _, err := v.Verify(t.Context(), out); verifier.CodeOf(err) != verifier.CodeExpired {
		t.Errorf("token expired 30s ago: %v", err)
	}
	full := good(t, func(c *token.Claims) { c.Expiry = c.IssuedAt + int64(token.MaxTTL/time.Second) })
	if _, err := v.Verify(t.Context(), full); err != nil {
		t.Errorf("token of token.MaxTTL: %v", err)
	}
	if _, err := v.Verify(t.Context(), full); verifier.CodeOf(err) != verifier.CodeReplayed {
		t.Errorf("second use: %v", err)
	}

	// Now defaults to the real clock.
	real := verifier.Config{Issuers: testIssuers(t), Audience: audience}
	rv, err := verifier.New(real)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rv.Verify(t.Context(), good(t)); verifier.CodeOf(err) != verifier.CodeExpired {
		t.Errorf("a 2023 token on the real clock: %v", err)
	}
}
