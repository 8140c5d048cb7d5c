package gateway

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

// gatewayBin is the gateway binary the process tests run; TestMain builds
// it unless -short, or -run selects none of them.
var gatewayBin string

// processTests are the tests that run gatewayBin.
var processTests = []string{"TestProcessSingleUseAcrossGateways", "TestProcessRedisOutage"}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if wantProcessTests() {
			dir, err := os.MkdirTemp("", "frostmint-gateway-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			bin := filepath.Join(dir, "gateway")
			cmd := exec.Command("go", "build", "-o", bin, "github.com/frostmint/frostmint/services/gateway")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building the gateway binary: %v\n", err)
				return 1
			}
			gatewayBin = bin
		}
		return m.Run()
	}())
}

// wantProcessTests reports whether a process test may run: not with
// -short, nor when the top level of -run matches none of them (as for
// benchmarks alone), so that such runs do not build the binary.
func wantProcessTests() bool {
	if testing.Short() {
		return false
	}
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	re, err := regexp.Compile(strings.Split(f.Value.String(), "/")[0])
	if err != nil {
		return true
	}
	for _, name := range processTests {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// proc is a gateway process.
type proc struct {
	cmd    *exec.Cmd
	url    string // http://addr
	admin  string // http://admin addr
	log    *syncBuffer
	exited chan struct{}
}

var adminRE = regexp.MustCompile(`"msg":"gateway listening","addr":"[^"]*","admin":"([^"]*)"|msg="gateway listening" addr=\S+ admin=(\S+)`)

// startProcess runs the gateway binary on the config cfg (written to a
// file) and waits until it listens. At the end of the test it is sent
// SIGTERM, and must exit 0.
func startProcess(t *testing.T, cfg Config) *proc {
	t.Helper()
	if gatewayBin == "" {
		t.Skip("the gateway binary was not built (-short)")
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(gatewayBin, "--config", path)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("gateway exited %d on SIGTERM; its log:\n%s", code, p.log.String())
			}
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("gateway did not exit on SIGTERM; its log:\n%s", p.log.String())
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.log.String())
		}
	})
	p.url = "http://" + listeningAddr(t, p.log.String, p.exited)
	if m := adminRE.FindStringSubmatch(p.log.String()); m != nil && m[1]+m[2] != "" {
		p.admin = "http://" + m[1] + m[2]
	}
	return p
}

// processConfig is the config of a gateway process: loopback listeners,
// a shared Redis, one single-use route for everything.
func processConfig(t *testing.T, upstream, redisAddr string) Config {
	cfg := baseConfig(t, upstream)
	cfg.AdminListen = "127.0.0.1:0"
	cfg.Replay.Redis = &RedisConfig{Addr: redisAddr}
	return cfg
}

// status sends GET /x with tok to url and returns the status and error
// code; 0 if the request failed.
func getStatus(c *http.Client, url, tok string) (int, string) {
	req, err := http.NewRequest("GET", url+"/x", nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, errorCode(body)
}

func processClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestProcessSingleUseAcrossGateways: two gateway processes share one
// Redis; the same token fired at both, concurrently, 200 times, passes
// exactly once.
func TestProcessSingleUseAcrossGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	rs := redistest.Start(t)
	up := newRecorder(t)
	cfg := processConfig(t, up.URL, rs.Addr())
	gws := []*proc{startProcess(t, cfg), startProcess(t, cfg)}
	client := processClient(t)

	const requests, workers = 200, 16
	for round := range 3 {
		tok := mint(t)
		before := up.count()
		var ok, replayed, other atomic.Int64
		var otherMu sync.Mutex
		var others []string
		next := make(chan int, requests)
		for i := range requests {
			next <- i
		}
		close(next)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				<-start
				for i := range next {
					switch code, errc := getStatus(client, gws[i%2].url, tok); {
					case code == 200:
						ok.Add(1)
					case code == 401 && errc == "replayed":
						replayed.Add(1)
					default:
						other.Add(1)
						otherMu.Lock()
						others = append(others, fmt.Sprintf("%d %s", code, errc))
						otherMu.Unlock()
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if ok.Load() != 1 || replayed.Load() != requests-1 || other.Load() != 0 {
			t.Fatalf("round %d: %d passed, %d replayed, %d other (%v); want exactly 1 passed", round, ok.Load(), replayed.Load(), other.Load(), others)
		}
		if n := up.count() - before; n != 1 {
			t.Fatalf("round %d: the upstream saw %d requests, want 1", round, n)
		}
	}
}

// TestProcessRedisOutage: Redis stops while two gateway processes serve
// traffic. While it is down every request is refused with 503; when it
// returns, service resumes by itself, and no token that passed before
// passes again (Redis persists its keys: appendonly, appendfsync always).
func TestProcessRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	rs := redistest.StartWith(t, redistest.Options{Persistent: true})
	up := newRecorder(t)
	cfg := processConfig(t, up.URL, rs.Addr())
	gws := []*proc{startProcess(t, cfg), startProcess(t, cfg)}
	client := processClient(t)

	type result struct {
		start, end time.Time
		gw         int
		tok        string
		code       int
		errc       string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		seq     atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				tok, err := sign(issuerKey, claims())
				if err != nil {
					panic(err)
				}
				gw := int(seq.Add(1) % 2)
				r := result{start: time.Now(), gw: gw, tok: tok}
				r.code, r.errc = getStatus(client, gws[gw].url, tok)
				r.end = time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	snapshot := func() []result {
		mu.Lock()
		defer mu.Unlock()
		return append([]result(nil), results...)
	}
	passedAfter := func(t0 time.Time) int {
		n := 0
		for _, r := range snapshot() {
			if r.code == 200 && r.start.After(t0) {
				n++
			}
		}
		return n
	}

	waitFor(t, 10*time.Second, func() bool { return passedAfter(time.Time{}) >= 50 })
	rs.Stop()
	down := time.Now()
	time.Sleep(time.Second)
	for _, gw := range gws {
		resp, body := send(t, client, mustRequest(t, "GET", gw.admin+"/readyz"))
		if resp.StatusCode != 503 {
			t.Errorf("/readyz with Redis down: %d %s", resp.StatusCode, body)
		}
	}
	up0 := time.Now()
	rs.Restart()
	back := time.Now()
	waitFor(t, 15*time.Second, func() bool { return passedAfter(back) >= 50 })
	close(stop)
	wg.Wait()

	all := snapshot()
	var during, passed []result
	for _, r := range all {
		switch {
		case r.code != 200 && r.code != 503:
			t.Errorf("request to gateway %d: %d %s; want 200 or 503", r.gw, r.code, r.errc)
		case r.code == 503 && r.errc != "replay_store_unavailable":
			t.Errorf("503 with code %q", r.errc)
		}
		if r.start.After(down) && r.end.Before(up0) {
			during = append(during, r)
			if r.code != 503 {
				t.Errorf("request while Redis was down: %d %s", r.code, r.errc)
			}
		}
		if r.code == 200 {
			passed = append(passed, r)
		}
	}
	if len(during) < 20 {
		t.Errorf("only %d requests ran while Redis was down", len(during))
	}
	t.Logf("%d requests: %d passed, %d while Redis was down (all 503)", len(all), len(passed), len(during))

	// Every token that passed, before the outage or after, is used: on
	// either gateway.
	var replayFailures atomic.Int64
	next := make(chan result, len(passed))
	for _, r := range passed {
		next <- r
	}
	close(next)
	var rw sync.WaitGroup
	for range 16 {
		rw.Go(func() {
			for r := range next {
				if code, errc := getStatus(client, gws[1-r.gw].url, r.tok); code != 401 || errc != "replayed" {
					replayFailures.Add(1)
					t.Errorf("token that passed at %s passed again or failed otherwise: %d %s", r.start.Format(time.StampMicro), code, errc)
				}
			}
		})
	}
	rw.Wait()
	if replayFailures.Load() == 0 {
		t.Logf("all %d tokens that passed were refused as replayed afterwards", len(passed))
	}
}
