package redisreplay_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
	"github.com/frostmint/frostmint/verifier/token"
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

// BenchmarkVerify measures a whole single-use verifier.Check with its
// replay cache on Redis (append-only file fsynced on every write, as the
// package doc asks), beside the same Check on the in-memory cache and a
// bare ed25519.Verify of the same token, all in the same run.
func BenchmarkVerify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	keys, err := jwks.NewStatic(priv.Public().(ed25519.PublicKey))
	if err != nil {
		b.Fatal(err)
	}
	kid := keys.KeyIDs()[0]
	now := time.Now()
	mint := func(i int) string {
		in, err := token.SigningInput(
			token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid},
			token.Claims{
				Issuer: "https://mint.example", Subject: "spiffe://example.org/bench", ClientID: "bench",
				Audience: "https://api.example", Scope: "read write", IssuedAt: now.Unix(), NotBefore: now.Unix(),
				Expiry: now.Add(5 * time.Minute).Unix(), ID: fmt.Sprintf("bench-token-%016d-%s", i, strings.Repeat("x", 8)),
			})
		if err != nil {
			b.Fatal(err)
		}
		return token.Compact(in, ed25519.Sign(priv, in))
	}
	newVerifier := func(b *testing.B, replay verifier.ReplayCache) *verifier.Verifier {
		v, err := verifier.New(verifier.Config{
			Issuers:  []verifier.Issuer{{Issuer: "https://mint.example", Keys: keys}},
			Audience: "https://api.example", Replay: replay,
		})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	run := func(b *testing.B, v *verifier.Verifier) {
		// Tokens are minted in batches outside the timer; each is new.
		toks, minted := make([]string, 0, 1024), 0
		refill := func() {
			toks = toks[:0]
			for range cap(toks) {
				toks = append(toks, mint(minted))
				minted++
			}
		}
		refill()
		i := 0
		for b.Loop() {
			if i == len(toks) {
				b.StopTimer()
				refill()
				i = 0
				b.StartTimer()
			}
			if _, err := v.Check(context.Background(), toks[i], verifier.Requirements{}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("ed25519-baseline", func(b *testing.B) {
		tok := mint(0)
		dot := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
		if err != nil {
			b.Fatal(err)
		}
		pub, msg := priv.Public().(ed25519.PublicKey), []byte(tok[:dot])
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("memory", func(b *testing.B) { run(b, newVerifier(b, nil)) })
	b.Run("redis-aof-always", func(b *testing.B) {
		srv := redistest.StartWith(b, redistest.Options{Persistent: true})
		run(b, newVerifier(b, newCache(b, srv.Addr(), defaults)))
	})
}
