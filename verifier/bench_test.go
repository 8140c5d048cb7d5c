package verifier_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/token"
)

// The benchmarks of Verify compare it with what it cannot avoid: one
// ed25519.Verify of the token's signing input. BenchmarkVerifyRatio runs
// both in one process and reports Verify's cost in multiples of it
// ("x-ed25519"); the goal is at most 1.10.

// benchClaims are the claims of a typical token: a workload identity, two
// scopes, a five-minute lifetime (header and claims ~350 bytes of JSON).
func benchClaims() token.Claims {
	return token.Claims{
		Issuer:    issuerA,
		Subject:   "spiffe://prod.example.org/ns/checkout/sa/api",
		ClientID:  "spiffe://prod.example.org/ns/checkout/sa/api",
		Audience:  audience,
		Scope:     "orders:read orders:write",
		IssuedAt:  t0,
		NotBefore: t0,
		Expiry:    t0 + 300,
		ID:        freshJTI(),
	}
}

// benchTokens are distinct typical tokens (a single-use verifier accepts
// each once), minted on demand and shared by the benchmarks.
var benchTokens struct {
	sync.Mutex
	toks []string
}

func tokensForBench(b *testing.B, n int) []string {
	b.Helper()
	benchTokens.Lock()
	defer benchTokens.Unlock()
	k := testKey("a1")
	h := header(b, k)
	for len(benchTokens.toks) < n {
		benchTokens.toks = append(benchTokens.toks, mint(b, k, h, benchClaims()))
	}
	return benchTokens.toks[:n]
}

// BenchmarkEd25519VerifyBaseline is one ed25519.Verify of a typical
// token's signing input: the floor of Verify.
func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	tok := tokensForBench(b, 1)[0]
	i := strings.LastIndexByte(tok, '.')
	p, err := token.ParseCompact(tok)
	if err != nil {
		b.Fatal(err)
	}
	in, sig := []byte(tok[:i]), p.Signature
	pub := pubOf(testKey("a1"))
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, in, sig) {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkVerify verifies distinct typical tokens, each once, with the
// default in-memory replay cache: everything Verify does, replay check
// included.
func BenchmarkVerify(b *testing.B) {
	toks := tokensForBench(b, b.N)
	v := newVerifier(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(ctx, toks[i], "orders:read"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyReusable verifies one token over and over on a Reusable
// route: Verify without the replay cache.
func BenchmarkVerifyReusable(b *testing.B) {
	tok := tokensForBench(b, 1)[0]
	v := newVerifier(b)
	ctx := context.Background()
	req := verifier.Requirements{Scopes: []string{"orders:read"}, Replay: verifier.Reusable}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Check(ctx, tok, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRatio reports Verify's cost as a multiple of the
// baseline's ("x-ed25519"): each iteration times one ed25519.Verify of a
// token's signing input and one Verify of that token (in alternating
// order), so both are measured in the same run under the same conditions.
// (testing.Benchmark cannot be used for this: it deadlocks when called
// from a running benchmark.) It also reports both costs; its allocs/op are
// Verify's, as ed25519.Verify allocates nothing.
func BenchmarkVerifyRatio(b *testing.B) {
	toks := tokensForBench(b, b.N)
	ins := make([][]byte, b.N)
	sigs := make([][]byte, b.N)
	for i, tok := range toks {
		p, err := token.ParseCompact(tok)
		if err != nil {
			b.Fatal(err)
		}
		ins[i], sigs[i] = p.SigningInput, p.Signature
	}
	pub := pubOf(testKey("a1"))
	v := newVerifier(b)
	ctx := context.Background()
	var base, ver time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		var t1, t2 time.Time
		var ok bool
		var err error
		if i%2 == 0 {
			ok = ed25519.Verify(pub, ins[i], sigs[i])
			t1 = time.Now()
			_, err = v.Verify(ctx, toks[i], "orders:read")
			t2 = time.Now()
			base, ver = base+t1.Sub(t0), ver+t2.Sub(t1)
		} else {
			_, err = v.Verify(ctx, toks[i], "orders:read")
			t1 = time.Now()
			ok = ed25519.Verify(pub, ins[i], sigs[i])
			t2 = time.Now()
			ver, base = ver+t1.Sub(t0), base+t2.Sub(t1)
		}
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(ver)/float64(base), "x-ed25519")
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "ed25519-ns/op")
	b.ReportMetric(float64(ver.Nanoseconds())/float64(b.N), "verify-ns/op")
}
