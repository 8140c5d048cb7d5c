package verifier_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

// These tests check frostmint against an independent JOSE implementation,
// go-jose: what we mint and publish, go-jose verifies; what go-jose signs in
// our profile, we verify; and the confusions go-jose can be asked to make,
// we refuse.

func goJOSEKeySet(t *testing.T, keys ...ed25519.PrivateKey) jose.JSONWebKeySet {
	t.Helper()
	pubs := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		pubs[i] = pubOf(k)
	}
	doc, err := jwks.Marshal(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestGoJOSEVerifiesOurTokens(t *testing.T) {
	set := goJOSEKeySet(t, testKey("a1"), testKey("a2"))
	c := claims()
	tok := good(t, func(x *token.Claims) { *x = c })

	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if h.Algorithm != "EdDSA" || h.KeyID != kidOf(t, testKey("a1")) || h.ExtraHeaders["typ"] != "at+jwt" {
		t.Fatalf("go-jose reads header %+v", h)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("go-jose finds %d keys of kid %s in our JWKS", len(keys), h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("go-jose does not verify our token: %v", err)
	}
	if string(payload) != claimsJSON(t, c) {
		t.Fatalf("payload = %s", payload)
	}
	// The other key of the set must not verify it.
	if _, err := jws.Verify(set.Key(kidOf(t, testKey("a2")))[0]); err == nil {
		t.Fatal("go-jose verified our token under the wrong key")
	}

	// And through go-jose's JWT layer, with its own time and audience
	// checks.
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var std jwt.Claims
	var extra struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	if err := parsed.Claims(keys[0], &std, &extra); err != nil {
		t.Fatal(err)
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer:      issuerA,
		Subject:     "alice",
		AnyAudience: jwt.Audience{audience},
		ID:          c.ID,
		Time:        now(),
	}, 0)
	if err != nil {
		t.Fatalf("go-jose jwt validation: %v", err)
	}
	if extra.ClientID != c.ClientID || extra.Scope != c.Scope {
		t.Fatalf("go-jose reads client_id %q scope %q", extra.ClientID, extra.Scope)
	}
}

func goJOSESigner(t *testing.T, k ed25519.PrivateKey, opts *jose.SignerOptions) jose.Signer {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: k},
		opts.WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), kidOf(t, k)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWeVerifyGoJOSETokens(t *testing.T) {
	v := newVerifier(t, func(c *verifier.Config) { c.Replay = nopCache{} })
	want := claims()

	// A raw JWS over our claims.
	obj, err := goJOSESigner(t, testKey("a1"), nil).Sign([]byte(claimsJSON(t, want)))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(t.Context(), tok, "read")
	if err != nil {
		t.Fatalf("Verify(go-jose JWS %s) = %v", tok, err)
	}
	if *got != want {
		t.Fatalf("claims = %+v, want %+v", *got, want)
	}

	// A JWT through go-jose's JWT builder, with our claims struct.
	tok, err = jwt.Signed(goJOSESigner(t, testKey("a2"), nil)).Claims(want).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify(go-jose JWT %s) = %v", tok, err)
	}
}

func TestWeRefuseGoJOSEConfusions(t *testing.T) {
	v := newVerifier(t, func(c *verifier.Config) { c.Replay = nopCache{} })
	payload := []byte(claimsJSON(t, claims()))
	sign := func(t *testing.T, s jose.Signer) string {
		t.Helper()
		obj, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The classic algorithm confusion: an HMAC keyed with the public key.
	hmac := func(alg jose.SignatureAlgorithm) func(t *testing.T) jose.Signer {
		return func(t *testing.T) jose.Signer {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: []byte(pubOf(testKey("a1")))},
				(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kidOf(t, testKey("a1"))))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	for _, tc := range []struct {
		name   string
		signer func(t *testing.T) jose.Signer
		want   verifier.Code
	}{
		// A 32-byte tag is refused before the header is looked at. (go-jose
		// will not make an HS512 tag with a 32-byte key; the table test has
		// one, of the length of an Ed25519 signature.)
		{"HS256 with the public key", hmac(jose.HS256), verifier.CodeMalformed},
		{"crit", func(t *testing.T) jose.Signer {
			return goJOSESigner(t, testKey("a1"), (&jose.SignerOptions{}).WithCritical("exp").WithHeader("exp", t0+300))
		}, verifier.CodeBadHeader},
		{"cty", func(t *testing.T) jose.Signer {
			return goJOSESigner(t, testKey("a1"), (&jose.SignerOptions{}).WithContentType("JWT"))
		}, verifier.CodeBadHeader},
		{"embedded JWK", func(t *testing.T) jose.Signer {
			return goJOSESigner(t, testKey("evil"), &jose.SignerOptions{EmbedJWK: true})
		}, verifier.CodeBadHeader},
		{"nonce", func(t *testing.T) jose.Signer {
			return goJOSESigner(t, testKey("a1"), (&jose.SignerOptions{}).WithHeader("nonce", "n"))
		}, verifier.CodeBadHeader},
		{"unknown key", func(t *testing.T) jose.Signer { return goJOSESigner(t, testKey("evil"), nil) }, verifier.CodeUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, tc.signer(t))
			if _, err := v.Verify(t.Context(), tok); verifier.CodeOf(err) != tc.want {
				t.Fatalf("Verify(%s) = %v, want %s", tok, err, tc.want)
			}
		})
	}
}

// TestCrossCheckTime pins the clock semantics against go-jose's: a token
// expired for go-jose (without leeway) is expired for us once the leeway has
// passed too. (go-jose accepts a token at the very second of its exp; RFC
// 7519 and we do not, but our leeway covers that second.)
func TestCrossCheckTime(t *testing.T) {
	c := claims()
	tok := good(t, func(x *token.Claims) { *x = c })
	for _, tc := range []struct {
		at       time.Time
		goJOSEOK bool
		oursOK   bool
	}{
		{time.Unix(c.Expiry-1, 0), true, true},
		{time.Unix(c.Expiry, 0), true, true},
		{time.Unix(c.Expiry+1, 0), false, true}, // within our 30s leeway
		{time.Unix(c.Expiry+29, 0), false, true},
		{time.Unix(c.Expiry+30, 0), false, false},
	} {
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		var std jwt.Claims
		if err := parsed.Claims(pubOf(testKey("a1")), &std); err != nil {
			t.Fatal(err)
		}
		goErr := std.ValidateWithLeeway(jwt.Expected{Time: tc.at}, 0)
		if (goErr == nil) != tc.goJOSEOK {
			t.Errorf("at %d: go-jose says %v", tc.at.Unix(), goErr)
		}
		v := newVerifier(t, func(cfg *verifier.Config) {
			cfg.Now = func() time.Time { return tc.at }
			cfg.Replay = nopCache{}
		})
		if _, err := v.Verify(t.Context(), tok); (err == nil) != tc.oursOK {
			t.Errorf("at %d: we say %v", tc.at.Unix(), err)
		}
	}
}
