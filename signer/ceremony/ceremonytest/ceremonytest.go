// Package ceremonytest runs key ceremony participants inside a test
// process the way signer daemons serve them: a fresh CA, one certificate
// per signer and one for the coordinator, each participant served over
// gRPC with mutual TLS 1.3 on loopback behind the same rule as the signer
// daemon (only the coordinator's identity may call), each with its own
// keys directory and passphrase sealer.
package ceremonytest

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// TrustDomain is the test cluster's SPIFFE trust domain.
const TrustDomain = "ceremony.test"

// CoordinatorID is the coordinator's identity; the only one participants
// accept calls from.
const CoordinatorID = "spiffe://" + TrustDomain + "/coordinator"

// SignerID is signer id's identity.
func SignerID(id uint16) string { return fmt.Sprintf("spiffe://%s/signer/%d", TrustDomain, id) }

// Options shape a test cluster.
type Options struct {
	// N participants, ids 1..N.
	N int
	// Configure, if set, adjusts participant id's config before it starts.
	Configure func(id uint16, cfg *ceremony.ParticipantConfig)
	// Log receives every participant's log (default: discarded).
	Log io.Writer
}

// Cluster is a set of running participants.
type Cluster struct {
	// Dir holds everything the cluster wrote.
	Dir         string
	CA          *mtls.DevCA
	Coordinator mtls.Files
	// Roots trusts the CA.
	Roots   *x509.CertPool
	Members map[uint16]*Member
}

// Member is one running participant.
type Member struct {
	ID          uint16
	Identity    string
	Addr        string
	TLS         mtls.Files
	KeysDir     string
	Sealer      keystore.Sealer
	Participant *ceremony.Participant
}

// Passphrase is member id's sealing passphrase.
func Passphrase(id uint16) []byte { return fmt.Appendf(nil, "ceremony-test-passphrase-%d", id) }

// Leaf is a loopback certificate for id.
func Leaf(id string) mtls.Leaf {
	return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour}
}

// Start starts a cluster; it stops when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Log == nil {
		o.Log = io.Discard
	}
	log := slog.New(slog.NewTextHandler(o.Log, nil))
	dir := t.TempDir()
	ca, err := mtls.NewDevCA("ceremony test CA", time.Hour)
	must(t, err)
	certs := filepath.Join(dir, "certs")
	must(t, os.MkdirAll(certs, 0o700))
	coord, err := ca.Issue(certs, "coordinator", Leaf(CoordinatorID))
	must(t, err)
	pem, err := os.ReadFile(coord.CA)
	must(t, err)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &Cluster{Dir: dir, CA: ca, Coordinator: coord, Roots: roots, Members: map[uint16]*Member{}}
	for i := 1; i <= o.N; i++ {
		id := uint16(i)
		files, err := ca.Issue(certs, fmt.Sprintf("signer-%d", id), Leaf(SignerID(id)))
		must(t, err)
		sealer, err := keystore.NewPassphrase(Passphrase(id), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
		must(t, err)
		cfg := ceremony.ParticipantConfig{ID: id, TLS: files, KeysDir: filepath.Join(dir, fmt.Sprintf("signer-%d", id), "keys"),
			Sealer: sealer, Log: log.With("signer", id)}
		if o.Configure != nil {
			o.Configure(id, &cfg)
		}
		p, err := ceremony.NewParticipant(cfg)
		must(t, err)
		m := &Member{ID: id, Identity: SignerID(id), TLS: files, KeysDir: cfg.KeysDir, Sealer: cfg.Sealer, Participant: p}
		m.Addr = serve(t, files, p)
		c.Members[id] = m
	}
	return c
}

// serve serves p over mTLS on loopback, admitting only the coordinator.
func serve(t testing.TB, files mtls.Files, p *ceremony.Participant) string {
	t.Helper()
	tc, err := mtls.ServerConfig(files, true)
	must(t, err)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)), grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			id, err := mtls.PeerID(ctx)
			if err != nil {
				return nil, status.Error(codes.Unauthenticated, "a client certificate with a SPIFFE ID is required")
			}
			if id != CoordinatorID {
				return nil, status.Error(codes.PermissionDenied, "caller is not an allowed coordinator")
			}
			return h(ctx, req)
		}))
	ceremonyv1.RegisterCeremonyParticipantServiceServer(gs, p)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(func() {
		gs.Stop()
		p.Close()
	})
	return lis.Addr().String()
}

// Participants returns the coordinator's view: each member reached over
// gRPC with the coordinator's certificate, pinned to the member's identity.
func (c *Cluster) Participants(t testing.TB) map[uint16]relay.Participant {
	t.Helper()
	out := make(map[uint16]relay.Participant, len(c.Members))
	for id, m := range c.Members {
		conn, err := relay.Dial(m.Addr, m.Identity, c.Coordinator)
		must(t, err)
		t.Cleanup(func() { conn.Close() })
		out[id] = relay.NewGRPCParticipant(conn, m.Identity)
	}
	return out
}

// Relay returns a relay trusting the cluster's CA.
func (c *Cluster) Relay(t testing.TB, timeout time.Duration) *relay.Relay {
	t.Helper()
	r, err := relay.NewRelay(relay.Config{Roots: func() *x509.CertPool { return c.Roots }, RoundTimeout: timeout})
	must(t, err)
	return r
}

// Files lists every regular file under the cluster's directory.
func (c *Cluster) Files(t testing.TB) []string {
	t.Helper()
	var out []string
	must(t, filepath.WalkDir(c.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	}))
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
