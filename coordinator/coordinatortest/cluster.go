// Package coordinatortest starts a real cluster inside a test process: a
// fresh CA, t-of-n signers with shares from a real DKG, sealed and
// unsealed through the keystore, each serving gRPC over mutual TLS 1.3 on
// loopback, and a coordinator in front of them. Tests can wrap a signer to
// make it misbehave (slow, wrong shares) and stop or restart signers.
package coordinatortest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/devkeygen"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Identities used by test clusters: those of the dev cluster, so the
// default policy admits the caller.
const (
	CoordinatorID = devcluster.CoordinatorID
	CallerID      = devcluster.CallerID
)

// Options shape a test cluster.
type Options struct {
	N, T int
	// Wrap, if set, may replace signer id's gRPC service (to misbehave).
	Wrap func(id uint16, s *signer.Server) signv1.SignerServiceServer
	// Config, if set, adjusts the coordinator config before start.
	Config func(*coordinator.Config)
	// CoordinatorOptions are passed to coordinator.New.
	CoordinatorOptions []coordinator.Option
	// SignerOptions are passed to every signer.New.
	SignerOptions []signer.Option
	// SignerOptionsFor, if set, gives signer id's options besides
	// SignerOptions (for example its attestation provider).
	SignerOptionsFor func(id uint16) []signer.Option
	// SignerConfig, if set, adjusts every signer's config before start.
	SignerConfig func(*signer.Config)
	// Log receives every daemon's log (default: discarded).
	Log io.Writer
	// Logger, if set, is every daemon's logger instead of a text logger
	// writing to Log.
	Logger *slog.Logger
	// OIDC issuers trusted besides the test CA's certificates.
	OIDC []evidence.OIDCIssuer
	// Guardians are the signers that run as guardians: they dial in to the
	// coordinator, and ask the given Approver when a token needs approval.
	// Every signer accepts their approvals.
	Guardians map[uint16]signer.Approver
	// NoKeys starts the cluster without a key: no DKG, for tests of the
	// key ceremony (which CallerID may run).
	NoKeys bool
}

// Cluster is a running test cluster.
type Cluster struct {
	Dir         string
	Issuer      string
	Coordinator *coordinator.Server
	CoordAddr   string
	Caller      mtls.Files
	CA          *mtls.DevCA
	Signers     map[uint16]*Signer

	opts Options
	log  *slog.Logger
}

// Signer is one running signer.
type Signer struct {
	ID     uint16
	Addr   string
	Config signer.Config
	Server *signer.Server

	cancel context.CancelFunc
	done   chan struct{}
	// lis is the listener reserved for the first start: held open from
	// the moment the port is chosen, so that no other process on the
	// machine (parallel test packages) can take it meanwhile.
	lis net.Listener
}

func leaf(id string) mtls.Leaf {
	return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour}
}

// Start starts a cluster and stops it when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Log == nil {
		o.Log = io.Discard
	}
	dir := t.TempDir()
	c := &Cluster{Dir: dir, Signers: map[uint16]*Signer{}, opts: o, log: o.Logger}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(o.Log, nil))
	}
	ca, err := mtls.NewDevCA("test CA", time.Hour)
	must(t, err)
	c.CA = ca
	coordFiles, err := ca.Issue(dir, "coordinator", leaf(CoordinatorID))
	must(t, err)
	c.Caller, err = ca.Issue(dir, "caller", leaf(CallerID))
	must(t, err)
	callers := signer.Callers{TrustBundle: c.Caller.CA, OIDC: o.OIDC}

	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	c.Issuer = "http://" + httpLis.Addr().String()
	c.CoordAddr = grpcLis.Addr().String()

	// Distributed key generation among n participants, for real.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, o.N)
	for i := 1; i <= o.N; i++ {
		id := uint16(i)
		sc := signer.Default()
		sc.ID = id
		sc.Coordinators = []string{CoordinatorID}
		sc.Issuer = c.Issuer
		sc.KeysDir = filepath.Join(dir, fmt.Sprintf("keys-%d", id))
		pass := filepath.Join(dir, fmt.Sprintf("pass-%d", id))
		must(t, os.WriteFile(pass, []byte(fmt.Sprintf("test-passphrase-%d", id)), 0o600))
		sc.Keystore = "file:?passphrase=file:" + pass
		sc.Dev = true
		for gid := range o.Guardians {
			sc.Approvers = append(sc.Approvers, SignerIdentity(gid))
		}
		if _, ok := o.Guardians[id]; ok {
			sc.Guardian = &signer.GuardianConfig{Coordinator: c.CoordAddr, ReconnectMax: signer.Duration(time.Second)}
		}
		sc.Callers = callers
		sc.AuditLog = filepath.Join(dir, fmt.Sprintf("audit-signer-%d.ndjson", id))
		if o.SignerConfig != nil {
			o.SignerConfig(&sc)
		}
		sc.TLS, err = ca.Issue(dir, fmt.Sprintf("signer-%d", id), leaf(SignerIdentity(id)))
		must(t, err)
		if sc.Guardian != nil {
			c.Signers[id] = &Signer{ID: id, Config: sc}
		} else {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			sc.Listen = lis.Addr().String()
			t.Cleanup(func() { lis.Close() }) // if the cluster never started it
			c.Signers[id] = &Signer{ID: id, Addr: sc.Listen, Config: sc, lis: lis}
		}
		if o.NoKeys {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[id-1] = keygen(ctx, filepath.Join(dir, "dkg"), sc, o.T, o.N)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	for id := range c.Signers {
		c.StartSigner(t, id)
	}

	cc := coordinator.Default()
	cc.Listen = c.CoordAddr
	cc.Issuer = c.Issuer
	cc.TLS = coordFiles
	cc.KeysDir = filepath.Join(dir, "keys-coordinator")
	if o.NoKeys {
		cc.CeremonyAdmins = []string{CallerID}
	} else {
		g, err := keydir.ReadGroup(c.Signers[1].Config.KeysDir, onlyKid(t, c.Signers[1].Config.KeysDir))
		must(t, err)
		_, err = keydir.Write(cc.KeysDir, keydir.Epoch{Public: g.Public()})
		must(t, err)
	}
	cc.SignTimeout = coordinator.Duration(time.Second)
	cc.Callers = callers
	cc.AuditLog = filepath.Join(dir, "audit-coordinator.ndjson")
	for i := 1; i <= o.N; i++ {
		_, guardian := o.Guardians[uint16(i)]
		cc.Signers = append(cc.Signers, coordinator.Endpoint{ID: uint16(i), Addr: c.Signers[uint16(i)].Addr,
			Identity: SignerIdentity(uint16(i)), Guardian: guardian})
	}
	if o.Config != nil {
		o.Config(&cc)
	}
	co, err := coordinator.New(context.Background(), cc, c.log, o.CoordinatorOptions...)
	must(t, err)
	c.Coordinator = co
	cctx, ccancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := co.Serve(cctx, grpcLis, httpLis); err != nil {
			t.Errorf("coordinator: %v", err)
		}
	}()
	t.Cleanup(func() {
		ccancel()
		<-done
		for id := range c.Signers {
			c.StopSigner(id)
		}
	})
	return c
}

// SignerIdentity is the SPIFFE ID of test signer id.
func SignerIdentity(id uint16) string { return devcluster.SignerID(id) }

func keygen(ctx context.Context, dir string, sc signer.Config, t, n int) error {
	ks, err := devkeygen.Run(ctx, dir, sc.ID, uint16(t), uint16(n))
	if err != nil {
		return err
	}
	defer keystore.Wipe(ks.Secret)
	sealer, err := keystore.Open(sc.Keystore, keystore.Options{Dev: true})
	if err != nil {
		return err
	}
	defer sealer.Close()
	_, err = keydir.WriteShare(sc.KeysDir, sc.ID, sealer, ks.Secret, ks.Public, nil)
	return err
}

// onlyKid returns the kid of the one epoch in dir.
func onlyKid(t testing.TB, dir string) string {
	t.Helper()
	kids, err := keydir.List(dir, true)
	must(t, err)
	if len(kids) != 1 {
		t.Fatalf("coordinatortest: %s holds %d key epochs", dir, len(kids))
	}
	return kids[0]
}

// StartSigner starts (or restarts) signer id: a new process as far as the
// protocol goes — a new boot id, no nonces.
func (c *Cluster) StartSigner(t testing.TB, id uint16) {
	t.Helper()
	s := c.Signers[id]
	opts := c.opts.SignerOptions
	if c.opts.SignerOptionsFor != nil {
		opts = append(slices.Clip(opts), c.opts.SignerOptionsFor(id)...)
	}
	if a, ok := c.opts.Guardians[id]; ok {
		opts = append(slices.Clip(opts), signer.WithApprover(a))
	}
	srv, err := signer.New(s.Config, c.log.With("signer", id), opts...)
	must(t, err)
	if s.Config.Guardian != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.Server, s.cancel, s.done = srv, cancel, make(chan struct{})
		go func() {
			defer close(s.done)
			defer srv.Close()
			if err := srv.RunGuardian(ctx); err != nil {
				c.log.Error("guardian", "id", id, "err", err)
			}
		}()
		return
	}
	gs, err := srv.GRPCServer()
	must(t, err)
	var svc signv1.SignerServiceServer = srv
	if c.opts.Wrap != nil {
		svc = c.opts.Wrap(id, srv)
	}
	signv1.RegisterSignerServiceServer(gs, svc)
	ceremonyv1.RegisterCeremonyParticipantServiceServer(gs, srv.CeremonyParticipant())
	lis := s.lis
	s.lis = nil
	for i := 0; lis == nil && i < 50; i++ { // the port may linger briefly after a stop
		if lis, err = net.Listen("tcp", s.Addr); err != nil {
			lis = nil
			time.Sleep(20 * time.Millisecond)
		}
	}
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s.Server, s.cancel, s.done = srv, cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		go gs.Serve(lis)
		<-ctx.Done()
		gs.Stop()
		srv.Close()
	}()
}

// StopSigner stops signer id at once, as a crash would.
func (c *Cluster) StopSigner(id uint16) {
	s := c.Signers[id]
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// Client returns a Mint API client authenticated as the test caller.
func (c *Cluster) Client(t testing.TB) *client.Client {
	t.Helper()
	cl, err := client.Dial(c.CoordAddr, c.Caller)
	must(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
