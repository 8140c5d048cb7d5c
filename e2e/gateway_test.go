package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frostmint/frostmint/coordinator/devcluster"
)

// TestGatewayInFrontOfTheCluster runs `frostmint gateway` (keys by OpenID
// discovery from the dev coordinator) in front of an upstream that knows
// nothing of tokens, and sends it tokens minted by the cluster.
func TestGatewayInFrontOfTheCluster(t *testing.T) {
	var seen http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, "hello "+r.Header.Get("X-Frostmint-Subject"))
	}))
	defer upstream.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	gw := exec.Command(bin, "gateway", "--listen", addr, "--upstream", upstream.URL,
		"--issuer", cluster.Issuer, "--audience", devcluster.DemoAudience, "--scope", "read")
	gw.Stdout, gw.Stderr = &out, &out
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		gw.Process.Signal(syscall.SIGTERM)
		gw.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", out.String())
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	do := func(method, path, tok string, body io.Reader) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, body)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("X-Frostmint-Subject", "spiffe://forged/admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var j map[string]any
		json.Unmarshal(b, &j)
		return resp.StatusCode, j
	}

	tok := mint(t)
	if code, _ := do("GET", "/data", tok, nil); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	if seen.Get("X-Frostmint-Subject") != devcluster.CallerID || seen.Get("Authorization") != "" {
		t.Fatalf("upstream saw subject %q, authorization %q", seen.Get("X-Frostmint-Subject"), seen.Get("Authorization"))
	}
	if code, j := do("GET", "/data", tok, nil); code != 401 || j["error"] != "replayed" {
		t.Fatalf("replayed token: %d %v", code, j)
	}
	if code, j := do("GET", "/data", "", nil); code != 401 || j["error"] != "missing_token" {
		t.Fatalf("no token: %d %v", code, j)
	}

	// A token bound to one request passes for it and for nothing else.
	bound := func(method, path, body string) string {
		args := []string{"--bind-method", method, "--bind-url", base + path}
		if body != "" {
			f := filepath.Join(t.TempDir(), "body")
			writeFile(t, f, body)
			args = append(args, "--bind-body", f)
		}
		return mint(t, args...)
	}
	if code, j := do("POST", "/pay", bound("POST", "/pay", `{"amount":5}`), strings.NewReader(`{"amount":5}`)); code != 200 {
		t.Fatalf("bound token, right request: %d %v", code, j)
	}
	if code, j := do("POST", "/pay", bound("POST", "/pay", `{"amount":5}`), strings.NewReader(`{"amount":500}`)); code != 401 || j["error"] != "binding_mismatch" {
		t.Fatalf("bound token, other body: %d %v", code, j)
	}
	if code, j := do("GET", "/other", bound("GET", "/data", ""), nil); code != 401 || j["error"] != "binding_mismatch" {
		t.Fatalf("bound token, other path: %d %v", code, j)
	}
}
