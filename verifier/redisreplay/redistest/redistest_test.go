package redistest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

func client(t *testing.T, s *redistest.Server, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr(), Password: password, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLifecycle(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		name := map[bool]string{false: "volatile", true: "persistent"}[persistent]
		t.Run(name, func(t *testing.T) {
			s := redistest.StartWith(t, redistest.Options{Persistent: persistent, Password: "pw"})
			addr := s.Addr()
			c := client(t, s, "pw")
			if err := c.Set(ctx(t), "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := client(t, s, "").Ping(ctx(t)).Err(); !redis.IsAuthError(err) {
				t.Fatalf("PING without the password = %v", err)
			}

			s.Stop()
			if err := c.Ping(ctx(t)).Err(); err == nil {
				t.Fatal("PING of a stopped server succeeded")
			}
			s.Stop() // no-op

			s.Restart()
			if s.Addr() != addr {
				t.Fatalf("Addr after Restart = %s, want %s", s.Addr(), addr)
			}
			v, err := c.Get(ctx(t), "k").Result()
			switch {
			case persistent && (err != nil || v != "v"):
				t.Fatalf("GET after restart of a persistent server = %q, %v", v, err)
			case !persistent && err != redis.Nil:
				t.Fatalf("GET after restart of a volatile server = %q, %v; want nil", v, err)
			}

			if persistent {
				if err := c.Set(ctx(t), "k2", "v2", 0).Err(); err != nil {
					t.Fatal(err)
				}
				s.Kill()
				s.Restart()
				if v, err := c.Get(ctx(t), "k2").Result(); err != nil || v != "v2" {
					t.Fatalf("GET after a kill of a persistent server = %q, %v", v, err)
				}
			}

			s.Pause()
			short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := c.Ping(short).Err(); err == nil {
				t.Fatal("PING of a paused server succeeded")
			}
			s.Resume()
			if err := c.Ping(ctx(t)).Err(); err != nil {
				t.Fatalf("PING after Resume = %v", err)
			}
		})
	}
}

// Without redis-server, Start fails the test with a message saying what to
// install, or skips it under FROSTMINT_SKIP_REDIS=1. The check runs in a
// child test process whose PATH has no redis-server.
func TestWithoutRedisServer(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		redistest.Start(t)
		t.Log("started")
		return
	}
	for _, tc := range []struct {
		skip     string
		wantFail bool
		want     string
	}{
		{"", true, "redis-server is not installed"},
		{"1", false, "--- SKIP"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWithoutRedisServer$", "-test.v")
		cmd.Env = append(os.Environ(), "PATH="+t.TempDir(), "REDISTEST_CHILD=1", redistest.SkipEnv+"="+tc.skip)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if (err != nil) != tc.wantFail || !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "started") {
			t.Fatalf("%s=%q: %v, output:\n%s", redistest.SkipEnv, tc.skip, err, out.String())
		}
	}
}
