package e2e

// Fault injection with real processes on loopback. Each test prepares a
// 2-of-3 cluster directory of its own with `frostmint dev up` (CA, configs,
// DKG), stops it, and then runs every daemon itself — so that it can kill,
// stop and restart them without touching the cluster the other tests share
// — while a few callers mint without pause. Timings are reported with
// t.Logf, never asserted.
//
// Not here: Redis, which verifiers share for replay, stopped and started
// under traffic — verifier/gateway's TestProcessRedisOutage (real gateway
// processes and a real redis-server: every request denied while it is down,
// none allowed twice after) and verifier/redisreplay's TestMidTrafficOutage
// (the cache itself, fail closed and recovering by itself). Nor network
// delay or loss (netem): nothing here needs it, a stopped process is a
// harder hang than any delay.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// faultCluster is a 2-of-3 cluster of real daemons that the test starts,
// kills, stops and restarts one by one.
type faultCluster struct {
	t    *testing.T
	dir  string
	info *devcluster.Cluster // addresses and files (its pids are stale)
	// coord is the coordinator's config, written when it starts: adjust
	// it before startAll.
	coord coordinator.Config
	procs map[string]*faultProc
}

type faultProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// prepareFaultCluster makes a cluster directory with `frostmint dev up`
// and stops it again. Rate limits are off: a handful of callers minting
// without pause as one identity is the point here (limits have tests of
// their own).
func prepareFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cluster")
	up := exec.Command(bin, "dev", "up", "--dir", dir)
	var out bytes.Buffer
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { up.Wait(); close(exited) }()
	var info *devcluster.Cluster
	deadline := time.Now().Add(90 * time.Second)
	for info == nil {
		select {
		case <-exited:
			t.Fatalf("dev up exited before the cluster was ready:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := devcluster.ReadCluster(filepath.Join(dir, "cluster.json")); err == nil {
			info = c
		} else if time.Now().After(deadline) {
			up.Process.Kill()
			<-exited
			t.Fatalf("dev up: no cluster after 90s:\n%s", out.String())
		}
	}
	up.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		up.Process.Kill()
		<-exited
		t.Fatal("dev up did not stop within 15s")
	}
	f := &faultCluster{t: t, dir: dir, info: info, procs: map[string]*faultProc{}}
	var err error
	if f.coord, err = coordinator.LoadConfig(filepath.Join(dir, "coordinator.json")); err != nil {
		t.Fatal(err)
	}
	f.coord.Limits = limit.Config{}
	for _, s := range info.Signers {
		path := filepath.Join(dir, fmt.Sprintf("signer-%d.json", s.ID))
		sc, err := signer.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		sc.Limits = limit.Config{}
		writeJSONFile(t, path, sc)
	}
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
		for name := range f.procs {
			f.stop(name)
		}
	})
	return f
}

// startAll starts the three signers and then the coordinator.
func (f *faultCluster) startAll() {
	f.t.Helper()
	for _, s := range f.info.Signers {
		f.startSigner(s.ID)
	}
	f.startCoordinator()
	// Ready: every signer healthy, with commitments pooled.
	c := f.client()
	f.waitUntil(30*time.Second, "every signer healthy", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			return false
		}
		for _, s := range st.GetSigners() {
			if !s.GetHealthy() || s.GetPooledCommitments() == 0 {
				return false
			}
		}
		return true
	})
}

// start runs `frostmint args...` as daemon name, its output appended to
// dir/logs/name.log.
func (f *faultCluster) start(name string, args ...string) {
	f.t.Helper()
	lf, err := os.OpenFile(filepath.Join(f.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	err = cmd.Start()
	lf.Close()
	if err != nil {
		f.t.Fatal(err)
	}
	p := &faultProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	f.procs[name] = p
}

func signerName(id uint16) string { return fmt.Sprintf("signer-%d", id) }

// startSigner starts signer id and waits until it listens.
func (f *faultCluster) startSigner(id uint16) {
	f.t.Helper()
	f.start(signerName(id), "dev", "signer", "--dir", f.dir, "--id", strconv.Itoa(int(id)))
	addr := f.info.Signers[id-1].Addr
	f.waitUntil(30*time.Second, signerName(id)+" listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startCoordinator writes f.coord and starts the coordinator, and waits
// until it serves.
func (f *faultCluster) startCoordinator() {
	f.t.Helper()
	writeJSONFile(f.t, filepath.Join(f.dir, "coordinator.json"), f.coord)
	f.start("coordinator", "coordinator", "--config", filepath.Join(f.dir, "coordinator.json"))
	f.waitUntil(30*time.Second, "coordinator serving", func() bool {
		resp, err := http.Get("http://" + f.coord.HTTPListen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// signal sends sig to daemon name.
func (f *faultCluster) signal(name string, sig syscall.Signal) {
	f.t.Helper()
	if err := f.procs[name].cmd.Process.Signal(sig); err != nil {
		f.t.Fatalf("%s: %v", name, err)
	}
}

// end sends sig to daemon name (SIGKILL after 10 s) and returns once it
// has exited.
func (f *faultCluster) end(name string, sig syscall.Signal) {
	p, ok := f.procs[name]
	if !ok {
		return
	}
	delete(f.procs, name)
	p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot exit
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (f *faultCluster) stop(name string) { f.end(name, syscall.SIGTERM) }

func (f *faultCluster) waitUntil(limit time.Duration, what string, ok func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *faultCluster) client() *client.Client {
	f.t.Helper()
	c, err := client.Dial(f.info.Coordinator, f.info.Caller)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

func (f *faultCluster) logPath(name string) string { return filepath.Join(f.dir, "logs", name+".log") }

// logLines returns the records of daemon name's log (JSON, or text) with
// message msg and, when id is set, signer id.
func (f *faultCluster) logLines(name, msg string, id uint16) []string {
	f.t.Helper()
	b, err := os.ReadFile(f.logPath(name))
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		var rec struct {
			Msg    string `json:"msg"`
			Signer uint16 `json:"signer"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil {
			// The text format: msg="…" signer=N.
			rec.Msg, rec.Signer = "", 0
			for _, kv := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(kv, "signer="); ok {
					n, _ := strconv.ParseUint(v, 10, 16)
					rec.Signer = uint16(n)
				}
			}
			if strings.Contains(l, fmt.Sprintf("msg=%q", msg)) {
				rec.Msg = msg
			}
		}
		if rec.Msg == msg && (id == 0 || rec.Signer == id) {
			out = append(out, l)
		}
	}
	return out
}

func (f *faultCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(f.dir, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		f.t.Logf("---- %s (tail)\n%s", l, b)
	}
}

// mintResult is one call of a caller.
type mintResult struct {
	start, end time.Time
	resp       *mintv1.MintResponse
	err        error
}

func (r mintResult) signedBy(id uint16) bool {
	return r.err == nil && slices.Contains(r.resp.GetSignerIds(), uint32(id))
}

// load is a few callers minting without pause, each one request at a
// time; after an error a caller waits 20 ms and goes on (its retry).
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results []mintResult
}

func (f *faultCluster) startLoad(callers int) *load {
	c := f.client()
	l := &load{stop: make(chan struct{})}
	for range callers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				r := mintResult{start: time.Now()}
				r.resp, r.err = c.Mint(ctx, devcluster.DemoAudience, []string{"read"}, 0)
				r.end = time.Now()
				cancel()
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if r.err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	f.t.Cleanup(func() { l.finish() })
	return l
}

func (l *load) snapshot() []mintResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// finish stops the callers and returns every result.
func (l *load) finish() []mintResult {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	return l.snapshot()
}

// waitFor returns the first result for which ok holds, waiting for it at
// most limit.
func (l *load) waitFor(t *testing.T, limit time.Duration, what string, ok func(mintResult) bool) mintResult {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, r := range l.snapshot() {
			if ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// window is the latency of the mints started in [from, to): "n=… p50=…
// p99=… max=…".
func window(rs []mintResult, from, to time.Time) string {
	var ds []time.Duration
	for _, r := range rs {
		if !r.start.Before(from) && r.start.Before(to) {
			ds = append(ds, r.end.Sub(r.start))
		}
	}
	if len(ds) == 0 {
		return "n=0"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(ds), q(0.50), q(0.99), ds[len(ds)-1].Round(100*time.Microsecond))
}

// verifyTokens checks every token the callers got with the verifier
// against the served JWKS: a complete, valid token for the caller, each
// one once. It returns how many there were.
func (f *faultCluster) verifyTokens(rs []mintResult) int {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := jwks.Load(ctx, f.info.JWKSURL, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := verifier.New(verifier.Config{Issuers: []verifier.Issuer{{Issuer: f.info.Issuer, Keys: keys}}, Audience: devcluster.DemoAudience})
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		n++
		c, err := v.Verify(ctx, r.resp.GetToken(), "read")
		if err != nil {
			f.t.Errorf("token %s: %v", r.resp.GetTokenId(), err)
			continue
		}
		if c.ID != r.resp.GetTokenId() || c.Subject != devcluster.CallerID || len(r.resp.GetSignerIds()) != 2 {
			f.t.Errorf("token %s: claims %+v, signers %v", r.resp.GetTokenId(), c, r.resp.GetSignerIds())
		}
	}
	return n
}

// checkAudit runs `frostmint audit verify` on every log and compares the
// logs: every token a caller got is recorded by the coordinator as minted
// by the signers that answered, each of which recorded signing it; a token
// a signer signed but the coordinator never recorded (a mint cut short)
// never reached a caller. It returns the comparison.
func (f *faultCluster) checkAudit(rs []mintResult) audit.DiffResult {
	f.t.Helper()
	for _, l := range f.info.AuditLogs {
		if out, errOut, code := cli(f.t, "", "audit", "verify", l); code != 0 {
			f.t.Errorf("audit verify %s: exit %d: %s%s", filepath.Base(l), code, out, errOut)
		}
	}
	coordLog := f.info.AuditLogs[0]
	signers := map[uint16]string{}
	args := []string{"audit", "diff", "--coordinator", coordLog}
	for _, s := range f.info.Signers {
		signers[s.ID] = s.AuditLog
		args = append(args, "--signer", fmt.Sprintf("%d=%s", s.ID, s.AuditLog))
	}
	d, err := audit.Diff(coordLog, signers)
	if err != nil {
		f.t.Fatal(err)
	}
	if out, _, code := cli(f.t, "", args...); (code == 0) != d.Empty() {
		f.t.Errorf("frostmint audit diff exited %d, the logs differ: %v\n%s", code, !d.Empty(), out)
	}
	for id, jtis := range d.MissingAtSigner {
		f.t.Errorf("the coordinator says signer %d signed %d tokens its log does not have: %v", id, len(jtis), jtis)
	}
	recs, err := audit.ReadAll(coordLog)
	if err != nil {
		f.t.Fatal(err)
	}
	minted := map[string][]uint16{}
	for _, r := range recs {
		if r.Decision == audit.Allow {
			minted[r.JTI] = r.Signers
		}
	}
	returned := map[string]bool{}
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		jti := r.resp.GetTokenId()
		returned[jti] = true
		ids, ok := minted[jti]
		if !ok {
			f.t.Errorf("token %s reached a caller but the coordinator's audit log does not record it", jti)
			continue
		}
		var want []uint16
		for _, id := range r.resp.GetSignerIds() {
			want = append(want, uint16(id))
		}
		if !slices.Equal(ids, want) {
			f.t.Errorf("token %s: the audit log says signers %v, the caller was told %v", jti, ids, want)
		}
	}
	for id, jtis := range d.UnknownToCoordinator {
		for _, jti := range jtis {
			if returned[jti] {
				f.t.Errorf("signer %d signed token %s, which a caller got, but the coordinator never recorded it", id, jti)
			}
		}
	}
	return d
}

// failures returns the results that are errors.
func failures(rs []mintResult) []mintResult {
	var out []mintResult
	for _, r := range rs {
		if r.err != nil {
			out = append(out, r)
		}
	}
	return out
}

// Kill -9 one of three signers while callers mint: no caller sees an
// error (mints in flight are retried by the coordinator on the two
// others), every token verifies, the signer rejoins once restarted, and no
// commitment of the dead process is ever sent to the new one.
func TestFaultSignerKilled(t *testing.T) {
	f := prepareFaultCluster(t)
	f.startAll()
	l := f.startLoad(4)
	time.Sleep(time.Second)

	kill := time.Now()
	f.end(signerName(3), syscall.SIGKILL)
	dead := time.Now()
	// Back well within the coordinator's 2 s health-check period: only the
	// failed calls tell it that the signer's commitments died with it.
	time.Sleep(time.Second)
	restart := time.Now()
	f.startSigner(3)
	back := l.waitFor(t, 30*time.Second, "signer 3 signing again", func(r mintResult) bool {
		return r.start.After(restart) && r.signedBy(3)
	})
	time.Sleep(500 * time.Millisecond)
	rs := l.finish()

	for _, r := range failures(rs) {
		t.Errorf("a caller got an error (started %s after the kill): %v", r.start.Sub(kill).Round(time.Millisecond), r.err)
	}
	for _, r := range rs {
		if r.start.After(dead) && r.end.Before(restart) && r.signedBy(3) {
			t.Errorf("token %s carries a share of the killed signer", r.resp.GetTokenId())
		}
	}
	n := f.verifyTokens(rs)
	// The restarted signer was never sent a commitment of the dead
	// process: it would have refused it (ABORTED) and said so in its log.
	recs, err := audit.ReadAll(f.info.Signers[2].AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	stale, signedAfter := 0, 0
	for _, r := range recs {
		switch {
		case r.Decision == audit.Deny && r.Code == "stale_commitment":
			stale++
		case r.Decision == audit.Allow && r.Time.After(restart):
			signedAfter++
		}
	}
	if stale > 0 {
		t.Errorf("signer 3 was sent %d commitments it no longer held", stale)
	}
	if signedAfter == 0 {
		t.Error("the restarted signer's audit log records no signature")
	}
	if d := f.checkAudit(rs); !d.Empty() {
		t.Errorf("audit logs differ: %+v", d)
	}
	t.Logf("%d tokens, 0 errors; 4 callers on loopback, daemons without -race", n)
	t.Logf("before the kill (1s):       %s", window(rs, kill.Add(-time.Second), kill))
	t.Logf("failover (kill to restart): %s", window(rs, kill, restart))
	t.Logf("signer 3 back in a token %s after its restart (process start, unseal, coordinator's health check); %d signatures since",
		back.end.Sub(restart).Round(time.Millisecond), signedAfter)
}

// SIGSTOP a signer (a hang, not a crash): with sign_timeout far above the
// stop, only hedging can route around it. No caller sees an error, no mint
// that started while the signer was stopped waits for it to resume (and is
// signed by it), and the signer is used again once it does.
func TestFaultSignerHangs(t *testing.T) {
	f := prepareFaultCluster(t)
	f.coord.SignTimeout = coordinator.Duration(20 * time.Second)
	hedge := time.Duration(f.coord.HedgeAfter) // the default
	if hedge <= 0 {
		t.Fatal("hedging is off by default")
	}
	f.startAll()
	l := f.startLoad(4)
	time.Sleep(time.Second)

	stop := time.Now()
	f.signal(signerName(3), syscall.SIGSTOP)
	const stopped = 3 * time.Second
	time.Sleep(stopped)
	cont := time.Now()
	f.signal(signerName(3), syscall.SIGCONT)
	back := l.waitFor(t, 30*time.Second, "signer 3 signing again", func(r mintResult) bool {
		return r.start.After(cont) && r.signedBy(3)
	})
	time.Sleep(500 * time.Millisecond)
	rs := l.finish()

	for _, r := range failures(rs) {
		t.Errorf("a caller got an error (started %s after SIGSTOP): %v", r.start.Sub(stop).Round(time.Millisecond), r.err)
	}
	// Without hedging, a mint that asked the stopped signer would wait for
	// SIGCONT (sign_timeout is 20s) and be signed with its share. Those
	// that started while it was stopped, up to a second before SIGCONT
	// (many times hedge_after), were all signed without it.
	waited := 0
	for _, r := range rs {
		if r.start.After(stop.Add(50*time.Millisecond)) && r.start.Before(cont.Add(-time.Second)) && r.signedBy(3) {
			waited++
		}
	}
	if waited > 0 {
		t.Errorf("%d mints waited for the stopped signer to resume", waited)
	}
	hedges := f.logLines("coordinator", "hedging: asking another quorum", 0)
	behind := f.logLines("coordinator", "signer left behind by a hedged attempt; marked unhealthy", 3)
	if len(hedges) == 0 || len(behind) == 0 {
		t.Errorf("the coordinator logged %d hedges and %d signers left behind; want both", len(hedges), len(behind))
	}
	n := f.verifyTokens(rs)
	if d := f.checkAudit(rs); !d.Empty() {
		t.Errorf("audit logs differ: %+v", d)
	}
	t.Logf("%d tokens, 0 errors; hedge_after %s, sign_timeout %s; %d hedged mints; 4 callers on loopback", n, hedge,
		time.Duration(f.coord.SignTimeout), len(hedges))
	t.Logf("before SIGSTOP (1s):         %s", window(rs, stop.Add(-time.Second), stop))
	t.Logf("first second of the stop:    %s", window(rs, stop, stop.Add(time.Second)))
	t.Logf("rest of the stop:            %s", window(rs, stop.Add(time.Second), cont))
	t.Logf("signer 3 back in a token %s after SIGCONT", back.end.Sub(cont).Round(time.Millisecond))
}

// shareCorrupter stands in front of a real signer with that signer's own
// mTLS identity — a signer host that has been taken over — and passes Info
// and Commit through, but flips one bit of every signature share. (A test
// proxy rather than a fault hook in the signer: the binary under test is
// the one that ships, and it has no switch that makes it lie.)
type shareCorrupter struct {
	signv1.UnimplementedSignerServiceServer
	real      signv1.SignerServiceClient
	corrupted atomic.Int32
}

func (c *shareCorrupter) Info(ctx context.Context, req *signv1.InfoRequest) (*signv1.InfoResponse, error) {
	return c.real.Info(ctx, req)
}

func (c *shareCorrupter) Commit(ctx context.Context, req *signv1.CommitRequest) (*signv1.CommitResponse, error) {
	return c.real.Commit(ctx, req)
}

func (c *shareCorrupter) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	resp, err := c.real.Sign(ctx, req)
	if err != nil {
		return nil, err
	}
	// The low byte of the scalar (after the 1-byte group and 2-byte id):
	// the share stays well-formed, and wrong.
	resp.SignatureShare[3] ^= 0x01
	c.corrupted.Add(1)
	return resp, nil
}

// corruptShares puts a shareCorrupter in front of signer id: the
// coordinator's config points at it.
func (f *faultCluster) corruptShares(id uint16) *shareCorrupter {
	f.t.Helper()
	certs := filepath.Join(f.dir, "certs")
	files := func(name string) mtls.Files {
		return mtls.Files{Cert: filepath.Join(certs, name+".crt"), Key: filepath.Join(certs, name+".key"), CA: filepath.Join(f.dir, "ca.crt")}
	}
	ctc, err := mtls.ClientConfig(files("coordinator"))
	if err != nil {
		f.t.Fatal(err)
	}
	conn, err := grpc.NewClient(f.info.Signers[id-1].Addr, grpc.WithTransportCredentials(credentials.NewTLS(ctc)))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	stc, err := mtls.ServerConfig(files(signerName(id)), true)
	if err != nil {
		f.t.Fatal(err)
	}
	c := &shareCorrupter{real: signv1.NewSignerServiceClient(conn)}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(stc)))
	signv1.RegisterSignerServiceServer(gs, c)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	go gs.Serve(lis)
	f.t.Cleanup(gs.Stop)
	f.coord.Signers[id-1].Addr = lis.Addr().String()
	return c
}

// A signer returning corrupt shares: every mint still succeeds with
// another quorum, and the culprit is named in the coordinator's log, its
// audit log, its status and its metrics.
func TestFaultCorruptShare(t *testing.T) {
	f := prepareFaultCluster(t)
	bad := f.corruptShares(2)
	f.startAll()
	c := f.client()
	var rs []mintResult
	for i := 0; i < 8; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r := mintResult{start: time.Now()}
		r.resp, r.err = c.Mint(ctx, devcluster.DemoAudience, []string{"read"}, 0)
		r.end = time.Now()
		cancel()
		if r.err != nil {
			t.Fatalf("mint %d with a signer returning corrupt shares: %v", i, r.err)
		}
		if r.signedBy(2) {
			t.Fatalf("token %s was made with the corrupt signer", r.resp.GetTokenId())
		}
		rs = append(rs, r)
	}
	if bad.corrupted.Load() == 0 {
		t.Fatal("the coordinator never asked signer 2") // quorums are made in config order
	}
	f.verifyTokens(rs)

	if lines := f.logLines("coordinator", "signer returned an invalid share", 2); len(lines) == 0 {
		t.Error("the coordinator's log does not name signer 2")
	}
	recs, err := audit.ReadAll(f.info.AuditLogs[0])
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, r := range recs {
		if slices.Contains(r.InvalidShares, 2) {
			named++
		}
	}
	if named == 0 {
		t.Error("the coordinator's audit log names no invalid share of signer 2")
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.GetSigners() {
		if s.GetId() == 2 && s.GetHealthy() {
			t.Error("signer 2 returned an invalid share and is reported healthy")
		}
	}
	switch n, err := f.metric("frostmint_cheaters_identified_total", `signer="2"`); {
	case errors.Is(err, errNoMetrics):
		t.Logf("metrics: %v", err)
	case err != nil:
		t.Error(err)
	case n < 1:
		t.Errorf(`frostmint_cheaters_identified_total{signer="2"} = %v`, n)
	default:
		t.Logf(`metrics: frostmint_cheaters_identified_total{signer="2"} %v`, n)
	}
	if d := f.checkAudit(rs); !d.Empty() {
		t.Errorf("audit logs differ: %+v", d)
	}
	t.Logf("%d shares corrupted; %d audit records name signer 2; every mint %s", bad.corrupted.Load(), named, window(rs, time.Time{}, time.Now()))
}

// errNoMetrics: the coordinator serves no /metrics.
var errNoMetrics = errors.New("no /metrics")

// metric reads one sample of the coordinator's /metrics: the metric name
// with the given label among its labels.
func (f *faultCluster) metric(name, label string) (float64, error) {
	resp, err := http.Get("http://" + f.coord.HTTPListen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return 0, errNoMetrics
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics answers %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(b), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(series, name+"{") || !strings.Contains(series, label) {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(value), 64)
	}
	return 0, fmt.Errorf("/metrics has no %s{%s}", name, label)
}

// Restart the coordinator while callers mint, gracefully and with kill -9:
// callers get UNAVAILABLE (retryable) and nothing else, no token reaches a
// caller half-made or unrecorded, every audit chain stays valid (the
// killed coordinator's log is repaired when it reopens), a graceful stop
// cuts no mint short, and minting resumes by itself.
func TestFaultCoordinatorRestart(t *testing.T) {
	f := prepareFaultCluster(t)
	f.startAll()
	l := f.startLoad(4)
	time.Sleep(time.Second)
	type restart struct {
		name             string
		graceful         bool
		down, up, resume time.Time
	}
	var restarts []restart
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGTERM (graceful)", syscall.SIGTERM},
		{"SIGKILL", syscall.SIGKILL},
	} {
		r := restart{name: tc.name, graceful: tc.sig == syscall.SIGTERM, down: time.Now()}
		f.end("coordinator", tc.sig)
		f.startCoordinator()
		r.up = time.Now()
		r.resume = l.waitFor(t, 30*time.Second, "minting after the restart", func(m mintResult) bool {
			return m.err == nil && m.start.After(r.up)
		}).end
		restarts = append(restarts, r)
		time.Sleep(time.Second)
	}
	rs := l.finish()

	errs := failures(rs)
	for _, r := range errs {
		if status.Code(r.err) != codes.Unavailable {
			t.Errorf("a caller got %v; want UNAVAILABLE (retryable)", r.err)
		}
	}
	if len(errs) == 0 {
		t.Error("no caller noticed the coordinator going away")
	}
	n := f.verifyTokens(rs)
	d := f.checkAudit(rs)
	// When each token a mint cut short was signed, by the signers' logs.
	cutAt := map[string]time.Time{}
	for id, jtis := range d.UnknownToCoordinator {
		recs, err := audit.ReadAll(f.info.Signers[id-1].AuditLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Decision == audit.Allow && slices.Contains(jtis, r.JTI) {
				cutAt[r.JTI] = r.Time
			}
		}
	}
	t.Logf("%d tokens, %d UNAVAILABLE, %d tokens signed but never recorded nor returned (mints cut short); 4 callers on loopback",
		n, len(errs), len(cutAt))
	var ok []mintResult
	for _, r := range rs {
		if r.err == nil {
			ok = append(ok, r)
		}
	}
	for _, r := range restarts {
		during, cut := 0, 0
		for _, m := range errs {
			if m.start.After(r.down.Add(-time.Second)) && m.start.Before(r.resume) {
				during++
			}
		}
		for _, at := range cutAt {
			if at.After(r.down.Add(-time.Second)) && at.Before(r.resume) {
				cut++
			}
		}
		if r.graceful && cut > 0 {
			t.Errorf("%s: %d mints cut short; a graceful stop lets the mints in flight finish", r.name, cut)
		}
		t.Logf("%s: new coordinator serving %s after the signal, a caller minting again %s after (gRPC's reconnect backoff); "+
			"%d errors, %d mints cut short; tokens minted around it %s", r.name, r.up.Sub(r.down).Round(time.Millisecond),
			r.resume.Sub(r.down).Round(time.Millisecond), during, cut, window(ok, r.down.Add(-time.Second), r.resume.Add(time.Second)))
	}
}
