package redisreplay_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/redisreplay"
)

// A gateway process shares its replay cache with the others through Redis.
func Example() {
	cache, err := redisreplay.New(redisreplay.Config{
		Addr:     "redis.internal:6379",
		Password: os.Getenv("REDIS_PASSWORD"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	var keys jwks.KeySet // the issuer's keys
	v, err := verifier.New(verifier.Config{
		Issuers:  []verifier.Issuer{{Issuer: "https://frostmint.example", Keys: keys}},
		Audience: "https://api.example",
		Replay:   cache,
	})
	if err != nil {
		log.Fatal(err)
	}

	// A readiness probe.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := cache.Ping(ctx); err != nil {
		log.Printf("not ready: %v", err)
	}

	// While Redis cannot answer, Verify refuses every token with
	// verifier.CodeReplayStoreUnavailable.
	_, err = v.Verify(ctx, "<token>", "read")
	_ = err
}
