package signer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Attest over real mTLS: the report binds the key the client saw in the
// handshake, the signer id and the policy hash; it is reused while they
// stay; a signer without a provider says so with FAILED_PRECONDITION.
func TestAttestRPC(t *testing.T) {
	fake := attesttest.New(t)
	var reports atomic.Int32
	counting := attest.ProviderFunc(func(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
		reports.Add(1)
		return fake.Evidence(rd)
	})
	f := newFixtureWith(t, coordinatortest.Options{N: 3, T: 2, SignerOptionsFor: func(id uint16) []signer.Option {
		if id == 1 {
			return []signer.Option{signer.WithAttestationProvider(counting)}
		}
		return []signer.Option{signer.WithAttestationProvider(nil)}
	}})
	files, err := f.c.CA.Issue(t.TempDir(), "coord", mtls.Leaf{ID: coordinatortest.CoordinatorID, DNSNames: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := mtls.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	tc.ServerName = "localhost"
	dial := func(id uint16) signv1.SignerServiceClient {
		conn, err := grpc.NewClient(f.c.Signers[id].Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return signv1.NewSignerServiceClient(conn)
	}
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		var p peer.Peer
		resp, err := dial(1).Attest(ctx, &signv1.AttestRequest{}, grpc.Peer(&p))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		leaf := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0]
		ev, err := attest.FromProto(resp.GetEvidence())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, ev, attest.ReportDataSPKI(leaf.RawSubjectPublicKeyInfo, 1, f.hash)); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if _, err := v.Verify(ctx, ev, attest.ReportDataSPKI(leaf.RawSubjectPublicKeyInfo, 2, f.hash)); !errors.Is(err, attest.ErrReportData) {
			t.Fatalf("Verify as signer 2: %v, want ErrReportData", err)
		}
	}
	if n := reports.Load(); n != 1 {
		t.Errorf("%d reports for one binding, want 1 (cached)", n)
	}
	_, err = dial(2).Attest(ctx, &signv1.AttestRequest{})
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != signer.NoAttestationMessage {
		t.Fatalf("Attest without attestation = %v", err)
	}
}

func TestAttestationConfigValidate(t *testing.T) {
	c := signer.Default()
	c.Attestation.Provider = "tpm"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "attestation.provider") {
		t.Fatalf("Validate = %v", err)
	}
	// Every problem of the section at once.
	a := signer.AttestationConfig{Provider: "tpm", PeersRequired: true}
	err := a.Validate()
	for _, want := range []string{"attestation.provider", "attestation.peers_required needs attestation.verifier"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
	a = signer.AttestationConfig{Verifier: &attest.Config{}, PeersRequired: true}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "attestation.verifier: measurements") {
		t.Errorf("Validate of a verifier without measurements = %v", err)
	}
}

// The attestation section is strict JSON, the verifier's keys included.
func TestAttestationConfigLoad(t *testing.T) {
	load := func(js string) (signer.Config, error) {
		p := filepath.Join(t.TempDir(), "signer.json")
		if err := os.WriteFile(p, []byte(js), 0o600); err != nil {
			t.Fatal(err)
		}
		return signer.LoadConfig(p)
	}
	m := strings.Repeat("ab", attest.MeasurementSize)
	c, err := load(`{"attestation": {"provider": "none", "peers_required": true, "verifier": {"measurements": ["` + m + `"], "min_tcb": {"snp": 8}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Attestation; a.Provider != "none" || !a.PeersRequired || a.Verifier == nil || a.Verifier.Measurements[0] != m || a.Verifier.MinTCB.SNP != 8 {
		t.Fatalf("attestation %+v", a)
	}
	if err := c.Attestation.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{
		`{"attestation": {"peers_require": true}}`,
		`{"attestation": {"verifier": {"measurement": ["` + m + `"]}}}`,
	} {
		if _, err := load(js); err == nil {
			t.Errorf("LoadConfig(%s) accepted an unknown key", js)
		}
	}
}

// runCeremony runs a key ceremony through the coordinator's
// CeremonyService and returns the kid, or the blame of its abort.
func runCeremony(t *testing.T, c *coordinatortest.Cluster) (string, *ceremonyv1.Blame, error) {
	t.Helper()
	tc, err := mtls.ClientConfig(c.Caller)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.CoordAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := ceremonyv1.NewCeremonyServiceClient(conn).Run(ctx, &ceremonyv1.RunRequest{Threshold: 2})
	if err != nil {
		return "", nil, err
	}
	var blame *ceremonyv1.Blame
	for {
		ev, err := stream.Recv()
		if err != nil {
			return "", blame, err
		}
		switch ev.GetKind() {
		case ceremonyv1.EventKind_EVENT_KIND_DONE:
			return ev.GetKid(), nil, nil
		case ceremonyv1.EventKind_EVENT_KIND_ABORTED:
			blame = ev.GetBlame()
		}
	}
}

// The signer daemon wires its attestation section into the key ceremony:
// its provider's evidence goes into its round-1 package, and with
// peers_required it refuses a peer without evidence its verifier accepts.
func TestCeremonyPeersAttested(t *testing.T) {
	fake := attesttest.New(t)
	vc := fake.Config()
	for _, tc := range []struct {
		name      string
		provider3 attest.Provider
		culprit   uint32 // 0: the ceremony completes
	}{
		{"all attested", fake.Provider(), 0},
		{"signer 3 not attested", nil, 3},
		{"signer 3 runs another image", fake.MeasuredProvider(attesttest.Measurement(7)), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, NoKeys: true,
				SignerConfig: func(sc *signer.Config) {
					sc.Attestation.Verifier, sc.Attestation.PeersRequired = &vc, true
				},
				SignerOptionsFor: func(id uint16) []signer.Option {
					if id == 3 {
						return []signer.Option{signer.WithAttestationProvider(tc.provider3)}
					}
					return []signer.Option{signer.WithAttestationProvider(fake.Provider())}
				}})
			kid, blame, err := runCeremony(t, c)
			if tc.culprit == 0 {
				if err != nil || kid == "" {
					t.Fatalf("ceremony: %v", err)
				}
				return
			}
			if status.Code(err) != codes.Aborted || blame.GetCulpritId() != tc.culprit ||
				blame.GetFault() != ceremonyv1.Fault_FAULT_ATTESTATION || blame.GetReporterId() == 0 {
				t.Fatalf("ceremony: %v (blame %v), want signer %d blamed by a peer for its attestation", err, blame, tc.culprit)
			}
			for id, s := range c.Signers {
				if kids, err := keydir.List(s.Config.KeysDir, true); err != nil || len(kids) != 0 {
					t.Fatalf("signer %d holds %v (%v)", id, kids, err)
				}
			}
		})
	}
}
