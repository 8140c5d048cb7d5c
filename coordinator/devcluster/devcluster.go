// Package devcluster runs a complete frostmint cluster on one machine for
// development and demos: a fresh CA, t-of-n signer processes that make their
// key shares by distributed key generation (no trusted dealer), and a
// coordinator, all on loopback with mutual TLS, each its own OS process.
//
// Everything lives under one directory, described by cluster.json for the
// other commands (mint, verify, tests). Dev mode trades some protections
// for convenience and says so: the passphrases that seal the shares are
// random files in DIR/secrets (mode 0600), and the DKG's round-1 messages
// are authenticated only by the directory's permissions.
package devcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/devkeygen"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// TrustDomain is the SPIFFE trust domain of the dev cluster.
const TrustDomain = "dev.frostmint.local"

// Identities of the dev cluster.
const (
	CoordinatorID = "spiffe://" + TrustDomain + "/coordinator"
	CallerID      = "spiffe://" + TrustDomain + "/dev/cli"
)

// SignerID is the identity of dev signer n.
func SignerID(n uint16) string { return fmt.Sprintf("spiffe://%s/signer/%d", TrustDomain, n) }

// Cluster is cluster.json: how to reach a running dev cluster.
type Cluster struct {
	Dir         string       `json:"dir"`
	Issuer      string       `json:"issuer"`
	JWKSURL     string       `json:"jwks_url"`
	Coordinator string       `json:"coordinator"`
	CoordPID    int          `json:"coordinator_pid"`
	Threshold   int          `json:"threshold"`
	Signers     []SignerInfo `json:"signers"`
	CA          string       `json:"ca"`
	Caller      mtls.Files   `json:"caller"`
	AuditLogs   []string     `json:"audit_logs"`
}

// SignerInfo is one signer of a dev cluster.
type SignerInfo struct {
	ID       uint16 `json:"id"`
	Addr     string `json:"addr"`
	PID      int    `json:"pid"`
	AuditLog string `json:"audit_log"`
}

// ReadCluster reads cluster.json.
func ReadCluster(path string) (*Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Cluster
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Options configure Up.
type Options struct {
	Dir       string
	Signers   int
	Threshold int
	// Exe is the frostmint binary to start the daemons with (default: this
	// executable).
	Exe string
	Log *slog.Logger
	// Ready, if set, is called once cluster.json is written.
	Ready func(*Cluster)
	// OIDC issuers to trust besides the dev CA's certificates; used when
	// the directory is prepared (first run) only.
	OIDC []evidence.OIDCIssuer
}

func (o *Options) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("--dir is required"))
	}
	if o.Signers < 1 || o.Signers > 16 {
		errs = append(errs, errors.New("--signers must be 1..16"))
	}
	if o.Threshold < 1 || o.Threshold > o.Signers {
		errs = append(errs, errors.New("--threshold must be 1..signers"))
	}
	return errors.Join(errs...)
}

func (o *Options) path(p ...string) string { return filepath.Join(append([]string{o.Dir}, p...)...) }

// Up prepares the directory (first run only), starts the signers and the
// coordinator as child processes, writes cluster.json and runs until ctx
// is done; then it stops every process it started. A signer that dies is
// not restarted (restart it with `frostmint dev signer`).
func Up(ctx context.Context, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if _, err := os.Stat(o.path("coordinator.json")); errors.Is(err, os.ErrNotExist) {
		if err := setup(&o); err != nil {
			return fmt.Errorf("dev up: preparing %s: %w", o.Dir, err)
		}
	}
	cc, err := coordinator.LoadConfig(o.path("coordinator.json"))
	if err != nil {
		return err
	}
	if len(cc.Signers) != o.Signers {
		return fmt.Errorf("dev up: %s holds a %d-signer cluster; use a new --dir for a different size", o.Dir, len(cc.Signers))
	}
	if _, err := os.Stat(o.path("group.json")); errors.Is(err, os.ErrNotExist) {
		// An earlier key generation did not finish: start it over.
		old, _ := filepath.Glob(o.path("dkg", "r[12]-*.json"))
		for _, f := range old {
			os.Remove(f)
		}
	}
	procs := &children{log: o.Log}
	defer procs.stopAll()

	cl := &Cluster{Dir: o.Dir, Issuer: cc.Issuer, JWKSURL: cc.Issuer + "/.well-known/jwks.json",
		Coordinator: cc.Listen, Threshold: o.Threshold, CA: o.path("ca.crt"),
		Caller:    mtls.Files{Cert: o.path("certs", "caller.crt"), Key: o.path("certs", "caller.key"), CA: o.path("ca.crt")},
		AuditLogs: []string{cc.AuditLog}}
	for _, ep := range cc.Signers {
		pid, err := procs.start(o.Exe, o.path("logs", fmt.Sprintf("signer-%d.log", ep.ID)), "dev", "signer", "--dir", o.Dir, "--id", strconv.Itoa(int(ep.ID)))
		if err != nil {
			return err
		}
		cl.Signers = append(cl.Signers, SignerInfo{ID: ep.ID, Addr: ep.Addr, PID: pid,
			AuditLog: o.path("audit", fmt.Sprintf("signer-%d.ndjson", ep.ID))})
		cl.AuditLogs = append(cl.AuditLogs, o.path("audit", fmt.Sprintf("signer-%d.ndjson", ep.ID)))
	}
	// First run: the signers make the key together, then publish the group.
	if err := waitFor(ctx, 90*time.Second, func() error { return collectGroup(&o, cc) }); err != nil {
		return fmt.Errorf("dev up: key generation: %w (see %s)", err, o.path("logs"))
	}
	os.RemoveAll(o.path("dkg"))
	for _, s := range cl.Signers {
		if err := waitFor(ctx, 30*time.Second, dialCheck(s.Addr)); err != nil {
			return fmt.Errorf("dev up: signer %d did not start: %w (see %s)", s.ID, err, o.path("logs"))
		}
	}
	pid, err := procs.start(o.Exe, o.path("logs", "coordinator.log"), "coordinator", "--config", o.path("coordinator.json"))
	if err != nil {
		return err
	}
	cl.CoordPID = pid
	if err := waitFor(ctx, 30*time.Second, httpCheck("http://"+cc.HTTPListen+"/healthz")); err != nil {
		return fmt.Errorf("dev up: coordinator did not start: %w (see %s)", err, o.path("logs", "coordinator.log"))
	}
	b, _ := json.MarshalIndent(cl, "", "  ")
	if err := writeAtomic(o.path("cluster.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if o.Ready != nil {
		o.Ready(cl)
	}
	<-ctx.Done()
	os.Remove(o.path("cluster.json"))
	return nil
}

// setup makes the CA, certificates, passphrases and daemon configs.
func setup(o *Options) error {
	for _, d := range []string{"", "certs", "secrets", "logs", "dkg", "audit"} {
		if err := os.MkdirAll(o.path(d), 0o700); err != nil {
			return err
		}
	}
	ca, err := mtls.NewDevCA("frostmint dev CA", 30*24*time.Hour)
	if err != nil {
		return err
	}
	leaf := func(id string) mtls.Leaf {
		return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, Lifetime: 30 * 24 * time.Hour}
	}
	coordFiles, err := ca.Issue(o.path("certs"), "coordinator", leaf(CoordinatorID))
	if err != nil {
		return err
	}
	if _, err := ca.Issue(o.path("certs"), "caller", leaf(CallerID)); err != nil {
		return err
	}
	if err := ca.WriteCert(o.path("ca.crt")); err != nil {
		return err
	}
	ports, err := freePorts(o.Signers + 2)
	if err != nil {
		return err
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cc := coordinator.Default()
	cc.Listen = fmt.Sprintf("127.0.0.1:%d", ports[0])
	cc.HTTPListen = fmt.Sprintf("127.0.0.1:%d", ports[1])
	cc.Issuer = issuer
	cc.TLS = coordFiles
	cc.KeysDir = o.path("keys", "coordinator")
	cc.AuditLog = o.path("audit", "coordinator.ndjson")
	callers := signer.Callers{TrustBundle: o.path("ca.crt"), OIDC: o.OIDC}
	cc.Callers = callers
	for i := 1; i <= o.Signers; i++ {
		id := uint16(i)
		files, err := ca.Issue(o.path("certs"), fmt.Sprintf("signer-%d", id), leaf(SignerID(id)))
		if err != nil {
			return err
		}
		pass := make([]byte, 32)
		if _, err := rand.Read(pass); err != nil {
			return err
		}
		passFile := o.path("secrets", fmt.Sprintf("signer-%d.pass", id))
		if err := writeAtomic(passFile, []byte(hex.EncodeToString(pass)), 0o600); err != nil {
			return err
		}
		if err := os.MkdirAll(o.path(fmt.Sprintf("signer-%d", id)), 0o700); err != nil {
			return err
		}
		sc := signer.Default()
		sc.ID = id
		sc.Listen = fmt.Sprintf("127.0.0.1:%d", ports[1+i])
		sc.TLS = files
		sc.Coordinators = []string{CoordinatorID}
		sc.Issuer = issuer
		sc.KeysDir = o.path(fmt.Sprintf("signer-%d", id), "keys")
		// Dev only: the share is sealed by a passphrase in a file next to
		// it. Real signers use pkcs11: or piv: keystores.
		sc.Keystore = "file:?passphrase=file:" + passFile
		sc.Dev = true
		sc.Callers = callers
		sc.AuditLog = o.path("audit", fmt.Sprintf("signer-%d.ndjson", id))
		if err := writeJSON(o.path(fmt.Sprintf("signer-%d.json", id)), sc); err != nil {
			return err
		}
		cc.Signers = append(cc.Signers, coordinator.Endpoint{ID: id, Addr: sc.Listen, Identity: SignerID(id)})
	}
	meta := map[string]int{"signers": o.Signers, "threshold": o.Threshold}
	if err := writeJSON(o.path("dkg", "params.json"), meta); err != nil {
		return err
	}
	// Written last: its presence marks a prepared directory.
	return writeJSON(o.path("coordinator.json"), cc)
}

// collectGroup checks that every signer has the same key epoch and
// writes its group for the coordinator.
func collectGroup(o *Options, cc coordinator.Config) error {
	var first *frost.PublicGroup
	var firstKid string
	for _, ep := range cc.Signers {
		dir := o.path(fmt.Sprintf("signer-%d", ep.ID), "keys")
		kids, err := keydir.List(dir, true)
		if err != nil || len(kids) == 0 {
			return fmt.Errorf("signer %d has no key yet", ep.ID)
		}
		if len(kids) != 1 {
			return errFatal{fmt.Errorf("signer %d holds %d keys, want 1", ep.ID, len(kids))}
		}
		g, err := keydir.ReadGroup(dir, kids[0])
		if err != nil {
			return errFatal{err}
		}
		if first == nil {
			pub := g.Public()
			first, firstKid = &pub, kids[0]
		} else if kids[0] != firstKid {
			return errFatal{fmt.Errorf("signer %d disagrees on the group", ep.ID)}
		}
	}
	if _, err := keydir.Write(cc.KeysDir, keydir.Epoch{Public: *first}); err != nil && !errors.Is(err, keydir.ErrExists) {
		return errFatal{err}
	}
	return nil
}

// RunSigner is `frostmint dev signer`: it makes this signer's key share by
// DKG with its peers on first start, then serves until ctx is done.
func RunSigner(ctx context.Context, dir string, id uint16, log *slog.Logger) error {
	cfgPath := filepath.Join(dir, fmt.Sprintf("signer-%d.json", id))
	cfg, err := signer.LoadConfig(cfgPath)
	if err != nil {
		return fmt.Errorf("dev signer: %w (is %s a dev cluster directory?)", err, dir)
	}
	if kids, err := keydir.List(cfg.KeysDir, true); err != nil {
		return err
	} else if len(kids) == 0 {
		if err := keygen(ctx, dir, cfg, log); err != nil {
			return err
		}
	}
	s, err := signer.New(cfg, log)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func keygen(ctx context.Context, dir string, cfg signer.Config, log *slog.Logger) error {
	var params struct{ Signers, Threshold int }
	b, err := os.ReadFile(filepath.Join(dir, "dkg", "params.json"))
	if err != nil {
		return fmt.Errorf("dev signer %d: no share and no key generation under way: %w", cfg.ID, err)
	}
	if err := json.Unmarshal(b, &params); err != nil {
		return err
	}
	log.Info("running distributed key generation", "signer", cfg.ID, "threshold", params.Threshold, "signers", params.Signers)
	kctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ks, err := devkeygen.Run(kctx, filepath.Join(dir, "dkg"), cfg.ID, uint16(params.Threshold), uint16(params.Signers))
	if err != nil {
		return fmt.Errorf("dev signer %d: key generation: %w", cfg.ID, err)
	}
	defer keystore.Wipe(ks.Secret)
	sealer, err := keystore.Open(cfg.Keystore, keystore.Options{Dev: cfg.Dev})
	if err != nil {
		return err
	}
	defer sealer.Close()
	kid, err := keydir.WriteShare(cfg.KeysDir, cfg.ID, sealer, ks.Secret, ks.Public, nil)
	if err != nil {
		return err
	}
	log.Info("key generated", "signer", cfg.ID, "kid", kid)
	return nil
}

type errFatal struct{ error }

func waitFor(ctx context.Context, limit time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		var fatal errFatal
		if errors.As(err, &fatal) {
			return fatal.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dialCheck(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func httpCheck(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// children are the processes Up started.
type children struct {
	log   *slog.Logger
	procs []*exec.Cmd
}

func (c *children) start(exe, logPath string, args ...string) (int, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The children die with us, even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return 0, err
	}
	lf.Close()
	c.procs = append(c.procs, cmd)
	go cmd.Wait() //nolint:errcheck // reaped; exit status is in the log
	if c.log != nil {
		c.log.Info("started", "pid", cmd.Process.Pid, "args", args)
	}
	return cmd.Process.Pid, nil
}

// stopAll sends SIGTERM to every child, in reverse start order, and
// SIGKILL to any still running after 5 s.
func (c *children) stopAll() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		_ = c.procs[i].Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range c.procs {
		for time.Now().Before(deadline) && p.Process.Signal(syscall.Signal(0)) == nil {
			time.Sleep(20 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}
