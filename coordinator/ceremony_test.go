package coordinator_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// runCeremony runs a key ceremony through the coordinator's
// CeremonyService as the test caller, and returns the kid.
func runCeremony(t *testing.T, c *coordinatortest.Cluster, threshold uint32) (string, error) {
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
	stream, err := ceremonyv1.NewCeremonyServiceClient(conn).Run(ctx(t), &ceremonyv1.RunRequest{Threshold: threshold})
	if err != nil {
		return "", err
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return "", io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", err
		}
		if ev.GetKind() == ceremonyv1.EventKind_EVENT_KIND_DONE {
			return ev.GetKid(), nil
		}
	}
}

// TestCeremonyThroughTheCoordinator: a cluster born without a key, one of
// whose signers is a guardian behind its dial-out stream, makes its key in
// a ceremony relayed by the coordinator, then mints with it; no file the
// cluster wrote holds a share in plain text.
func TestCeremonyThroughTheCoordinator(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, NoKeys: true,
		Guardians: map[uint16]signer.Approver{3: &scripted{answer: "yes"}}})
	cl := c.Client(t)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("mint before any key: %v", err)
	}
	waitConnected(t, c, 3)

	kid, err := runCeremony(t, c, 2)
	if err != nil {
		t.Fatalf("ceremony: %v", err)
	}
	if c.Coordinator.KeyID() != kid {
		t.Fatalf("the first epoch %s is not active (%q)", kid, c.Coordinator.KeyID())
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "keys-coordinator", kid, keydir.TranscriptFile)); err != nil {
		t.Fatalf("coordinator keeps no transcript: %v", err)
	}
	waitGuardian(t, c, 3)
	c.StopSigner(1) // the guardian's share is needed now
	resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatalf("mint with the ceremony's key: %v", err)
	}
	if _, err := verifierFor(t, c, "aud").Verify(ctx(t), resp.GetToken(), "read"); err != nil {
		t.Fatal(err)
	}

	// Every share, unsealed here with the test passphrases, appears in no
	// file of the cluster, in any usual encoding.
	var secrets [][]byte
	for id, s := range c.Signers {
		b, err := keystore.Open(s.Config.Keystore, keystore.Options{Dev: true})
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := keydir.ReadSealed(s.Config.KeysDir, kid)
		if err != nil {
			t.Fatalf("signer %d: %v", id, err)
		}
		secret, err := b.Unseal(sealed, keydir.Label(id, kid))
		b.Close()
		if err != nil {
			t.Fatalf("signer %d: %v", id, err)
		}
		secrets = append(secrets, secret)
	}
	keystoretest.NoPlaintext(t, c.Dir, 10, secrets...)

	// Only admins run ceremonies; this caller is one, but a second ceremony
	// with a threshold above n is refused cleanly.
	if _, err := runCeremony(t, c, 4); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("threshold 4 of 3: %v", err)
	}
}

// waitConnected waits until guardian id's stream is attached.
func waitConnected(t *testing.T, c *coordinatortest.Cluster, id uint32) {
	t.Helper()
	for i := 0; i < 300; i++ {
		st, _ := c.Coordinator.GetStatus(context.Background(), nil)
		for _, s := range st.GetSigners() {
			if s.GetId() == id && s.GetHealthy() {
				return
			}
		}
		sleep()
	}
	t.Fatalf("guardian %d never connected", id)
}

func sleep() { time.Sleep(50 * time.Millisecond) }
