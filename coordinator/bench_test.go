package coordinator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/frostmint/frostmint/coordinator/coordinatortest"
)

// BenchmarkMint2of3 is one full mint through the gRPC API over mTLS on
// loopback: policy, token, one parallel round trip to two signers,
// aggregation and the final crypto/ed25519 check.
func BenchmarkMint2of3(b *testing.B) {
	c := coordinatortest.Start(b, coordinatortest.Options{N: 3, T: 2})
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
