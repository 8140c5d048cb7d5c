package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// hwCluster is a cluster of real daemons whose shares are sealed by
// hardware keystores, with signer 3 a guardian that dials out.
type hwCluster struct {
	t        *testing.T
	dir      string
	coord    string // gRPC address
	issuer   string
	caller   mtls.Files
	procs    map[string]*exec.Cmd
	signers  map[uint16]signer.Config
	answers  chan string // the guardian engineer's answers, one per prompt
	prompted chan string // each prompt the guardian showed
	closers  []io.Closer
}

// daemon starts `frostmint args...` with its log in dir/logs/name.log.
// The guardian gets pipes (real files, so that no copying goroutine can
// hold Wait up): its engineer's questions are watched on stderr and
// answered on stdin, as a person at the terminal would.
func (h *hwCluster) daemon(name string, args ...string) {
	h.t.Helper()
	logf, err := os.Create(filepath.Join(h.dir, "logs", name+".log"))
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	var stdinW, stderrR, stdinR, stderrW *os.File
	if name == "guardian-3" {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			h.t.Fatal(err)
		}
		if stderrR, stderrW, err = os.Pipe(); err != nil {
			h.t.Fatal(err)
		}
		cmd.Stdin, cmd.Stderr = stdinR, stderrW
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	logf.Close()
	if stdinW != nil {
		stdinR.Close()
		stderrW.Close()
		go func() {
			defer stderrR.Close()
			lf, _ := os.OpenFile(filepath.Join(h.dir, "logs", name+".log"), os.O_WRONLY|os.O_APPEND, 0)
			defer lf.Close()
			// The question ends without a newline: watch the bytes.
			var ask []byte
			buf := make([]byte, 4096)
			for {
				n, err := stderrR.Read(buf)
				lf.Write(buf[:n])
				ask = append(ask, buf[:n]...)
				if i := bytes.Index(ask, []byte("Approve? [y/N]")); i >= 0 {
					h.prompted <- string(ask)
					ask = nil
					// Answer only once asked: the guardian drops what was
					// typed before its question.
					io.WriteString(stdinW, <-h.answers+"\n")
				}
				if err != nil {
					return
				}
			}
		}()
		h.closers = append(h.closers, stdinW)
	}
	h.procs[name] = cmd
	h.t.Cleanup(func() { h.stop(name) })
}

// stop ends daemon name with SIGTERM (SIGKILL after 10 s).
func (h *hwCluster) stop(name string) {
	cmd, ok := h.procs[name]
	if !ok {
		return
	}
	delete(h.procs, name)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

// startHWCluster writes the configs and starts the coordinator, signers 1
// and 2 and guardian 3, with no key yet. keystores[id] is each signer's
// keystore URI.
func startHWCluster(t *testing.T, keystores map[uint16]string) *hwCluster {
	dir := t.TempDir()
	h := &hwCluster{t: t, dir: dir, procs: map[string]*exec.Cmd{}, signers: map[uint16]signer.Config{},
		answers: make(chan string, 8), prompted: make(chan string, 8)}
	for _, d := range []string{"certs", "logs", "audit"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := mtls.NewDevCA("hw test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(id string) mtls.Leaf {
		return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour}
	}
	issue := func(name, id string) mtls.Files {
		f, err := ca.Issue(filepath.Join(dir, "certs"), name, leaf(id))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	coordFiles := issue("coordinator", devcluster.CoordinatorID)
	h.caller = issue("caller", devcluster.CallerID)
	h.coord = freeAddr(t)
	httpAddr := freeAddr(t)
	h.issuer = "http://" + httpAddr
	callers := signer.Callers{TrustBundle: coordFiles.CA}

	cc := coordinator.Default()
	cc.Listen, cc.HTTPListen, cc.Issuer, cc.TLS = h.coord, httpAddr, h.issuer, coordFiles
	cc.KeysDir = filepath.Join(dir, "coordinator-keys")
	cc.Callers = callers
	cc.AuditLog = filepath.Join(dir, "audit", "coordinator.ndjson")
	cc.CeremonyAdmins = []string{devcluster.CallerID}
	cc.ApprovalTimeout = coordinator.Duration(20 * time.Second)
	for id := uint16(1); id <= 3; id++ {
		sc := signer.Default()
		sc.ID = id
		sc.TLS = issue(fmt.Sprintf("signer-%d", id), devcluster.SignerID(id))
		sc.Coordinators = []string{devcluster.CoordinatorID}
		sc.Issuer = h.issuer
		sc.KeysDir = filepath.Join(dir, fmt.Sprintf("signer-%d-keys", id))
		sc.Keystore = keystores[id]
		sc.Callers = callers
		sc.AuditLog = filepath.Join(dir, "audit", fmt.Sprintf("signer-%d.ndjson", id))
		sc.Approvers = []string{devcluster.SignerID(3)}
		ep := coordinator.Endpoint{ID: id, Identity: devcluster.SignerID(id)}
		if id == 3 {
			sc.Guardian = &signer.GuardianConfig{Coordinator: h.coord, Prompt: "stdin",
				ApprovalTimeout: signer.Duration(15 * time.Second), ReconnectMax: signer.Duration(time.Second)}
			ep.Guardian = true
		} else {
			sc.Listen = freeAddr(t)
			ep.Addr = sc.Listen
		}
		cc.Signers = append(cc.Signers, ep)
		h.signers[id] = sc
		writeJSONFile(t, filepath.Join(dir, fmt.Sprintf("signer-%d.json", id)), sc)
	}
	writeJSONFile(t, filepath.Join(dir, "coordinator.json"), cc)

	h.daemon("coordinator", "coordinator", "--config", filepath.Join(dir, "coordinator.json"))
	h.daemon("signer-1", "signer", "--config", filepath.Join(dir, "signer-1.json"))
	h.daemon("signer-2", "signer", "--config", filepath.Join(dir, "signer-2.json"))
	h.daemon("guardian-3", "guardian", "run", "--config", filepath.Join(dir, "signer-3.json"))
	t.Cleanup(func() {
		for _, c := range h.closers {
			c.Close()
		}
	})
	return h
}

// ceremony runs `frostmint ceremony`, retrying while the daemons come up,
// and returns the kid.
func (h *hwCluster) ceremony() string {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, errOut, code := cli(h.t, "", "ceremony", "--coordinator", h.coord, "--tls-cert", h.caller.Cert,
			"--tls-key", h.caller.Key, "--ca", h.caller.CA, "--threshold", "2")
		if code == 0 {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			h.dumpLogs()
			h.t.Fatalf("ceremony exited %d: %s", code, errOut)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (h *hwCluster) mint(scope string) (string, string, int) {
	h.t.Helper()
	out, errOut, code := cli(h.t, "", "mint", "--coordinator", h.coord, "--cert", h.caller.Cert, "--key", h.caller.Key,
		"--ca", h.caller.CA, "--audience", "https://api.example.com", "--scope", scope, "--timeout", "60s")
	return strings.TrimSpace(out), errOut, code
}

func (h *hwCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(h.dir, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		h.t.Logf("---- %s\n%s", l, b)
	}
}

// TestHardwareKeystoresAndGuardian: a 2-of-3 cluster of real daemons —
// signer 1's share sealed in a SoftHSM2 token, signer 2's behind an
// emulated PIV card (or a second token where the emulator is missing),
// signer 3 a guardian dialling out — makes its key in a networked key
// ceremony, mints, asks the guardian's engineer for deploy:prod, and keeps
// minting other scopes when the engineer says no. No file the cluster
// wrote holds a share in plain text.
func TestHardwareKeystoresAndGuardian(t *testing.T) {
	keystores := hardwareKeystores(t)
	h := startHWCluster(t, keystores)
	kid := h.ceremony()
	if len(kid) != 43 {
		t.Fatalf("ceremony printed %q, want a kid", kid)
	}

	// The guardian dialled in and holds a share: with signer 1 stopped,
	// every quorum needs it.
	tok, errOut, code := h.mint("read")
	if code != 0 {
		h.dumpLogs()
		t.Fatalf("mint: %s", errOut)
	}
	out, errOut, code := cli(t, tok, "verify", "--jwks", h.issuer+"/.well-known/jwks.json", "--issuer", h.issuer,
		"--audience", "https://api.example.com", "--scope", "read")
	if code != 0 || !strings.Contains(out, kid) && !strings.Contains(out, devcluster.CallerID) {
		t.Fatalf("verify: %s %s", out, errOut)
	}
	h.stop("signer-1")
	if _, errOut, code := h.mint("read"); code != 0 {
		h.dumpLogs()
		t.Fatalf("mint with the guardian in the quorum: %s", errOut)
	}

	// deploy:prod needs the engineer: yes, then no.
	h.answers <- "y"
	if _, errOut, code := h.mint("deploy:prod"); code != 0 {
		h.dumpLogs()
		t.Fatalf("approved mint: %s", errOut)
	}
	if p := <-h.prompted; !strings.Contains(p, devcluster.CallerID) || !strings.Contains(p, "deploy:prod") {
		t.Fatalf("the engineer was asked %q", p)
	}
	h.answers <- "n"
	_, errOut, code = h.mint("deploy:prod")
	if code != 1 || !strings.Contains(errOut, "approval declined") {
		t.Fatalf("declined approval: exit %d: %s", code, errOut)
	}
	<-h.prompted
	if _, errOut, code := h.mint("read write"); code != 0 {
		t.Fatalf("other scopes after a decline: %s", errOut)
	}

	// Every daemon stops; then every share, unsealed here through its own
	// device, appears in no file of the cluster.
	for name := range h.procs {
		h.stop(name)
	}
	var secrets [][]byte
	for id, sc := range h.signers {
		b, err := keystore.Open(sc.Keystore, keystore.Options{})
		if err != nil {
			t.Fatalf("signer %d keystore: %v", id, err)
		}
		sealed, err := keydir.ReadSealed(sc.KeysDir, kid)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := b.Unseal(sealed, keydir.Label(id, kid))
		b.Close()
		if err != nil {
			t.Fatalf("signer %d: %v", id, err)
		}
		secrets = append(secrets, secret)
	}
	keystoretest.NoPlaintext(t, h.dir, 15, secrets...)
	// The transcript every participant signed verifies.
	if out, errOut, code := cli(t, "", "ceremony", "verify", "--ca", h.caller.CA, filepath.Join(h.dir, "signer-1-keys", kid)); code != 0 {
		t.Fatalf("ceremony verify: %s %s", out, errOut)
	}
}
