package redisreplay_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/redisreplay"
	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

// FuzzSeen runs arbitrary sequences of Seen calls, with arbitrary keys
// (any bytes, any length) and key prefixes, against a real Redis and,
// differentially, against the verifier's in-memory cache: every answer
// must be the same (first sighting false, replays true), an expiry in the
// past or more than MaxTTL away must be refused with ErrInvalid without
// recording anything, and a prefix longer than MaxKeyPrefix must make New
// fail with ErrInvalid.
func FuzzSeen(f *testing.F) {
	srv := redistest.Start(f)
	f.Add("frostmint:replay:", "https://mint.example:jti-1", "https://mint.example:jti-2", []byte{0, 2, 0, 1, 3, 1})
	f.Add("", "", "\x00\xff", []byte{0, 0, 4, 5, 6})
	f.Add("p", "k", "k", []byte{0, 1})
	f.Add(string(make([]byte, redisreplay.MaxKeyPrefix+1)), "k", "l", []byte{0})
	run := 0
	f.Fuzz(func(t *testing.T, prefix, k1, k2 string, ops []byte) {
		run++
		cfg := redisreplay.Config{KeyPrefix: prefix}
		if len(prefix) > redisreplay.MaxKeyPrefix {
			cfg.Addr = srv.Addr()
			if _, err := redisreplay.New(cfg); !errors.Is(err, redisreplay.ErrInvalid) {
				t.Fatalf("New with a prefix of %d bytes = %v, want ErrInvalid", len(prefix), err)
			}
			return
		}
		// Keys of earlier inputs must not answer for this one: each input
		// gets keys of its own, whatever its prefix.
		tag := fmt.Sprintf("%d/%d:", time.Now().UnixNano(), run)
		c := newCache(t, srv.Addr(), cfg)
		mem := verifier.NewMemoryReplayCache(0, nil)
		ctx := context.Background()
		for i, op := range ops {
			key := tag + k1
			if op&1 == 1 {
				key = tag + k2
			}
			now := time.Now()
			switch (op >> 1) % 4 {
			case 1, 2:
				exp := now.Add(-time.Second)
				if op>>1%4 == 2 {
					exp = now.Add(redisreplay.MaxTTL + time.Hour)
				}
				if seen, err := c.Seen(ctx, key, exp); !errors.Is(err, redisreplay.ErrInvalid) || seen {
					t.Fatalf("op %d: Seen with expiry %s = %v, %v; want ErrInvalid", i, exp.Sub(now), seen, err)
				}
				continue
			}
			exp := now.Add(time.Minute)
			want, err := mem.Seen(ctx, key, exp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Seen(ctx, key, exp)
			if err != nil || got != want {
				t.Fatalf("op %d: Redis says seen=%v (%v), memory says %v", i, got, err, want)
			}
		}
	})
}
