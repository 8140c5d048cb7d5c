package signer_test

import (
	"context"
	"errors"
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
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
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
}
