package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

const (
	issuerA  = "https://a.frostmint.example"
	issuerB  = "https://b.frostmint.example"
	audience = "https://api.example"
	// t0 is the verifiers' clock in these tests (Unix seconds).
	t0 = 1_700_000_000
)

func now() time.Time { return time.Unix(t0, 0) }

// testKey returns a deterministic key for name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("frostmint verifier test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func kidOf(t testing.TB, k ed25519.PrivateKey) string {
	t.Helper()
	kid, err := jwks.KeyID(pubOf(k))
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func keySet(t testing.TB, keys ...ed25519.PrivateKey) *jwks.Static {
	t.Helper()
	pubs := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		pubs[i] = pubOf(k)
	}
	s, err := jwks.NewStatic(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testIssuers: issuer A signs with keys "a1" and "a2", issuer B with "b".
func testIssuers(t testing.TB) []verifier.Issuer {
	return []verifier.Issuer{
		{Issuer: issuerA, Keys: keySet(t, testKey("a1"), testKey("a2"))},
		{Issuer: issuerB, Keys: keySet(t, testKey("b"))},
	}
}

func testConfig(t testing.TB) verifier.Config {
	return verifier.Config{Issuers: testIssuers(t), Audience: audience, Now: now}
}

func newVerifier(t testing.TB, mutate ...func(*verifier.Config)) *verifier.Verifier {
	t.Helper()
	cfg := testConfig(t)
	for _, m := range mutate {
		m(&cfg)
	}
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var jtiCounter atomic.Uint64

// freshJTI returns a distinct, profile-valid jti.
func freshJTI() string {
	sum := sha256.Sum256(strconv.AppendUint([]byte("jti "), jtiCounter.Add(1), 10))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func header(t testing.TB, k ed25519.PrivateKey) token.Header {
	return token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kidOf(t, k)}
}

func claims() token.Claims {
	return token.Claims{
		Issuer:    issuerA,
		Subject:   "alice",
		ClientID:  "client-1",
		Audience:  audience,
		Scope:     "read write",
		IssuedAt:  t0,
		NotBefore: t0,
		Expiry:    t0 + 300,
		ID:        freshJTI(),
	}
}

// mint signs c under h with k through the token package, as frostmint does.
func mint(t testing.TB, k ed25519.PrivateKey, h token.Header, c token.Claims) string {
	t.Helper()
	in, err := token.SigningInput(h, c)
	if err != nil {
		t.Fatal(err)
	}
	return token.Compact(in, ed25519.Sign(k, in))
}

// good returns a valid token of issuer A under key a1, with claims modified
// by mutate.
func good(t testing.TB, mutate ...func(*token.Claims)) string {
	t.Helper()
	c := claims()
	for _, m := range mutate {
		if m != nil {
			m(&c)
		}
	}
	return mint(t, testKey("a1"), header(t, testKey("a1")), c)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw signs arbitrary header and claims JSON with k, bypassing every
// check of the token package, as an attacker holding a key (or a bug in a
// minter) could.
func signRaw(k ed25519.PrivateKey, headerJSON, claimsJSON string) string {
	in := b64(headerJSON) + "." + b64(claimsJSON)
	return token.Compact([]byte(in), ed25519.Sign(k, []byte(in)))
}

func claimsJSON(t testing.TB, c token.Claims) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// claimsMap returns the claims as a map to edit members freely.
func claimsMap(t testing.TB, c token.Claims) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(claimsJSON(t, c)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nopCache never sees anything twice: for tests and benchmarks that reuse a
// token.
type nopCache struct{}

func (nopCache) Seen(context.Context, string, time.Time) (bool, error) { return false, nil }

// failingCache cannot decide.
type failingCache struct{}

var errStoreDown = errors.New("store down")

func (failingCache) Seen(context.Context, string, time.Time) (bool, error) {
	return false, errStoreDown
}

// countingCache counts the calls that reach it.
type countingCache struct {
	calls atomic.Int64
	inner verifier.ReplayCache
}

func (c *countingCache) Seen(ctx context.Context, jti string, exp time.Time) (bool, error) {
	c.calls.Add(1)
	return c.inner.Seen(ctx, jti, exp)
}

// keySetFunc adapts a function to jwks.KeySet.
type keySetFunc func(kid string) (ed25519.PublicKey, error)

func (f keySetFunc) Key(kid string) (ed25519.PublicKey, error) { return f(kid) }
