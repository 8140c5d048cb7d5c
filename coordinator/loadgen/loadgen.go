// Package loadgen is frostmint's load generator: it starts a t-of-n
// cluster on loopback (real DKG, sealed shares, mutual TLS 1.3, default
// daemon settings), or targets a running dev cluster, drives N concurrent
// callers for a while, and reports throughput, latency percentiles,
// errors, and each daemon's resident memory at idle and under load. In the
// same run it measures a baseline: a single-key Ed25519 mint service
// behind the same gRPC stack (see [Baseline]), so that figures come with
// their ratio to what one key on one machine costs.
//
// Daemons run as real processes (the frostmint binary: Options.Exe), so
// that each has its own CPU scheduling, FROST lock and resident set, as in
// production; or, without Exe, inside this process (for tests and
// profiling). `frostmint bench` is the command line; `make bench` runs it.
//
// The bench cluster differs from a production one in two settings only:
// the rate limiters are set far above what one machine can mint (they
// still run on every mint), and the caller's certificate has an Ed25519
// key by default. Audit is as durable as ever; Options.AuditDir puts the
// logs on another file system (a tmpfs, to tell the protocol's own cost
// from the disk's).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Caller key types.
const (
	CallerEd25519 = "ed25519"
	CallerP256    = "p256"
)

// Options describe a bench cluster.
type Options struct {
	// Signers and Threshold: a Threshold-of-Signers cluster.
	Signers, Threshold int
	// Dir holds the cluster: certificates, keys, configs, logs
	// (required; it may exist).
	Dir string
	// AuditDir is where the daemons' audit logs go (default Dir/audit).
	AuditDir string
	// Exe is a binary that runs `coordinator --config FILE`, `signer
	// --config FILE` and `bench --serve-baseline FILE` (frostmint does):
	// each daemon is then its own process. Empty runs them in this
	// process.
	Exe string
	// Env is added to the daemons' environment (processes only).
	Env []string
	// CallerKey is the caller certificate's key: CallerEd25519 (default)
	// or CallerP256 (what `frostmint dev up` issues).
	CallerKey string
	// PoolSize is the coordinator's pool_size (0: the default).
	PoolSize int
	// Baseline also starts the baseline service.
	Baseline bool
	// Log receives in-process daemons' logs (nil: discarded). Processes
	// log to Dir/logs.
	Log io.Writer
}

func (o *Options) fill() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("a directory is required"))
	}
	if o.Signers < 1 || o.Signers > 16 {
		errs = append(errs, errors.New("signers must be 1..16"))
	}
	if o.Threshold < 1 || o.Threshold > o.Signers {
		errs = append(errs, errors.New("threshold must be 1..signers"))
	}
	switch o.CallerKey {
	case "":
		o.CallerKey = CallerEd25519
	case CallerEd25519, CallerP256:
	default:
		errs = append(errs, fmt.Errorf("caller key %q: want %s or %s", o.CallerKey, CallerEd25519, CallerP256))
	}
	if o.PoolSize < 0 {
		errs = append(errs, errors.New("pool size must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if o.AuditDir == "" {
		o.AuditDir = filepath.Join(o.Dir, "audit")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Cluster is a running (or targeted) cluster.
type Cluster struct {
	// Addr is the coordinator's Mint API address.
	Addr string
	// BaselineAddr is the baseline service's address ("" without one).
	BaselineAddr string
	// Caller is the caller's certificate, key and CA.
	Caller mtls.Files
	// Daemons are the cluster's daemons (and the baseline), in start
	// order. Those with a PID can be measured; a targeted cluster's are
	// not stopped by Close.
	Daemons []*Daemon

	owned bool // Close stops the processes
	// ctx runs the in-process daemons until cancel; made on first use.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // in-process daemons
}

// inProcess returns the context in-process daemons run in.
func (c *Cluster) inProcess() context.Context {
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
	}
	return c.ctx
}

// Start prepares a cluster in o.Dir and starts it, and the baseline if
// asked; it returns once the coordinator has a commitment from every
// signer. On error it stops whatever it started.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	l, err := prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	defer l.closeListeners()
	c := &Cluster{Addr: l.coordinator.Listen, Caller: l.caller, owned: true}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if o.Exe != "" {
		err = c.startProcesses(ctx, o, l)
	} else {
		err = c.startInProcess(o, l)
	}
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, filepath.Join(o.Dir, "logs"))
	}
	if o.Baseline {
		if err := c.startBaseline(ctx, o, l.coordinator.TLS); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) startProcesses(ctx context.Context, o Options, l *layout) error {
	logs := filepath.Join(o.Dir, "logs")
	for i, sc := range l.signers {
		name := fmt.Sprintf("signer-%d", sc.ID)
		l.lis[i+1].Close()
		l.lis[i+1] = nil
		d, err := startProcess(name, o.Exe, filepath.Join(logs, name+".log"), o.Env, "signer", "--config", l.signerFiles[i])
		if err != nil {
			return err
		}
		c.Daemons = append(c.Daemons, d)
	}
	for i, sc := range l.signers {
		if err := waitListening(ctx, c.Daemons[i], sc.Listen, 60*time.Second); err != nil {
			return err
		}
	}
	l.lis[0].Close()
	l.lis[0] = nil
	d, err := startProcess("coordinator", o.Exe, filepath.Join(logs, "coordinator.log"), o.Env, "coordinator", "--config", l.coordFile)
	if err != nil {
		return err
	}
	c.Daemons = append(c.Daemons, d)
	return waitListening(ctx, d, l.coordinator.Listen, 30*time.Second)
}

func (c *Cluster) startInProcess(o Options, l *layout) error {
	ctx := c.inProcess()
	log := slog.New(slog.NewTextHandler(o.Log, nil))
	for i, sc := range l.signers {
		s, err := signer.New(sc, log.With("signer", sc.ID))
		if err != nil {
			return err
		}
		lis := l.lis[i+1]
		l.lis[i+1] = nil
		c.wg.Go(func() {
			if err := s.Serve(ctx, lis); err != nil {
				log.Error("signer stopped", "signer", sc.ID, "err", err)
			}
		})
		c.Daemons = append(c.Daemons, &Daemon{Name: fmt.Sprintf("signer-%d", sc.ID)})
	}
	co, err := coordinator.New(ctx, l.coordinator, log.With("daemon", "coordinator"))
	if err != nil {
		return err
	}
	lis := l.lis[0]
	l.lis[0] = nil
	c.wg.Go(func() {
		if err := co.Serve(ctx, lis, nil); err != nil {
			log.Error("coordinator stopped", "err", err)
		}
	})
	c.Daemons = append(c.Daemons, &Daemon{Name: "coordinator"})
	return nil
}

// startBaseline starts the baseline service with the coordinator's TLS
// files, as a process when the daemons are.
func (c *Cluster) startBaseline(ctx context.Context, o Options, tls mtls.Files) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	cfg := BaselineConfig{Listen: lis.Addr().String(), TLS: tls, Issuer: Issuer}
	c.BaselineAddr = cfg.Listen
	if o.Exe == "" {
		b, err := NewBaseline(cfg, nil)
		if err != nil {
			lis.Close()
			return err
		}
		bctx := c.inProcess()
		c.wg.Go(func() { _ = b.Serve(bctx, lis) })
		c.Daemons = append(c.Daemons, &Daemon{Name: "baseline"})
		return nil
	}
	lis.Close()
	file := filepath.Join(o.Dir, "baseline.json")
	if err := writeJSON(file, cfg); err != nil {
		return err
	}
	d, err := startProcess("baseline", o.Exe, filepath.Join(o.Dir, "logs", "baseline.log"), o.Env, "bench", "--serve-baseline", file)
	if err != nil {
		return err
	}
	c.Daemons = append(c.Daemons, d)
	return waitListening(ctx, d, cfg.Listen, 30*time.Second)
}

// Target returns the dev cluster that cluster.json at path describes (see
// `frostmint dev up`), to drive as it is: its limits apply, its daemons
// are measured by their pids and left running by Close. With baseline,
// the baseline service is started (as a process of exe, or in this process
// when exe is empty) with the coordinator's TLS files.
func Target(ctx context.Context, path, exe string, baseline bool) (*Cluster, error) {
	cl, err := devcluster.ReadCluster(path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	c := &Cluster{Addr: cl.Coordinator, Caller: cl.Caller}
	c.Daemons = append(c.Daemons, &Daemon{Name: "coordinator", PID: cl.CoordPID})
	for _, s := range cl.Signers {
		c.Daemons = append(c.Daemons, &Daemon{Name: fmt.Sprintf("signer-%d", s.ID), PID: s.PID})
	}
	if err := c.waitReady(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	if baseline {
		cc, err := coordinator.LoadConfig(filepath.Join(cl.Dir, "coordinator.json"))
		if err != nil {
			return nil, fmt.Errorf("loadgen: the baseline needs the coordinator's TLS files: %w", err)
		}
		dir, err := os.MkdirTemp("", "frostmint-bench-baseline-")
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		if err := c.startBaseline(ctx, Options{Dir: dir, Exe: exe}, cc.TLS); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// waitListening waits until addr accepts connections, failing early if
// the daemon's process exits.
func waitListening(ctx context.Context, d *Daemon, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if !d.running() {
			return fmt.Errorf("loadgen: %s exited at start", d.Name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loadgen: %s is not listening on %s after %s: %w", d.Name, addr, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitReady waits until the coordinator has the key and a commitment from
// every signer.
func (c *Cluster) waitReady(ctx context.Context, limit time.Duration) error {
	cl, err := client.Dial(c.Addr, c.Caller)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	defer cl.Close()
	deadline := time.Now().Add(limit)
	var last string
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cl.Status(sctx)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case st.GetKeyId() == "":
			last = "no key"
		default:
			var waiting []string
			for _, s := range st.GetSigners() {
				if !s.GetHealthy() || s.GetPooledCommitments() == 0 {
					waiting = append(waiting, fmt.Sprint(s.GetId()))
				}
			}
			if len(waiting) == 0 {
				return nil
			}
			last = "waiting for signers " + strings.Join(waiting, ", ")
		}
		for _, d := range c.Daemons {
			if !d.running() {
				return fmt.Errorf("loadgen: %s exited", d.Name)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loadgen: cluster not ready after %s: %s", limit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops what Start started: processes in reverse start order
// (SIGTERM, then SIGKILL after 5 s), in-process daemons by cancelling
// them.
func (c *Cluster) Close() {
	for i := len(c.Daemons) - 1; i >= 0; i-- {
		if d := c.Daemons[i]; c.owned || d.Name == "baseline" {
			d.stop(5 * time.Second)
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
}

// DaemonMemory is one daemon's resident memory.
type DaemonMemory struct {
	Name string
	Memory
}

// Memory reads the resident memory of each daemon that runs as its own
// process; with daemons in this process, it reads this process's (which
// holds the callers too) as "bench process".
func (c *Cluster) Memory() ([]DaemonMemory, error) {
	var out []DaemonMemory
	self := false
	for _, d := range c.Daemons {
		if d.PID == 0 {
			self = true
			continue
		}
		m, err := ReadMemory(d.PID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		out = append(out, DaemonMemory{Name: d.Name, Memory: m})
	}
	if self {
		m, err := ReadMemory(0)
		if err != nil {
			return nil, err
		}
		out = append(out, DaemonMemory{Name: "bench process", Memory: m})
	}
	return out, nil
}

// DaemonCPU is the CPU time a daemon has used so far.
type DaemonCPU struct {
	Name string
	CPU  time.Duration
}

// CPU reads the CPU time used so far by each daemon that runs as its own
// process, then by this process, as "bench process": the callers, and the
// daemons that run in it.
func (c *Cluster) CPU() ([]DaemonCPU, error) {
	var out []DaemonCPU
	for _, d := range c.Daemons {
		if d.PID == 0 {
			continue
		}
		t, err := ReadCPU(d.PID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		out = append(out, DaemonCPU{Name: d.Name, CPU: t})
	}
	t, err := ReadCPU(0)
	if err != nil {
		return nil, err
	}
	return append(out, DaemonCPU{Name: "bench process", CPU: t}), nil
}
