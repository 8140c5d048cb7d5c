package redisreplay_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

// BenchmarkSeen measures one Seen of a new key (a first sighting, the
// common case) against a real Redis on loopback, without persistence and
// with an append-only file fsynced on every write (the configuration the
// package doc asks for).
func BenchmarkSeen(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts redistest.Options
	}{
		{"volatile", redistest.Options{}},
		{"aof-always", redistest.Options{Persistent: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := redistest.StartWith(b, bc.opts)
			c := newCache(b, srv.Addr(), defaults)
			exp := time.Now().Add(10 * time.Minute)
			prefix := randomKey(b) + ":"
			var n atomic.Uint64
			seen := func(b *testing.B) {
				key := prefix + strconv.FormatUint(n.Add(1), 10)
				if seen, err := c.Seen(context.Background(), key, exp); seen || err != nil {
					b.Fatalf("Seen = %v, %v", seen, err)
				}
			}
			b.Run("sequential", func(b *testing.B) {
				for b.Loop() {
					seen(b)
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.SetParallelism(16) // many requests in flight per CPU
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						seen(b)
					}
				})
			})
		})
	}
}
