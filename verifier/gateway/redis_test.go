package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

// TestRedisReplay: with a shared Redis (with a password), single use holds
// across gateways, readiness follows Redis, a Redis outage refuses
// single-use routes with 503 (reusable ones need no replay store), and
// service resumes by itself when Redis is back.
func TestRedisReplay(t *testing.T) {
	rs := redistest.StartWith(t, redistest.Options{Password: "s3cret-pw", Persistent: true})
	pwFile := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := newRecorder(t)
	cfg := baseConfig(t, up.URL)
	cfg.Replay.Redis = &RedisConfig{Addr: rs.Addr(), PasswordFile: pwFile, KeyPrefix: "gw-test:"}
	cfg.Routes = []RouteConfig{
		{Name: "once", PathPrefix: "/once", Scopes: []string{"read"}},
		{Name: "again", PathPrefix: "/again", Scopes: []string{"read"}, Replay: ReplayReusable},
	}
	a, b := start(t, cfg), start(t, cfg)

	readyz := func(gw *running) (int, string) {
		resp, body := send(t, gw.client, mustRequest(t, "GET", gw.admin+"/readyz"))
		return resp.StatusCode, string(body)
	}
	if code, body := readyz(a); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	tok := mint(t)
	resp, body := a.do(t, "GET", "/once", tok, nil)
	checkStatus(t, resp, body, 200, "")
	resp, body = b.do(t, "GET", "/once", tok, nil)
	checkStatus(t, resp, body, 401, "replayed")

	rs.Stop()
	code, rb := readyz(a)
	if code != 503 || !strings.Contains(rb, "replay store unreachable") || strings.Contains(rb, rs.Addr()) {
		t.Fatalf("/readyz with Redis down: %d %s", code, rb)
	}
	for _, gw := range []*running{a, b} {
		resp, body = gw.do(t, "GET", "/once", mint(t), nil)
		checkStatus(t, resp, body, 503, "replay_store_unavailable")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if strings.Contains(string(body), rs.Addr()) {
			t.Errorf("503 leaks the Redis address: %s", body)
		}
		resp, body = gw.do(t, "GET", "/again", mint(t), nil)
		checkStatus(t, resp, body, 200, "")
	}

	rs.Restart()
	waitFor(t, 10*time.Second, func() bool {
		resp, _ := a.do(t, "GET", "/once", mint(t), nil)
		return resp.StatusCode == http.StatusOK
	})
	if code, body := readyz(b); code != 200 {
		t.Fatalf("/readyz after Redis returned: %d %s", code, body)
	}
	// The restarted Redis kept its keys: the token used before is still
	// used.
	resp, body = b.do(t, "GET", "/once", tok, nil)
	checkStatus(t, resp, body, 401, "replayed")
}
