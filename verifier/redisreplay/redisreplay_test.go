package redisreplay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/redisreplay"
	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
	"github.com/frostmint/frostmint/verifier/replaytest"
	"github.com/frostmint/frostmint/verifier/token"
)

// The shared conformance suite, against one real server. Redis keeps its
// own time: the suite waits for real time to pass expiries it relies on,
// and the cache measures TTLs on the suite's clock.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	replaytest.Run(t, func(t *testing.T, now func() time.Time) verifier.ReplayCache {
		return newCache(t, srv.Addr(), redisreplay.Config{Now: now})
	})
}

// Of 64 concurrent calls with one key, exactly one reports a first
// sighting, round after round.
func TestConcurrentSameKey(t *testing.T) {
	srv := redistest.Start(t)
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	const rounds, n = 20, 64
	for round := range rounds {
		key := randomKey(t)
		exp := time.Now().Add(time.Hour)
		var (
			start, wg sync.WaitGroup
			mu        sync.Mutex
			first     int
			errs      []error
		)
		start.Add(1)
		for range n {
			wg.Go(func() {
				start.Wait()
				seen, err := c.Seen(context.Background(), key, exp)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if !seen {
					first++
				}
			})
		}
		start.Done()
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: %d errors, first %v", round, len(errs), errs[0])
		}
		if first != 1 {
			t.Fatalf("round %d: %d of %d concurrent calls reported a first sighting, want 1", round, first, n)
		}
	}
}

// Redis holds the prefix and the SHA-256 of a key, never the key, with a
// TTL up to the expiry.
func TestStoredKey(t *testing.T) {
	srv := redistest.Start(t)
	rdb := admin(t, srv.Addr(), "")
	ctx := timeout(t, 10*time.Second)
	for _, tc := range []struct{ prefix, want string }{
		{"", redisreplay.DefaultKeyPrefix},
		{"gw-a:", "gw-a:"},
	} {
		c := newCache(t, srv.Addr(), redisreplay.Config{KeyPrefix: tc.prefix})
		jti := "iss-" + randomKey(t)
		mustSeen(t, c, jti, time.Now().Add(10*time.Second), false)
		sum := sha256.Sum256([]byte(jti))
		want := tc.want + hex.EncodeToString(sum[:])
		keys, err := rdb.Keys(ctx, tc.want+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0] != want {
			t.Fatalf("prefix %q: keys %q, want [%q]", tc.prefix, keys, want)
		}
		if strings.Contains(keys[0], jti) {
			t.Fatalf("key %q holds the token id", keys[0])
		}
		ttl, err := rdb.PTTL(ctx, want).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 8*time.Second || ttl > 10*time.Second {
			t.Fatalf("TTL %s, want about 10s", ttl)
		}
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// The TTL is the time to expiry on the cache's clock, not on Redis's.
func TestTTLOnInjectedClock(t *testing.T) {
	srv := redistest.Start(t)
	rdb := admin(t, srv.Addr(), "")
	clock := replaytest.NewClock(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	c := newCache(t, srv.Addr(), redisreplay.Config{Now: clock.Now, KeyPrefix: "clock:"})
	mustSeen(t, c, "k", clock.Now().Add(5*time.Second+300*time.Microsecond), false)
	sum := sha256.Sum256([]byte("k"))
	ttl, err := rdb.PTTL(timeout(t, 5*time.Second), "clock:"+hex.EncodeToString(sum[:])).Result()
	if err != nil {
		t.Fatal(err)
	}
	// 5.0003s rounds up to 5001ms, minus the time since the SET.
	if ttl <= 4800*time.Millisecond || ttl > 5001*time.Millisecond {
		t.Fatalf("TTL %s, want just under 5.001s", ttl)
	}
}

// An expiry that is not in the future, or absurdly far, is refused, and
// nothing is written.
func TestInvalidExpiry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := admin(t, srv.Addr(), "")
	now := time.Now()
	c := newCache(t, srv.Addr(), redisreplay.Config{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name   string
		expiry time.Time
	}{
		{"now", now},
		{"past", now.Add(-time.Second)},
		{"long past", time.Time{}},
		{"beyond MaxTTL", now.Add(redisreplay.MaxTTL + time.Millisecond)},
		{"far future", now.Add(100 * 365 * 24 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen, err := c.Seen(timeout(t, 5*time.Second), randomKey(t), tc.expiry)
			if !errors.Is(err, redisreplay.ErrInvalid) || seen {
				t.Fatalf("Seen = %v, %v, want an ErrInvalid", seen, err)
			}
			if errors.Is(err, redisreplay.ErrUnavailable) {
				t.Fatalf("Seen = %v: also ErrUnavailable", err)
			}
		})
	}
	if n, err := rdb.DBSize(timeout(t, 5*time.Second)).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want 0", n, err)
	}
	mustSeen(t, c, "edge", now.Add(redisreplay.MaxTTL), false)
	mustSeen(t, c, "tiny", now.Add(time.Nanosecond), false) // rounds up to 1ms
}

// Whatever goes wrong with Redis, Seen fails with ErrUnavailable (and the
// cause), never "not seen", and within the timeouts: each call gets a
// context of 2s, which must not be what ended it.
func TestFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the address to use, and the config of the cache.
		setup func(t *testing.T) (string, redisreplay.Config)
		// ctx, if set, replaces the 2s context.
		ctx func(t *testing.T) context.Context
		// cause checks the wrapped cause.
		cause func(error) bool
		// pingWorks: the server refuses writes, not PING.
		pingWorks bool
	}{
		{
			name: "stopped",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.Start(t)
				srv.Stop()
				return srv.Addr(), redisreplay.Config{}
			},
			cause: func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) },
		},
		{
			name: "hanging",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.Start(t)
				srv.Pause()
				return srv.Addr(), defaults
			},
			cause: isTimeout,
		},
		{
			name: "read-only replica",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				primary, replica := redistest.Start(t), redistest.Start(t)
				host, port, _ := net.SplitHostPort(primary.Addr())
				if err := admin(t, replica.Addr(), "").SlaveOf(timeout(t, 5*time.Second), host, port).Err(); err != nil {
					t.Fatal(err)
				}
				return replica.Addr(), redisreplay.Config{}
			},
			cause:     redis.IsReadOnlyError,
			pingWorks: true,
		},
		{
			name: "out of memory",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.StartWith(t, redistest.Options{Args: []string{"--maxmemory-policy", "noeviction"}})
				if err := admin(t, srv.Addr(), "").ConfigSet(timeout(t, 5*time.Second), "maxmemory", "1").Err(); err != nil {
					t.Fatal(err)
				}
				return srv.Addr(), redisreplay.Config{}
			},
			cause:     redis.IsOOMError,
			pingWorks: true,
		},
		{
			name: "no password",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.StartWith(t, redistest.Options{Password: "correct horse"})
				return srv.Addr(), redisreplay.Config{}
			},
			cause: redis.IsAuthError,
		},
		{
			name: "wrong password",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.StartWith(t, redistest.Options{Password: "correct horse"})
				return srv.Addr(), redisreplay.Config{Password: "battery staple"}
			},
			cause: redis.IsAuthError,
		},
		{
			name: "canceled context",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				return redistest.Start(t).Addr(), redisreplay.Config{}
			},
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			cause: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "expired context",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				srv := redistest.Start(t)
				srv.Pause()
				return srv.Addr(), redisreplay.Config{ReadTimeout: redisreplay.MaxTimeout}
			},
			ctx: func(t *testing.T) context.Context {
				return timeout(t, 100*time.Millisecond)
			},
			cause: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
		{
			name: "error reply",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				f := startFakeRedis(t, func([]string) string { return "-ERR no\r\n" })
				return f.Addr(), redisreplay.Config{}
			},
			cause: func(err error) bool { _, ok := errors.AsType[redis.Error](err); return ok },
		},
		{
			name: "integer reply",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				return startFakeRedis(t, func([]string) string { return ":1\r\n" }).Addr(), redisreplay.Config{}
			},
		},
		{
			name: "other status reply",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				return startFakeRedis(t, func([]string) string { return "+QUEUED\r\n" }).Addr(), redisreplay.Config{}
			},
		},
		{
			name: "array reply",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				return startFakeRedis(t, func([]string) string { return "*1\r\n$2\r\nOK\r\n" }).Addr(), redisreplay.Config{}
			},
		},
		{
			name: "never answers",
			setup: func(t *testing.T) (string, redisreplay.Config) {
				return startFakeRedis(t, func([]string) string { return "" /* never answers */ }).Addr(), defaults
			},
			cause: isTimeout,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, cfg := tc.setup(t)
			c := newCache(t, addr, cfg)
			ctx := timeout(t, 2*time.Second)
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			for i := range 3 { // a fresh connection, then a pooled one if any
				seen, err := c.Seen(ctx, randomKey(t), time.Now().Add(time.Minute))
				if seen || !errors.Is(err, redisreplay.ErrUnavailable) {
					t.Fatalf("call %d: Seen = %v, %v; want false, ErrUnavailable", i, seen, err)
				}
				if tc.cause != nil && !tc.cause(err) {
					t.Fatalf("call %d: Seen = %v: not the expected cause", i, err)
				}
				if tc.ctx == nil && ctx.Err() != nil {
					t.Fatalf("call %d: Seen = %v only at the context's deadline: the timeouts did not bound it", i, err)
				}
				t.Logf("call %d: %v", i, err)
			}
			err := c.Ping(ctx)
			if tc.pingWorks && err != nil || !tc.pingWorks && !errors.Is(err, redisreplay.ErrUnavailable) {
				t.Fatalf("Ping = %v", err)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// With the right password, it works.
func TestPassword(t *testing.T) {
	const password = "correct horse"
	srv := redistest.StartWith(t, redistest.Options{Password: password})
	c := newCache(t, srv.Addr(), redisreplay.Config{Password: password, DB: 3})
	if err := c.Ping(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	key := randomKey(t)
	mustSeen(t, c, key, time.Now().Add(time.Minute), false)
	mustSeen(t, c, key, time.Now().Add(time.Minute), true)
	// In database 3.
	rdb := admin(t, srv.Addr(), password)
	if n, err := rdb.DBSize(timeout(t, 5*time.Second)).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of database 0 = %d, %v; want 0", n, err)
	}
}

// A Redis ACL user needs only the permissions Config.Username documents;
// one without them is refused, and so is the token.
func TestACLUser(t *testing.T) {
	srv := redistest.Start(t)
	rdb := admin(t, srv.Addr(), "")
	ctx := timeout(t, 5*time.Second)
	for _, rule := range [][]any{
		{"ACL", "SETUSER", "gw", "on", ">gw-pw", "+set", "+ping", "+select", "~frostmint:replay:*"},
		{"ACL", "SETUSER", "ro", "on", ">ro-pw", "+get", "+ping", "+select", "~frostmint:replay:*"},
	} {
		if err := rdb.Do(ctx, rule...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	gw := newCache(t, srv.Addr(), redisreplay.Config{Username: "gw", Password: "gw-pw", DB: 1})
	if err := gw.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	key := randomKey(t)
	mustSeen(t, gw, key, time.Now().Add(time.Minute), false)
	mustSeen(t, gw, key, time.Now().Add(time.Minute), true)

	ro := newCache(t, srv.Addr(), redisreplay.Config{Username: "ro", Password: "ro-pw", DB: 1})
	seen, err := ro.Seen(ctx, randomKey(t), time.Now().Add(time.Minute))
	if seen || !errors.Is(err, redisreplay.ErrUnavailable) || !redis.IsPermissionError(err) {
		t.Fatalf("Seen without SET permission = %v, %v; want ErrUnavailable (NOPERM)", seen, err)
	}
}

// New does not connect: Redis may come up later.
func TestNewBeforeRedis(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	if err := c.Ping(timeout(t, 2*time.Second)); !errors.Is(err, redisreplay.ErrUnavailable) {
		t.Fatalf("Ping = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	waitRecovered(t, c, 5*time.Second)
}

// A Redis outage refuses every call, and service resumes by itself when
// Redis returns, on the same Cache, even after enough failures to make the
// client stop dialing on every call. A persistent Redis remembers.
func TestResumesAfterOutage(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Persistent: true})
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	before := randomKey(t)
	exp := time.Now().Add(time.Hour)
	mustSeen(t, c, before, exp, false)

	srv.Stop()
	// Many failures: more than the pool's size of failed dials, which
	// makes go-redis fail fast and probe Redis once a second.
	for i := range 100 {
		ctx := timeout(t, 2*time.Second)
		seen, err := c.Seen(ctx, randomKey(t), exp)
		if seen || !errors.Is(err, redisreplay.ErrUnavailable) {
			t.Fatalf("call %d during the outage: Seen = %v, %v", i, seen, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("call %d during the outage ended at the context's deadline: %v", i, err)
		}
	}
	// The same key, recorded before: refused as unavailable, not allowed.
	if seen, err := c.Seen(timeout(t, 2*time.Second), before, exp); seen || !errors.Is(err, redisreplay.ErrUnavailable) {
		t.Fatalf("Seen(before) during the outage = %v, %v", seen, err)
	}

	srv.Restart()
	waitRecovered(t, c, 5*time.Second)
	mustSeen(t, c, before, exp, true)
}

// A Redis that hangs with connections open refuses calls within the
// (default) timeouts, and service resumes when it answers again.
func TestResumesAfterHang(t *testing.T) {
	srv := redistest.Start(t)
	c := newCache(t, srv.Addr(), defaults)
	mustSeen(t, c, randomKey(t), time.Now().Add(time.Minute), false)
	srv.Pause()
	for i := range 5 {
		ctx := timeout(t, 2*time.Second)
		_, err := c.Seen(ctx, randomKey(t), time.Now().Add(time.Minute))
		if !errors.Is(err, redisreplay.ErrUnavailable) || !isTimeout(err) || ctx.Err() != nil {
			t.Fatalf("call %d to a hanging Redis: %v", i, err)
		}
	}
	srv.Resume()
	waitRecovered(t, c, 5*time.Second)
}

// Why Redis must persist: one that restarts empty accepts again the
// tokens it had recorded. (This documents Redis, not the cache.)
func TestVolatileRedisForgetsOnRestart(t *testing.T) {
	srv := redistest.Start(t) // --save '' --appendonly no
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	key, exp := randomKey(t), time.Now().Add(time.Hour)
	mustSeen(t, c, key, exp, false)
	srv.Restart()
	waitRecovered(t, c, 5*time.Second)
	mustSeen(t, c, key, exp, false) // replayable: hence appendonly yes
}

// A persistent Redis (appendfsync always) forgets nothing it acknowledged,
// even when killed.
func TestPersistentRedisSurvivesKill(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Persistent: true})
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	exp := time.Now().Add(time.Hour)
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = randomKey(t)
		mustSeen(t, c, keys[i], exp, false)
	}
	srv.Kill()
	srv.Restart()
	waitRecovered(t, c, 5*time.Second)
	for _, k := range keys {
		mustSeen(t, c, k, exp, true)
	}
}

// waitRecovered waits until a Seen succeeds, failing the test after d.
func waitRecovered(t *testing.T, c *redisreplay.Cache, d time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		_, err := c.Seen(timeout(t, 2*time.Second), randomKey(t), time.Now().Add(time.Minute))
		if err == nil {
			t.Logf("recovered after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if !errors.Is(err, redisreplay.ErrUnavailable) {
			t.Fatalf("Seen while recovering = %v, want ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within %s of Redis's return: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPing(t *testing.T) {
	srv := redistest.Start(t)
	c := newCache(t, srv.Addr(), redisreplay.Config{})
	if err := c.Ping(timeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	srv.Stop()
	if err := c.Ping(timeout(t, 5*time.Second)); !errors.Is(err, redisreplay.ErrUnavailable) {
		t.Fatalf("Ping with Redis down = %v, want ErrUnavailable", err)
	}
}

func TestClose(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisreplay.New(redisreplay.Config{Addr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	mustSeen(t, c, randomKey(t), time.Now().Add(time.Minute), false)
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	seen, err := c.Seen(timeout(t, 2*time.Second), randomKey(t), time.Now().Add(time.Minute))
	if seen || !errors.Is(err, redisreplay.ErrUnavailable) || !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("Seen after Close = %v, %v; want ErrUnavailable", seen, err)
	}
	if err := c.Ping(timeout(t, 2*time.Second)); !errors.Is(err, redisreplay.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v; want ErrUnavailable", err)
	}
}

// Two verifiers (two gateway processes) sharing one Redis accept a token
// once in all, and refuse with replay_store_unavailable while Redis is
// down.
func TestSharedBetweenVerifiers(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Persistent: true})
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	keys, err := jwks.NewStatic(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := jwks.KeyID(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://issuer.example", "https://api.example"
	now := time.Now()
	newVerifier := func() *verifier.Verifier {
		v, err := verifier.New(verifier.Config{
			Issuers:  []verifier.Issuer{{Issuer: iss, Keys: keys}},
			Audience: aud,
			Replay:   newCache(t, srv.Addr(), redisreplay.Config{}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mint := func() string {
		jti, err := token.NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		in, err := token.SigningInput(
			token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid},
			token.Claims{Issuer: iss, Subject: "alice", ClientID: "c", Audience: aud, Scope: "read",
				IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Unix() + 300, ID: jti})
		if err != nil {
			t.Fatal(err)
		}
		return token.Compact(in, ed25519.Sign(key, in))
	}
	a, b := newVerifier(), newVerifier()
	ctx := timeout(t, 10*time.Second)

	tok := mint()
	if _, err := a.Verify(ctx, tok, "read"); err != nil {
		t.Fatalf("first Verify on A = %v", err)
	}
	for _, v := range []*verifier.Verifier{a, b} {
		if _, err := v.Verify(ctx, tok, "read"); verifier.CodeOf(err) != verifier.CodeReplayed {
			t.Fatalf("replay = %v, want %s", err, verifier.CodeReplayed)
		}
	}

	srv.Stop()
	down := mint()
	_, err = b.Verify(ctx, down, "read")
	if verifier.CodeOf(err) != verifier.CodeReplayStoreUnavailable || !errors.Is(err, redisreplay.ErrUnavailable) {
		t.Fatalf("Verify with Redis down = %v, want %s", err, verifier.CodeReplayStoreUnavailable)
	}
	srv.Restart()
	for _, v := range []*verifier.Verifier{a, b} {
		waitVerifies(t, v, mint())
	}
	if _, err := a.Verify(ctx, tok, "read"); verifier.CodeOf(err) != verifier.CodeReplayed {
		t.Fatalf("replay after Redis's restart = %v, want %s", err, verifier.CodeReplayed)
	}
}

// waitVerifies waits until v accepts tok, as it should once Redis is back.
func waitVerifies(t *testing.T, v *verifier.Verifier, tok string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(timeout(t, 2*time.Second), tok, "read")
		if err == nil {
			return
		}
		if verifier.CodeOf(err) != verifier.CodeReplayStoreUnavailable || time.Now().After(deadline) {
			t.Fatalf("Verify after Redis's restart = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
