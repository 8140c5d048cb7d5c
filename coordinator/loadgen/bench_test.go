package loadgen_test

import (
	"context"
	"testing"

	"github.com/frostmint/frostmint/coordinator/loadgen"
)

// BenchmarkMintInProcess mints through a 2-of-3 cluster whose daemons run
// in the benchmark's process, from 16 concurrent callers per CPU: for
// profiling the whole mint path in one profile (go test -bench
// MintInProcess -cpuprofile …). The figures of record come from
// `frostmint bench`, with each daemon its own process.
func BenchmarkMintInProcess(b *testing.B) {
	c, err := loadgen.Start(context.Background(), loadgen.Options{Signers: 3, Threshold: 2, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dial := loadgen.CertCallers(c.Addr, c.Caller, "https://api.example.com", []string{"read"})
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m, err := dial()
		if err != nil {
			b.Error(err)
			return
		}
		defer m.Close()
		for pb.Next() {
			if err := m.Mint(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
