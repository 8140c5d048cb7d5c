package verifier_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
)

// BenchmarkReplayCacheBytesPerEntry fills a MemoryReplayCache of the
// default size with live entries and reports the heap it holds per entry
// (bytes/entry): what a verifier's memory grows by per token it must
// remember, when full. ns/op is the time to fill it.
func BenchmarkReplayCacheBytesPerEntry(b *testing.B) {
	const n = verifier.DefaultReplayCacheSize
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	exp := now.Add(10 * time.Minute)
	ctx := context.Background()
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := verifier.NewMemoryReplayCache(n, clock)
		var buf []byte
		for i := range n {
			buf = strconv.AppendInt(append(buf[:0], "https://issuer.example\x00jti-"...), int64(i), 10)
			if seen, err := c.Seen(ctx, string(buf), exp); seen || err != nil {
				b.Fatalf("Seen = %v, %v", seen, err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "bytes/entry")
}
