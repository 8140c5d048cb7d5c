package evidence_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/evidence/oidctest"
)

const oidcAudience = "frostmint"

// startIssuer starts an oidctest issuer on clk, closed at the end of t.
func startIssuer(t testing.TB, alg string, clk *clock) *oidctest.Issuer {
	t.Helper()
	is, err := oidctest.Start(alg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	is.SetNow(clk.Now)
	return is
}

// oidcVerifier trusts the issuers on clk.
func oidcVerifier(t testing.TB, clk *clock, issuers ...evidence.OIDCIssuer) *evidence.Verifier {
	t.Helper()
	v, err := evidence.New(t.Context(), evidence.Config{OIDC: issuers, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func oidcRequest() evidence.Request {
	// No nonce and no timestamp: an ID token does not bind them.
	return evidence.Request{Audience: "https://api.example.com", Scopes: []string{"read"}}
}

// claims returns the standard claims of a valid token of is at base.
func claims(is *oidctest.Issuer, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": is.URL, "aud": oidcAudience, "sub": "repo:octo/app:ref:refs/heads/main",
		"iat": base.Unix(), "nbf": base.Unix(), "exp": base.Add(5 * time.Minute).Unix(), "jti": "jti-1",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func signClaims(t testing.TB, is *oidctest.Issuer, extra map[string]any) string {
	t.Helper()
	tok, err := is.Sign(claims(is, extra))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyOIDC(t *testing.T) {
	clk := newClock(base)
	gh := startIssuer(t, "RS256", clk)
	k8s := startIssuer(t, "ES256", clk)
	ed := startIssuer(t, "EdDSA", clk)
	withClient := startIssuer(t, "RS256", clk)
	cfgClient := withClient.Config("gh2", oidcAudience)
	cfgClient.ClientIDClaim = "repository"
	v := oidcVerifier(t, clk, gh.Config("github", oidcAudience), k8s.Config("k8s", oidcAudience),
		ed.Config("ed", oidcAudience), cfgClient)

	t.Run("GitHub", func(t *testing.T) {
		tok, err := gh.GitHubToken(oidcAudience, "octo/app", "refs/heads/main", "Deploy Prod", "", 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if id.Kind != evidence.KindOIDC || id.Subject != "github:repo:octo/app:ref:refs/heads/main" ||
			id.ClientID != id.Subject || id.Issuer != "github" {
			t.Fatalf("identity %+v", id)
		}
		for k, want := range map[string]any{
			"repository": "octo/app", "repository_owner": "octo", "ref": "refs/heads/main", "ref_type": "branch",
			"workflow": "Deploy Prod", "event_name": "push",
			"job_workflow_ref": "octo/app/.github/workflows/deploy-prod.yml@refs/heads/main",
		} {
			if id.Claims[k] != want {
				t.Errorf("claim %s = %v, want %v", k, id.Claims[k], want)
			}
		}
		if _, ok := id.Claims["environment"]; ok {
			t.Error("environment claim without an environment")
		}
		jti, _ := id.Claims["jti"].(string)
		if jti == "" || id.UseKey != "oidc:"+gh.URL+":jti:"+jti {
			t.Fatalf("use key %q (jti %q)", id.UseKey, jti)
		}
		if id.Claims["exp"] != json.Number(fmt.Sprint(base.Add(5*time.Minute).Unix())) {
			t.Fatalf("exp claim %#v", id.Claims["exp"])
		}
		if !id.Expiry.Equal(base.Add(5*time.Minute + evidence.DefaultLeeway)) {
			t.Fatalf("expiry %v", id.Expiry)
		}
	})
	t.Run("GitHub environment", func(t *testing.T) {
		tok, _ := gh.GitHubToken(oidcAudience, "octo/app", "refs/tags/v1.2.3", "release", "production", 5*time.Minute)
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "github:repo:octo/app:environment:production" || id.Claims["environment"] != "production" ||
			id.Claims["ref_type"] != "tag" {
			t.Fatalf("identity %+v", id)
		}
	})
	t.Run("Kubernetes", func(t *testing.T) {
		tok, err := k8s.KubernetesToken(oidcAudience, "prod", "api", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "k8s:system:serviceaccount:prod:api" || id.Issuer != "k8s" {
			t.Fatalf("identity %+v", id)
		}
		kio, _ := id.Claims["kubernetes.io"].(map[string]any)
		sa, _ := kio["serviceaccount"].(map[string]any)
		if kio["namespace"] != "prod" || sa["name"] != "api" || sa["uid"] == "" {
			t.Fatalf("kubernetes.io claim %v", id.Claims["kubernetes.io"])
		}
		if aud, _ := id.Claims["aud"].([]any); len(aud) != 1 || aud[0] != oidcAudience {
			t.Fatalf("aud %v", id.Claims["aud"])
		}
	})
	t.Run("EdDSA", func(t *testing.T) {
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, ed, nil)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client id claim", func(t *testing.T) {
		tok, _ := withClient.GitHubToken(oidcAudience, "octo/app", "refs/heads/main", "ci", "", time.Minute)
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if id.ClientID != "gh2:octo/app" || id.Subject != "gh2:repo:octo/app:ref:refs/heads/main" {
			t.Fatalf("identity %+v", id)
		}
		_, err = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, withClient, nil)})
		wantErr(t, err, evidence.ErrInvalid) // no repository claim
	})
	t.Run("subject claim", func(t *testing.T) {
		clk := newClock(base)
		is := startIssuer(t, "ES256", clk)
		cfg := is.Config("mail", oidcAudience)
		cfg.SubjectClaim = "email"
		v := oidcVerifier(t, clk, cfg)
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, map[string]any{"email": "a@example.com"})})
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "mail:a@example.com" {
			t.Fatalf("subject %q", id.Subject)
		}
		_, err = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)})
		wantErr(t, err, evidence.ErrInvalid)
	})
	t.Run("no jti", func(t *testing.T) {
		tok := signClaims(t, gh, map[string]any{"jti": nil})
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(tok[:strings.LastIndexByte(tok, '.')]))
		if id.UseKey != "oidc:"+gh.URL+":sha256:"+hex.EncodeToString(h[:]) {
			t.Fatalf("use key %q", id.UseKey)
		}
	})
	t.Run("Expiry is the first refused instant", func(t *testing.T) {
		clk := newClock(base)
		is := startIssuer(t, "EdDSA", clk)
		v := oidcVerifier(t, clk, is.Config("ed", oidcAudience))
		tok := signClaims(t, is, nil)
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		clk.Set(id.Expiry.Add(-time.Second))
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok}); err != nil {
			t.Fatalf("a second before Expiry: %v", err)
		}
		clk.Set(id.Expiry)
		_, err = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrExpired)
	})
	t.Run("no jti, ECDSA re-signed", func(t *testing.T) {
		// ECDSA signatures are randomized: two tokens with the same content
		// are the same evidence.
		c := claims(k8s, map[string]any{"jti": nil})
		t1, _ := k8s.Sign(c)
		t2, _ := k8s.Sign(c)
		if t1 == t2 {
			t.Fatal("ECDSA gave the same signature twice")
		}
		id1, err1 := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: t1})
		id2, err2 := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: t2})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if id1.UseKey != id2.UseKey {
			t.Fatalf("use keys differ: %q, %q", id1.UseKey, id2.UseKey)
		}
	})
	t.Run("request nonce and timestamp are not looked at", func(t *testing.T) {
		r := testRequest(base.Add(-time.Hour)) // a stale proof timestamp: irrelevant here
		if _, err := v.Verify(t.Context(), r, evidence.Evidence{OIDCToken: signClaims(t, gh, nil)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fractional dates", func(t *testing.T) {
		tok := signClaims(t, gh, map[string]any{"iat": float64(base.Unix()) + 0.5, "exp": float64(base.Add(time.Minute).Unix()) + 0.25})
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok}); err != nil {
			t.Fatal(err)
		}
	})
}

// hsToken returns a token of claims MACed with HS256 under secret, with kid.
func hsToken(t testing.TB, secret []byte, kid string, c map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(c)
	obj, err := s.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// keyToken returns a token of claims signed by key as alg, with kid.
func keyToken(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, c map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(c)
	obj, err := s.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyOIDCRefusals(t *testing.T) {
	clk := newClock(base)
	is := startIssuer(t, "RS256", clk)
	ec := startIssuer(t, "ES256", clk)
	v := oidcVerifier(t, clk, is.Config("github", oidcAudience), ec.Config("ec", oidcAudience))
	// Another verifier where the ES256 issuer may only use EdDSA.
	ecCfg := ec.Config("ec", oidcAudience)
	ecCfg.Algorithms = []string{"EdDSA"}
	vEdOnly := oidcVerifier(t, clk, ecCfg)

	rsaPub := is.PublicKey().(*rsa.PublicKey)
	rsaDER, _ := x509.MarshalPKIXPublicKey(rsaPub)
	good := signClaims(t, is, nil)
	goodSegs := strings.Split(good, ".")
	raw := func(t *testing.T, header map[string]any, payload string) string {
		tok, err := is.SignRaw(header, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	payloadOf := func(extra map[string]any) string {
		b, _ := json.Marshal(claims(is, extra))
		return string(b)
	}

	for _, c := range []struct {
		name string
		v    *evidence.Verifier
		tok  func(t *testing.T) string
		want error
	}{
		// Signature and algorithm.
		{"forged: another key, same kid", nil, func(t *testing.T) string {
			return keyToken(t, jose.RS256, testKey(t, "rsa2"), is.KeyID(), claims(is, nil))
		}, evidence.ErrUntrusted},
		{"forged: another key, its own kid", nil, func(t *testing.T) string {
			return keyToken(t, jose.RS256, testKey(t, "rsa2"), "attacker", claims(is, nil))
		}, evidence.ErrUntrusted},
		{"HS256 with the RSA public key (DER) as secret", nil, func(t *testing.T) string {
			return hsToken(t, rsaDER, is.KeyID(), claims(is, nil))
		}, evidence.ErrUntrusted},
		{"HS256 with the RSA public key (PEM) as secret", nil, func(t *testing.T) string {
			pemKey := "-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(rsaDER) + "\n-----END PUBLIC KEY-----\n"
			return hsToken(t, []byte(pemKey), is.KeyID(), claims(is, nil))
		}, evidence.ErrUntrusted},
		{"alg none", nil, func(t *testing.T) string {
			return b64(`{"alg":"none","kid":"`+is.KeyID()+`","typ":"JWT"}`) + "." + b64(payloadOf(nil)) + ".AA"
		}, evidence.ErrUntrusted},
		{"alg none, empty signature", nil, func(t *testing.T) string {
			return b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(payloadOf(nil)) + "."
		}, evidence.ErrInvalid},
		{"alg PS256", nil, func(t *testing.T) string { return raw(t, map[string]any{"alg": "PS256"}, payloadOf(nil)) }, evidence.ErrUntrusted},
		{"alg RS512", nil, func(t *testing.T) string { return raw(t, map[string]any{"alg": "RS512"}, payloadOf(nil)) }, evidence.ErrUntrusted},
		{"alg ES256 over the RSA key", nil, func(t *testing.T) string {
			return keyToken(t, jose.ES256, testKey(t, "ecdsa"), is.KeyID(), claims(is, nil))
		}, evidence.ErrUntrusted},
		{"alg EdDSA over the RSA key", nil, func(t *testing.T) string {
			return keyToken(t, jose.EdDSA, testKey(t, "ed25519"), is.KeyID(), claims(is, nil))
		}, evidence.ErrUntrusted},
		{"alg not allowed for the issuer", vEdOnly, func(t *testing.T) string {
			return signClaims(t, ec, nil)
		}, evidence.ErrUntrusted},
		{"unknown kid", nil, func(t *testing.T) string { return raw(t, map[string]any{"kid": "nope"}, payloadOf(nil)) }, evidence.ErrUntrusted},
		{"no kid", nil, func(t *testing.T) string { return raw(t, map[string]any{"kid": nil}, payloadOf(nil)) }, evidence.ErrInvalid},
		{"mangled signature", nil, func(t *testing.T) string {
			sig, _ := base64.RawURLEncoding.DecodeString(goodSegs[2])
			sig[7] ^= 0x10
			return goodSegs[0] + "." + goodSegs[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, evidence.ErrUntrusted},
		{"payload swapped", nil, func(t *testing.T) string {
			return goodSegs[0] + "." + b64(payloadOf(map[string]any{"sub": "repo:octo/admin:ref:refs/heads/main"})) + "." + goodSegs[2]
		}, evidence.ErrUntrusted},

		// Header.
		{"jku header", nil, func(t *testing.T) string {
			return raw(t, map[string]any{"jku": "https://evil.example/jwks"}, payloadOf(nil))
		}, evidence.ErrInvalid},
		{"embedded jwk", nil, func(t *testing.T) string {
			return raw(t, map[string]any{"jwk": map[string]any{"kty": "oct", "k": "AAAA"}}, payloadOf(nil))
		}, evidence.ErrInvalid},
		{"x5u header", nil, func(t *testing.T) string {
			return raw(t, map[string]any{"x5u": "https://evil.example/c"}, payloadOf(nil))
		}, evidence.ErrInvalid},
		{"x5c header", nil, func(t *testing.T) string { return raw(t, map[string]any{"x5c": []string{"AAAA"}}, payloadOf(nil)) }, evidence.ErrInvalid},
		{"crit header", nil, func(t *testing.T) string {
			return raw(t, map[string]any{"crit": []string{"exp"}, "exp": 1}, payloadOf(nil))
		}, evidence.ErrInvalid},
		{"b64 false", nil, func(t *testing.T) string {
			return raw(t, map[string]any{"b64": false, "crit": []string{"b64"}}, payloadOf(nil))
		}, evidence.ErrInvalid},
		{"cty JWT (nested)", nil, func(t *testing.T) string { return raw(t, map[string]any{"cty": "JWT"}, payloadOf(nil)) }, evidence.ErrInvalid},
		{"typ at+jwt", nil, func(t *testing.T) string { return raw(t, map[string]any{"typ": "at+jwt"}, payloadOf(nil)) }, evidence.ErrUntrusted},
		{"typ not a string", nil, func(t *testing.T) string { return raw(t, map[string]any{"typ": 1}, payloadOf(nil)) }, evidence.ErrInvalid},
		{"kid not a string", nil, func(t *testing.T) string { return raw(t, map[string]any{"kid": 7}, payloadOf(nil)) }, evidence.ErrInvalid},
		{"header not JSON", nil, func(t *testing.T) string { return b64("alg") + "." + goodSegs[1] + "." + goodSegs[2] }, evidence.ErrInvalid},
		{"header duplicate alg", nil, func(t *testing.T) string {
			return b64(`{"alg":"RS256","alg":"none","kid":"`+is.KeyID()+`"}`) + "." + goodSegs[1] + "." + goodSegs[2]
		}, evidence.ErrInvalid},

		// Structure.
		{"two segments", nil, func(t *testing.T) string { return goodSegs[0] + "." + goodSegs[1] }, evidence.ErrInvalid},
		{"four segments", nil, func(t *testing.T) string { return good + ".AA" }, evidence.ErrInvalid},
		{"JSON serialization", nil, func(t *testing.T) string {
			return `{"protected":"` + goodSegs[0] + `","payload":"` + goodSegs[1] + `","signature":"` + goodSegs[2] + `"}`
		}, evidence.ErrInvalid},
		{"line break", nil, func(t *testing.T) string { return goodSegs[0] + ".\n" + goodSegs[1] + "." + goodSegs[2] }, evidence.ErrInvalid},
		{"trailing newline", nil, func(t *testing.T) string { return good + "\n" }, evidence.ErrInvalid},
		{"padding", nil, func(t *testing.T) string { return good + "==" }, evidence.ErrInvalid},
		{"standard base64", nil, func(t *testing.T) string {
			return strings.NewReplacer("-", "+", "_", "/").Replace(good)
		}, evidence.ErrInvalid},
		{"non-canonical base64 (padding bits)", nil, func(t *testing.T) string {
			// A 256-byte signature leaves 4 spare bits in its last
			// character: setting one decodes to the same signature, and
			// go-jose alone would accept the token.
			s := goodSegs[2]
			last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", s[len(s)-1])
			alt := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1]
			return goodSegs[0] + "." + goodSegs[1] + "." + s[:len(s)-1] + string(alt)
		}, evidence.ErrInvalid},
		{"too large", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"pad": strings.Repeat("x", evidence.MaxTokenSize)}))
		}, evidence.ErrInvalid},

		// Claims.
		{"wrong iss", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"iss": "https://evil.example"}))
		}, evidence.ErrUntrusted},
		{"iss with trailing slash", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"iss": is.URL + "/"})) }, evidence.ErrUntrusted},
		{"no iss", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"iss": nil})) }, evidence.ErrInvalid},
		{"iss of the other issuer", nil, func(t *testing.T) string {
			// Signed by is, claiming ec: checked against ec's keys.
			return raw(t, nil, payloadOf(map[string]any{"iss": ec.URL}))
		}, evidence.ErrUntrusted},
		{"wrong aud", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"aud": "other"})) }, evidence.ErrUntrusted},
		{"aud array without ours", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"aud": []string{"a", "b"}}))
		}, evidence.ErrUntrusted},
		{"aud prefix", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"aud": oidcAudience + "x"})) }, evidence.ErrUntrusted},
		{"no aud", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"aud": nil})) }, evidence.ErrUntrusted},
		{"expired", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"iat": base.Add(-time.Hour).Unix(), "exp": base.Add(-time.Minute).Unix()}))
		}, evidence.ErrExpired},
		{"expired by exactly the leeway", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"iat": base.Add(-time.Hour).Unix(), "exp": base.Add(-evidence.DefaultLeeway).Unix()}))
		}, evidence.ErrExpired},
		{"not yet valid", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"nbf": base.Add(time.Minute).Unix()}))
		}, evidence.ErrExpired},
		{"issued in the future", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"iat": base.Add(time.Minute).Unix(), "nbf": nil, "exp": base.Add(10 * time.Minute).Unix()}))
		}, evidence.ErrExpired},
		{"too long-lived", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"exp": base.Add(time.Hour + time.Second).Unix()}))
		}, evidence.ErrExpired},
		{"a day long", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"iat": base.Add(-time.Hour).Unix(), "exp": base.Add(23 * time.Hour).Unix()}))
		}, evidence.ErrExpired},
		{"exp before iat", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"exp": base.Add(-time.Second).Unix()}))
		}, evidence.ErrInvalid},
		{"no exp", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"exp": nil})) }, evidence.ErrInvalid},
		{"no iat", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"iat": nil})) }, evidence.ErrInvalid},
		{"exp a string", nil, func(t *testing.T) string {
			return raw(t, nil, payloadOf(map[string]any{"exp": fmt.Sprint(base.Add(time.Minute).Unix())}))
		}, evidence.ErrInvalid},
		{"exp negative", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"exp": -1})) }, evidence.ErrInvalid},
		{"exp huge", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"exp": 1e300})) }, evidence.ErrInvalid},
		{"no sub", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"sub": nil})) }, evidence.ErrInvalid},
		{"empty sub", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"sub": ""})) }, evidence.ErrInvalid},
		{"numeric sub", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"sub": 42})) }, evidence.ErrInvalid},
		{"sub with a newline", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"sub": "a\nb"})) }, evidence.ErrInvalid},
		{"sub with a lone surrogate", nil, func(t *testing.T) string {
			return raw(t, nil, strings.Replace(payloadOf(map[string]any{"sub": "XX"}), "XX", `a\ud800`, 1))
		}, evidence.ErrInvalid},
		{"empty jti", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"jti": ""})) }, evidence.ErrInvalid},
		{"numeric jti", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(map[string]any{"jti": 5})) }, evidence.ErrInvalid},
		{"duplicate sub", nil, func(t *testing.T) string {
			p := payloadOf(nil)
			return raw(t, nil, p[:len(p)-1]+`,"sub":"repo:octo/admin:ref:refs/heads/main"}`)
		}, evidence.ErrInvalid},
		{"duplicate nested member", nil, func(t *testing.T) string {
			p := payloadOf(nil)
			return raw(t, nil, p[:len(p)-1]+`,"x":{"a":1,"a":2}}`)
		}, evidence.ErrInvalid},
		{"claims not an object", nil, func(t *testing.T) string { return raw(t, nil, `["iss"]`) }, evidence.ErrInvalid},
		{"claims with trailing data", nil, func(t *testing.T) string { return raw(t, nil, payloadOf(nil)+"{}") }, evidence.ErrInvalid},
		{"claims not UTF-8", nil, func(t *testing.T) string {
			return raw(t, nil, strings.Replace(payloadOf(map[string]any{"x": "XX"}), "XX", "\xff", 1))
		}, evidence.ErrInvalid},
		{"claims nested too deep", nil, func(t *testing.T) string {
			p := payloadOf(nil)
			return raw(t, nil, p[:len(p)-1]+`,"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+"}")
		}, evidence.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			vv := c.v
			if vv == nil {
				vv = v
			}
			tok := c.tok(t)
			id, err := vv.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
			wantErr(t, err, c.want)
			if id != nil {
				t.Fatalf("identity returned with an error: %+v", id)
			}
			// Never the token (a bearer credential) in a message.
			msg := err.Error()
			segs := strings.Split(tok, ".")
			for _, s := range append(segs, tok) {
				if len(s) >= 16 && strings.Contains(msg, s) {
					t.Fatalf("the error holds a token segment: %s", msg)
				}
			}
			if len(tok) >= 16 && !strings.Contains(msg, "token sha256:") {
				t.Fatalf("the error does not name the token by its hash: %s", msg)
			}
		})
	}

	t.Run("invalid request", func(t *testing.T) {
		_, err := v.Verify(t.Context(), evidence.Request{Audience: "a b", Scopes: []string{"read"}}, evidence.Evidence{OIDCToken: good})
		wantErr(t, err, evidence.ErrInvalid)
	})
	t.Run("leeway", func(t *testing.T) {
		in := raw(t, nil, payloadOf(map[string]any{"iat": base.Add(-time.Hour).Unix(), "exp": base.Add(-evidence.DefaultLeeway + time.Second).Unix()}))
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: in}); err != nil {
			t.Fatalf("within the leeway: %v", err)
		}
		early := raw(t, nil, payloadOf(map[string]any{"iat": base.Add(20 * time.Second).Unix(), "nbf": base.Add(20 * time.Second).Unix()}))
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: early}); err != nil {
			t.Fatalf("iat and nbf within the leeway: %v", err)
		}
		exactHour := raw(t, nil, payloadOf(map[string]any{"exp": base.Add(time.Hour).Unix()}))
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: exactHour}); err != nil {
			t.Fatalf("exactly MaxOIDCLifetime: %v", err)
		}
	})
	t.Run("no issuer configured", func(t *testing.T) {
		ca := newCA(t, "root")
		certOnly, err := evidence.New(t.Context(), evidence.Config{Roots: ca.pool(), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		_, err = certOnly.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: good})
		wantErr(t, err, evidence.ErrUntrusted)
	})
}

// TestOIDCKeyRefresh: keys are fetched lazily and cached, an unknown kid
// fetches again at most once per JWKSMinInterval, and the keys are fetched
// again every JWKSRefreshInterval.
func TestOIDCKeyRefresh(t *testing.T) {
	clk := newClock(base)
	is := startIssuer(t, "ES256", clk)
	v := oidcVerifier(t, clk, is.Config("k8s", oidcAudience))
	ok := func(tok string) {
		t.Helper()
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok}); err != nil {
			t.Fatal(err)
		}
	}
	requests := func(want int) {
		t.Helper()
		if got := is.JWKSRequests(); got != want {
			t.Fatalf("%d JWKS requests, want %d", got, want)
		}
	}
	token := func() string {
		clk.Advance(0)
		tok, err := is.KubernetesToken(oidcAudience, "prod", "api", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	if is.JWKSRequests() != 0 || is.DiscoveryRequests() != 0 {
		t.Fatal("New fetched the keys")
	}
	old := token()
	ok(old)
	requests(1)
	ok(token())
	ok(old)
	requests(1) // cached

	// Rotation: the new kid is unknown, and fetching again is rate-limited.
	if err := is.RotateKey(); err != nil {
		t.Fatal(err)
	}
	rotated := token()
	for range 5 {
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: rotated})
		wantErr(t, err, evidence.ErrUntrusted)
	}
	requests(1)
	clk.Advance(evidence.JWKSMinInterval)
	ok(rotated)
	requests(2)
	// The old key is gone, and asking for it again is rate-limited.
	for range 5 {
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: old})
		wantErr(t, err, evidence.ErrUntrusted)
	}
	requests(2)
	// Tokens naming random kids do not make it fetch either.
	for i := range 5 {
		tok, _ := is.SignRaw(map[string]any{"kid": fmt.Sprint("random-", i)}, mustJSON(claims(is, map[string]any{"iss": is.URL})))
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUntrusted)
	}
	requests(2)

	// Periodic refresh.
	clk.Advance(evidence.JWKSRefreshInterval - time.Second)
	ok(token())
	requests(2)
	clk.Advance(time.Second)
	ok(token())
	requests(3)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestOIDCKeysConcurrent: concurrent first verifications share one fetch.
func TestOIDCKeysConcurrent(t *testing.T) {
	clk := newClock(base)
	is := startIssuer(t, "EdDSA", clk)
	v := oidcVerifier(t, clk, is.Config("ed", oidcAudience))
	tok := signClaims(t, is, nil)
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := is.JWKSRequests(); n != 1 {
		t.Fatalf("%d JWKS requests, want 1", n)
	}
}

// TestOIDCUnavailable: keys that cannot be fetched refuse with
// ErrUnavailable, old keys are not used past JWKSRefreshInterval, and a
// failing issuer is not asked more than once per JWKSMinInterval.
func TestOIDCUnavailable(t *testing.T) {
	t.Run("discovery unreachable", func(t *testing.T) {
		clk := newClock(base)
		is := startIssuer(t, "RS256", clk)
		tok := signClaims(t, is, nil)
		cfg := is.Config("gone", oidcAudience)
		is.Close()
		v := oidcVerifier(t, clk, cfg)
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUnavailable)
	})
	t.Run("issuer down, then back", func(t *testing.T) {
		clk := newClock(base)
		is := startIssuer(t, "ES256", clk)
		v := oidcVerifier(t, clk, is.Config("k8s", oidcAudience))
		is.SetUnavailable(true)
		tok := signClaims(t, is, nil)
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUnavailable)
		d := is.DiscoveryRequests()
		// Within JWKSMinInterval the failure is remembered, not retried.
		_, err = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUnavailable)
		if is.DiscoveryRequests() != d {
			t.Fatal("a failing issuer was asked again at once")
		}
		is.SetUnavailable(false)
		clk.Advance(evidence.JWKSMinInterval)
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok}); err != nil {
			t.Fatal(err)
		}
		// Old keys are not used once stale if they cannot be fetched again.
		clk.Advance(evidence.JWKSRefreshInterval)
		is.SetUnavailable(true)
		tok = signClaims(t, is, map[string]any{"iat": clk.Now().Unix(), "nbf": clk.Now().Unix(), "exp": clk.Now().Add(time.Minute).Unix()})
		_, err = v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUnavailable)
	})
	t.Run("unknown kid while the issuer is down", func(t *testing.T) {
		clk := newClock(base)
		is := startIssuer(t, "ES256", clk)
		v := oidcVerifier(t, clk, is.Config("k8s", oidcAudience))
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)}); err != nil {
			t.Fatal(err)
		}
		is.SetUnavailable(true)
		is.RotateKey()
		clk.Advance(evidence.JWKSMinInterval)
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, map[string]any{"exp": clk.Now().Add(time.Minute).Unix()})})
		wantErr(t, err, evidence.ErrUnavailable)
	})
	t.Run("bad documents", func(t *testing.T) {
		for _, c := range []struct {
			name      string
			discovery func(url string) string
			jwks      string
		}{
			{"discovery names another issuer", func(string) string { return `{"issuer":"https://evil.example","jwks_uri":"%s/jwks"}` }, ""},
			{"discovery without jwks_uri", func(u string) string { return `{"issuer":"` + u + `"}` }, ""},
			{"discovery jwks_uri over http on a public host", func(u string) string {
				return `{"issuer":"` + u + `","jwks_uri":"http://example.com/jwks"}`
			}, ""},
			{"discovery not JSON", func(string) string { return `<html>` }, ""},
			{"jwks not JSON", nil, `nope`},
			{"jwks without keys", nil, `{"keys":[]}`},
			{"jwks with a symmetric key", nil, `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"k"}]}`},
		} {
			t.Run(c.name, func(t *testing.T) {
				clk := newClock(base)
				is := startIssuer(t, "RS256", clk)
				var srvURL string
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch r.URL.Path {
					case "/.well-known/openid-configuration":
						if c.discovery == nil {
							fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, srvURL, srvURL+"/jwks")
							return
						}
						fmt.Fprint(w, strings.ReplaceAll(c.discovery(srvURL), "%s", srvURL))
					case "/jwks":
						fmt.Fprint(w, c.jwks)
					default:
						http.NotFound(w, r)
					}
				}))
				defer srv.Close()
				srvURL = srv.URL
				v := oidcVerifier(t, clk, evidence.OIDCIssuer{Name: "x", Issuer: srv.URL, Audience: oidcAudience})
				tok := signClaims(t, is, map[string]any{"iss": srv.URL})
				_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
				wantErr(t, err, evidence.ErrUnavailable)
			})
		}
	})
	t.Run("context done while waiting", func(t *testing.T) {
		clk := newClock(base)
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		defer srv.Close()
		defer close(block)
		is := startIssuer(t, "RS256", clk)
		v := oidcVerifier(t, clk, evidence.OIDCIssuer{Name: "x", Issuer: srv.URL, Audience: oidcAudience})
		tok := signClaims(t, is, map[string]any{"iss": srv.URL})
		// The first caller fetches (and waits for the server); a second one
		// gives up when its context ends.
		go v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := v.Verify(ctx, oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUnavailable)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v does not wrap the context's error", err)
		}
	})
}

// TestOIDCJWKSFile: a JWKS given as a file is read at New and used.
func TestOIDCJWKSFile(t *testing.T) {
	clk := newClock(base)
	is := startIssuer(t, "EdDSA", clk)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: is.PublicKey(), KeyID: is.KeyID(), Algorithm: "EdDSA", Use: "sig"}}}
	name := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(name, mustJSON(set), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := evidence.OIDCIssuer{Name: "file", Issuer: is.URL, Audience: oidcAudience, JWKS: name}
	v := oidcVerifier(t, clk, cfg)
	if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)}); err != nil {
		t.Fatal(err)
	}
	if is.JWKSRequests()+is.DiscoveryRequests() != 0 {
		t.Fatal("the issuer was asked although the JWKS is a file")
	}
	// A JWKS URL skips discovery.
	cfgURL := evidence.OIDCIssuer{Name: "url", Issuer: is.URL, Audience: oidcAudience, JWKS: is.URL + "/jwks"}
	vURL := oidcVerifier(t, clk, cfgURL)
	if _, err := vURL.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)}); err != nil {
		t.Fatal(err)
	}
	if is.JWKSRequests() != 1 || is.DiscoveryRequests() != 0 {
		t.Fatalf("%d JWKS and %d discovery requests", is.JWKSRequests(), is.DiscoveryRequests())
	}
	// A file that is missing or bad is a configuration error.
	for _, c := range []struct{ name, content string }{{"missing", ""}, {"empty set", `{"keys":[]}`}, {"private key", ""}} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "jwks.json")
			switch c.name {
			case "private key":
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				os.WriteFile(f, mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv, KeyID: "k"}}}), 0o600)
			case "empty set":
				os.WriteFile(f, []byte(c.content), 0o600)
			}
			_, err := evidence.New(t.Context(), evidence.Config{Now: clk.Now,
				OIDC: []evidence.OIDCIssuer{{Name: "file", Issuer: is.URL, Audience: oidcAudience, JWKS: f}}})
			wantErr(t, err, evidence.ErrConfig)
		})
	}
}

// TestOIDCMixedJWKS: keys the verifier cannot use are skipped, and a kid
// shared by two keys of one type is refused as ambiguous.
func TestOIDCMixedJWKS(t *testing.T) {
	clk := newClock(base)
	is := startIssuer(t, "ES256", clk)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	write := func(keys []jose.JSONWebKey, extra string) string {
		b := mustJSON(jose.JSONWebKeySet{Keys: keys})
		if extra != "" {
			b = append(b[:len(b)-2], []byte(","+extra+"]}")...)
		}
		f := filepath.Join(t.TempDir(), "jwks.json")
		os.WriteFile(f, b, 0o600)
		return f
	}
	ours := jose.JSONWebKey{Key: is.PublicKey(), KeyID: is.KeyID(), Use: "sig"}
	t.Run("skips what it cannot use", func(t *testing.T) {
		f := write([]jose.JSONWebKey{
			{Key: &p384.PublicKey, KeyID: "p384"},
			{Key: &other.PublicKey, KeyID: "enc", Use: "enc"},
			{Key: &other.PublicKey}, // no kid
			ours,
		}, `{"kty":"OKP","crv":"X448","x":"AAAA","kid":"x448"},{"kty":"weird","kid":"w"}`)
		v := oidcVerifier(t, clk, evidence.OIDCIssuer{Name: "m", Issuer: is.URL, Audience: oidcAudience, JWKS: f})
		if _, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)}); err != nil {
			t.Fatal(err)
		}
		// An encryption key is not a signature key.
		tok := keyToken(t, jose.ES256, other, "enc", claims(is, nil))
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		wantErr(t, err, evidence.ErrUntrusted)
	})
	t.Run("ambiguous kid", func(t *testing.T) {
		f := write([]jose.JSONWebKey{ours, {Key: &other.PublicKey, KeyID: is.KeyID()}}, "")
		v := oidcVerifier(t, clk, evidence.OIDCIssuer{Name: "m", Issuer: is.URL, Audience: oidcAudience, JWKS: f})
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)})
		wantErr(t, err, evidence.ErrUntrusted)
	})
	t.Run("key alg mismatch", func(t *testing.T) {
		k := ours
		k.Algorithm = "ES384"
		f := write([]jose.JSONWebKey{k}, "")
		v := oidcVerifier(t, clk, evidence.OIDCIssuer{Name: "m", Issuer: is.URL, Audience: oidcAudience, JWKS: f})
		_, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: signClaims(t, is, nil)})
		wantErr(t, err, evidence.ErrUntrusted)
	})
}
