package redisreplay_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/frostmint/frostmint/verifier/redisreplay"
)

// newCache returns a Cache on addr, with cfg's other fields, closed when
// the test ends. Timeouts cfg leaves zero are a generous second, not the
// package's short defaults: a loaded machine running the tests must not
// make Redis look down. Tests of the defaults pass them: see defaults.
func newCache(t testing.TB, addr string, cfg redisreplay.Config) *redisreplay.Cache {
	t.Helper()
	cfg.Addr = addr
	for _, d := range []*time.Duration{&cfg.DialTimeout, &cfg.ReadTimeout, &cfg.WriteTimeout} {
		if *d == 0 {
			*d = time.Second
		}
	}
	c, err := redisreplay.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// defaults is a Config with the package's default timeouts, spelled out
// for newCache.
var defaults = redisreplay.Config{
	DialTimeout:  redisreplay.DefaultDialTimeout,
	ReadTimeout:  redisreplay.DefaultReadTimeout,
	WriteTimeout: redisreplay.DefaultWriteTimeout,
}

// admin returns a plain go-redis client on addr, to look at and configure
// the server behind a Cache's back.
func admin(t testing.TB, addr, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// timeout returns a context that expires after d, canceled when the test
// ends.
func timeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// randomKey returns a key no other test uses.
func randomKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "iss:" + hex.EncodeToString(b)
}

// mustSeen calls Seen and fails the test unless it answers want.
func mustSeen(t testing.TB, c *redisreplay.Cache, key string, expiry time.Time, want bool) {
	t.Helper()
	got, err := c.Seen(timeout(t, 5*time.Second), key, expiry)
	if err != nil {
		t.Fatalf("Seen(%q) = %v", key, err)
	}
	if got != want {
		t.Fatalf("Seen(%q) = %v, want %v", key, got, want)
	}
}

// fakeRedis is a TCP server that speaks enough RESP to get a go-redis
// client connected, and answers every other command with reply: a server
// that misbehaves in ways a real one does not.
type fakeRedis struct {
	ln    net.Listener
	reply func(cmd []string) string // raw RESP
	wg    sync.WaitGroup
}

func startFakeRedis(t testing.TB, reply func(cmd []string) string) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, reply: reply}
	f.wg.Go(f.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRedis) Addr() string { return f.ln.Addr().String() }

func (f *fakeRedis) serve() {
	var conns sync.WaitGroup
	defer conns.Wait()
	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	}()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		open = append(open, conn)
		mu.Unlock()
		conns.Go(func() {
			defer conn.Close()
			r := bufio.NewReader(conn)
			for {
				cmd, err := readCommand(r)
				if err != nil {
					return
				}
				var out string
				switch strings.ToUpper(cmd[0]) {
				case "HELLO":
					out = "-ERR unknown command 'HELLO'\r\n" // an old server: RESP2
				default:
					out = f.reply(cmd)
				}
				if _, err := io.WriteString(conn, out); err != nil {
					return
				}
			}
		})
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	n, err := readHeader(r, '*')
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, errors.New("empty command")
	}
	cmd := make([]string, n)
	for i := range cmd {
		size, err := readHeader(r, '$')
		if err != nil {
			return nil, err
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		cmd[i] = string(b[:size])
	}
	return cmd, nil
}

func readHeader(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 4 || line[0] != kind || !strings.HasSuffix(line, "\r\n") {
		return 0, errors.New("bad RESP header")
	}
	return strconv.Atoi(line[1 : len(line)-2])
}
