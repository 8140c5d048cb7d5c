package ceremony_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/mtls"
)

const (
	adminID    = "spiffe://" + ceremonytest.TrustDomain + "/ops/admin"
	intruderID = "spiffe://" + ceremonytest.TrustDomain + "/ops/intruder"
)

// serveCoordinator serves a CeremonyService over mTLS on loopback and
// returns its address.
func serveCoordinator(t *testing.T, c *ceremonytest.Cluster, parts map[uint16]relay.Participant, done func(context.Context, *relay.Result) error) string {
	t.Helper()
	svc, err := relay.NewService(relay.ServiceConfig{
		Relay:        c.Relay(t, 20*time.Second),
		Participants: func() map[uint16]relay.Participant { return parts },
		Authorize:    relay.AllowIdentities(adminID),
		Done:         done,
	})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := mtls.ServerConfig(c.Coordinator, false)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	ceremonyv1.RegisterCeremonyServiceServer(gs, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func operator(t *testing.T, c *ceremonytest.Cluster, addr, id string) ceremonyv1.CeremonyServiceClient {
	t.Helper()
	f, err := c.CA.Issue(c.Dir, "op-"+id[len(id)-5:], ceremonytest.Leaf(id))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := mtls.ClientConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ceremonyv1.NewCeremonyServiceClient(conn)
}

// runStream runs a ceremony and returns its events and final status.
func runStream(t *testing.T, cl ceremonyv1.CeremonyServiceClient, req *ceremonyv1.RunRequest) ([]*ceremonyv1.RunResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := cl.Run(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*ceremonyv1.RunResponse
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestServiceRun(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	// The coordinator keeps each new group in its own keys directory.
	coordKeys := t.TempDir()
	addr := serveCoordinator(t, c, c.Participants(t), func(_ context.Context, r *relay.Result) error {
		_, err := keydir.Write(coordKeys, keydir.Epoch{Public: r.Group, Transcript: r.Transcript})
		return err
	})
	admin := operator(t, c, addr, adminID)

	t.Run("done", func(t *testing.T) {
		evs, err := runStream(t, admin, &ceremonyv1.RunRequest{Threshold: 2})
		if err != nil {
			t.Fatal(err)
		}
		last := evs[len(evs)-1]
		if evs[0].GetKind() != ceremonyv1.EventKind_EVENT_KIND_STARTED || last.GetKind() != ceremonyv1.EventKind_EVENT_KIND_DONE ||
			last.GetKid() == "" || len(last.GetGroupPublicKey()) != 32 || len(evs) != 2+4*3 {
			t.Fatalf("events: %v", evs)
		}
		for _, m := range c.Members {
			if _, err := sceremony.VerifyDir(m.KeysDir+"/"+last.GetKid(), c.Roots); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := keydir.ReadGroup(coordKeys, last.GetKid()); err != nil {
			t.Fatalf("the coordinator did not store the group: %v", err)
		}
		if _, err := sceremony.VerifyDir(coordKeys+"/"+last.GetKid(), c.Roots); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a subset", func(t *testing.T) {
		evs, err := runStream(t, admin, &ceremonyv1.RunRequest{Threshold: 2, SignerIds: []uint32{1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		if last := evs[len(evs)-1]; last.GetKind() != ceremonyv1.EventKind_EVENT_KIND_DONE || last.GetMaxSigners() != 2 {
			t.Fatalf("last event %v", last)
		}
	})
	for _, tc := range []struct {
		name string
		cl   ceremonyv1.CeremonyServiceClient
		req  *ceremonyv1.RunRequest
		code codes.Code
	}{
		{"not an admin", operator(t, c, addr, intruderID), &ceremonyv1.RunRequest{Threshold: 2}, codes.PermissionDenied},
		{"threshold 1", admin, &ceremonyv1.RunRequest{Threshold: 1}, codes.InvalidArgument},
		{"threshold above n", admin, &ceremonyv1.RunRequest{Threshold: 4}, codes.InvalidArgument},
		{"unknown signer", admin, &ceremonyv1.RunRequest{Threshold: 2, SignerIds: []uint32{1, 2, 9}}, codes.InvalidArgument},
		{"ids not 1..n", admin, &ceremonyv1.RunRequest{Threshold: 2, SignerIds: []uint32{1, 3}}, codes.InvalidArgument},
		{"signer twice", admin, &ceremonyv1.RunRequest{Threshold: 2, SignerIds: []uint32{1, 2, 2}}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := runStream(t, tc.cl, tc.req)
			if status.Code(err) != tc.code || len(evs) != 0 {
				t.Fatalf("got %v after %d events, want %v", err, len(evs), tc.code)
			}
		})
	}
}

func TestServiceAbortNamesCulprit(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	parts := c.Participants(t)
	parts[1] = &tamper{Participant: parts[1], finish: func(r *ceremonyv1.FinishRequest) { r.Envelopes[0].Signature[2] ^= 1 }}
	addr := serveCoordinator(t, c, parts, nil)
	evs, err := runStream(t, operator(t, c, addr, adminID), &ceremonyv1.RunRequest{Threshold: 2})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("got %v, want ABORTED", err)
	}
	var ce *sceremony.CheatError
	if !errors.As(sceremony.FromStatus(err), &ce) || ce.Culprit != sceremony.Relay || ce.Reporter != 1 {
		t.Fatalf("status %v does not name the relay as reported by participant 1", err)
	}
	last := evs[len(evs)-1]
	if last.GetKind() != ceremonyv1.EventKind_EVENT_KIND_ABORTED || last.GetBlame().GetReporterId() != 1 ||
		last.GetBlame().GetFault() != ceremonyv1.Fault_FAULT_BAD_SIGNATURE || last.GetDetail() == "" {
		t.Fatalf("last event %v", last)
	}
}

func TestServiceOneAtATime(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 2})
	parts := c.Participants(t)
	release := make(chan struct{})
	parts[2] = &tamper{Participant: parts[2], block: release}
	addr := serveCoordinator(t, c, parts, nil)
	admin := operator(t, c, addr, adminID)
	first := make(chan error, 1)
	go func() {
		_, err := runStream(t, admin, &ceremonyv1.RunRequest{Threshold: 2})
		first <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.Members[2].Participant.InProgress() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first ceremony never began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := runStream(t, admin, &ceremonyv1.RunRequest{Threshold: 2}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second ceremony: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestServiceDoneFails(t *testing.T) {
	c := ceremonytest.Start(t, ceremonytest.Options{N: 2})
	errDisk := errors.New("disk full")
	addr := serveCoordinator(t, c, c.Participants(t), func(context.Context, *relay.Result) error { return errDisk })
	evs, err := runStream(t, operator(t, c, addr, adminID), &ceremonyv1.RunRequest{Threshold: 2})
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want INTERNAL", err)
	}
	for _, e := range evs {
		if e.GetKind() == ceremonyv1.EventKind_EVENT_KIND_DONE {
			t.Fatal("DONE reported although the result was not stored")
		}
	}
}

func TestNewServiceRefuses(t *testing.T) {
	if _, err := relay.NewService(relay.ServiceConfig{}); err == nil {
		t.Fatal("accepted an empty config")
	}
}
