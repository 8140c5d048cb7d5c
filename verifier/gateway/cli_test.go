package gateway

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listeningRE finds the address in the log line, JSON (the default) or
// text.
var listeningRE = regexp.MustCompile(`"msg":"gateway listening","addr":"([^"]+)"|msg="gateway listening" addr=(\S+)`)

// listeningAddr waits for the "gateway listening" log line in log and
// returns its address.
func listeningAddr(t testing.TB, log func() string, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(log()); m != nil {
			return m[1] + m[2]
		}
		select {
		case <-exited:
			t.Fatalf("the gateway exited before listening:\n%s", log())
		case <-deadline:
			t.Fatalf("the gateway did not log its address:\n%s", log())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestMainUsage(t *testing.T) {
	dir := t.TempDir()
	jwksFile := writeJWKS(t, issuerKey)
	invalid := filepath.Join(dir, "invalid.json")
	os.WriteFile(invalid, []byte(`{"listen": "", "issuers": [], "routes": [{"name": "a", "path_prefix": "x"}]}`), 0o600)
	unknownKey := filepath.Join(dir, "unknown.json")
	os.WriteFile(unknownKey, []byte(`{"listen": ":1", "colour": "blue"}`), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	oneRoute := []string{"--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--issuer", testIssuer, "--audience", testAudience, "--jwks", jwksFile}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr []string
	}{
		{"help", []string{"--help"}, ExitOK, "gateway --config FILE", nil},
		{"h", []string{"-h"}, ExitOK, "Exit status", nil},
		{"nothing", nil, ExitUsage, "", []string{"missing --listen, --upstream, --issuer, --audience"}},
		{"unknown flag", []string{"--colour", "blue"}, ExitUsage, "", []string{"flag provided but not defined", "--help"}},
		{"argument", append(oneRoute, "extra"), ExitUsage, "", []string{`unexpected argument "extra"`}},
		{"config and flags", []string{"--config", invalid, "--listen", ":1", "--reusable"}, ExitUsage, "", []string{"--config excludes --listen, --reusable"}},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.json")}, ExitUsage, "", []string{"nope.json"}},
		{"unknown key", []string{"--config", unknownKey}, ExitUsage, "", []string{`unknown field "colour"`}},
		{"invalid config", []string{"--config", invalid}, ExitUsage, "", []string{"listen is required", "at least one issuer", `path_prefix: "x"`}},
		{"bad upstream", append(oneRoute[:2:2], "--upstream", "ftp://x", "--issuer", testIssuer, "--audience", testAudience), ExitUsage, "", []string{"scheme must be http, https or h2c"}},
		{"bad scope", append(oneRoute, "--scope", ""), ExitUsage, "", []string{"empty scope"}},
		{"password without redis", append(oneRoute, "--redis-password-file", "pw"), ExitUsage, "", []string{"--redis-password-file needs --redis"}},
		{"missing password file", append(oneRoute, "--redis", "127.0.0.1:1", "--redis-password-file", filepath.Join(dir, "pw")), ExitFailure, "", []string{"redis password"}},
		{"busy port", append([]string{"--listen", busy.Addr().String()}, oneRoute[2:]...), ExitFailure, "", []string{"listen"}},
		{"audit log unwritable", append(oneRoute, "--audit-log", filepath.Join(dir, "no", "such", "dir", "audit")), ExitFailure, "", []string{"audit log"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := Main(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.stdout != "" && !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout.String())
			}
			if tc.stdout == "" && stdout.String() != "" {
				t.Errorf("stdout: %s", stdout.String())
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestMainRuns: the one-route form serves until its context ends, then
// exits 0; --scope is repeatable and space-separated.
func TestMainRuns(t *testing.T) {
	up := newRecorder(t)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exited := make(chan struct{})
	var code int
	go func() {
		defer close(exited)
		code = Main(ctx, []string{
			"--listen", "127.0.0.1:0", "--upstream", up.URL, "--issuer", testIssuer, "--audience", testAudience,
			"--jwks", writeJWKS(t, issuerKey), "--scope", "read", "--scope", "write admin", "--reusable",
		}, &stdout, &stderr)
	}()
	addr := listeningAddr(t, stderr.String, exited)

	get := func(tok string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/anything", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	all := mint(t, withScope("read write admin"))
	if s := get(all); s != 200 {
		t.Fatalf("token with every scope: %d", s)
	}
	if s := get(all); s != 200 {
		t.Fatalf("--reusable: second use: %d", s)
	}
	if s := get(mint(t, withScope("read write"))); s != 403 {
		t.Fatalf("token without admin: %d", s)
	}
	cancel()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("Main did not return")
	}
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
}
