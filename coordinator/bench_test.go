package coordinator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	"github.com/frostmint/frostmint/policy/limit"
	"github.com/frostmint/frostmint/signer"
)

// BenchmarkMint2of3 is one full mint through the gRPC API over mTLS on
// loopback: the caller signs its request; the coordinator verifies the
// evidence, evaluates policy, audits (fsync); two signers each verify the
// evidence, evaluate policy and audit (fsync) in parallel; aggregation and
// the final crypto/ed25519 check.
func BenchmarkMint2of3(b *testing.B) {
	c := coordinatortest.Start(b, coordinatortest.Options{N: 3, T: 2, Config: func(cc *coordinator.Config) {
		cc.Limits = limit.Config{} // measure the mint, not the limiter
	}, SignerConfig: func(sc *signer.Config) { sc.Limits = limit.Config{} }})
	cl := c.Client(b)
	ctx := context.Background()
	if _, err := cl.Mint(ctx, "aud", []string{"read"}, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cl.Mint(ctx, "aud", []string{"read"}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineEd25519Sign is the single-key signature that a
// threshold mint replaces, measured in the same run for a ratio.
func BenchmarkBaselineEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 300)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ed25519.Sign(priv, msg)
	}
}
