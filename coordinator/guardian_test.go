package coordinator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/token"
)

// scripted is an engineer at a guardian who answers as told.
type scripted struct {
	mu      sync.Mutex
	answer  string // "yes", "no" or "wait"
	prompts []signer.ApprovalPrompt
}

func (s *scripted) set(a string) {
	s.mu.Lock()
	s.answer = a
	s.mu.Unlock()
}

func (s *scripted) Approve(ctx context.Context, p signer.ApprovalPrompt) (string, error) {
	s.mu.Lock()
	s.prompts = append(s.prompts, p)
	a := s.answer
	s.mu.Unlock()
	switch a {
	case "yes":
		return "ann@workstation", nil
	case "no":
		return "", fmt.Errorf("%w by ann@workstation", signer.ErrDeclined)
	default:
		<-ctx.Done()
		return "", ctx.Err()
	}
}

func (s *scripted) last() signer.ApprovalPrompt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prompts[len(s.prompts)-1]
}

// waitGuardian waits until guardian id is connected and healthy.
func waitGuardian(t *testing.T, c *coordinatortest.Cluster, id uint32) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.Coordinator.GetStatus(context.Background(), &mintv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.GetSigners() {
			if s.GetId() == id && s.GetHealthy() && s.GetPooledCommitments() > 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("guardian %d never connected", id)
}

func TestGuardian(t *testing.T) {
	eng := &scripted{answer: "yes"}
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		Guardians: map[uint16]signer.Approver{3: eng},
		Config:    func(cc *coordinator.Config) { cc.ApprovalTimeout = coordinator.Duration(time.Second) }})
	waitGuardian(t, c, 3)
	v := verifierFor(t, c, "aud")
	cl := c.Client(t)

	// With signer 1 down, every quorum needs the guardian, which dialled in.
	c.StopSigner(1)
	resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(resp.GetSignerIds()); got != "[2 3]" {
		t.Fatalf("signers %s, want [2 3]", got)
	}
	if _, err := v.Verify(ctx(t), resp.GetToken(), "read"); err != nil {
		t.Fatal(err)
	}

	// deploy:prod needs a human: the engineer approves, and sees who asks
	// for what.
	resp, err = cl.Mint(ctx(t), "aud", []string{"deploy:prod"}, 0)
	if err != nil {
		t.Fatalf("approved mint: %v", err)
	}
	if p := eng.last(); p.Subject != coordinatortest.CallerID || p.Scope != "deploy:prod" || p.Audience != "aud" {
		t.Fatalf("prompt %+v", p)
	}
	if _, err := v.Verify(ctx(t), resp.GetToken(), "deploy:prod"); err != nil {
		t.Fatal(err)
	}
	if rec := findAudit(t, filepath.Join(c.Dir, "audit-coordinator.ndjson"), resp.GetTokenId()); !strings.Contains(rec, `"approver":"ann@workstation"`) ||
		!strings.Contains(rec, coordinatortest.SignerIdentity(3)) {
		t.Fatalf("coordinator audit record without the approval: %s", rec)
	}

	// The engineer declines: a clear refusal; other scopes still mint.
	eng.set("no")
	_, err = cl.Mint(ctx(t), "aud", []string{"deploy:prod"}, 0)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "declined") {
		t.Fatalf("declined approval: %v", err)
	}
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatalf("a scope without approval after a decline: %v", err)
	}

	// Nobody answers in time.
	eng.set("wait")
	_, err = cl.Mint(ctx(t), "aud", []string{"deploy:prod"}, 0)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "timed out") {
		t.Fatalf("unanswered approval: %v", err)
	}

	// The guardian goes away (laptop closed): no quorum, then it dials in
	// again by itself and minting resumes.
	c.StopSigner(3)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("without the guardian: %v", err)
	}
	_, err = cl.Mint(ctx(t), "aud", []string{"deploy:prod"}, 0)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "no guardian is connected") {
		t.Fatalf("approval without a connected guardian: %v", err)
	}
	c.StartSigner(t, 3)
	waitGuardian(t, c, 3)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatalf("after the guardian reconnected: %v", err)
	}
}

// findAudit returns the audit line of token jti.
func findAudit(t *testing.T, path, jti string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Record struct {
				JTI string `json:"jti"`
			} `json:"record"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Record.JTI == jti {
			return sc.Text()
		}
	}
	t.Fatalf("no audit record of %s in %s", jti, path)
	return ""
}

// newEpoch runs a key generation for the cluster's signers in process and
// writes the new epoch into every signer's keys dir and the coordinator's.
func newEpoch(t *testing.T, c *coordinatortest.Cluster, th, n uint16) string {
	t.Helper()
	dkgs := make([]*frost.DKG, n)
	r1 := make([][]byte, n)
	for i := range dkgs {
		d, err := frost.NewDKG(uint16(i+1), th, n)
		if err != nil {
			t.Fatal(err)
		}
		dkgs[i] = d
		if r1[i], err = d.Round1(); err != nil {
			t.Fatal(err)
		}
	}
	to := make([][][]byte, n)
	for _, d := range dkgs {
		out, err := d.Round2(r1)
		if err != nil {
			t.Fatal(err)
		}
		for id, m := range out {
			to[id-1] = append(to[id-1], m)
		}
	}
	var kid string
	for i, d := range dkgs {
		ks, err := d.Finalize(to[i])
		if err != nil {
			t.Fatal(err)
		}
		sc := c.Signers[uint16(i+1)].Config
		sealer, err := keystore.Open(sc.Keystore, keystore.Options{Dev: true})
		if err != nil {
			t.Fatal(err)
		}
		if kid, err = keydir.WriteShare(sc.KeysDir, sc.ID, sealer, ks.Secret, ks.Public, nil); err != nil {
			t.Fatal(err)
		}
		sealer.Close()
		if i == 0 {
			if _, err := keydir.Write(filepath.Join(c.Dir, "keys-coordinator"), keydir.Epoch{Public: ks.Public}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return kid
}

func jwksKids(t *testing.T, c *coordinatortest.Cluster) []string {
	t.Helper()
	st, err := c.Coordinator.GetStatus(context.Background(), &mintv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(st.GetJwksJson()), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func TestKeyRotation(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	cl := c.Client(t)
	coordKeys := filepath.Join(c.Dir, "keys-coordinator")
	oldKid := c.Coordinator.KeyID()
	before, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	// A new epoch: signers hold both; the coordinator publishes the new key
	// ahead of time but still mints with the old one.
	newKid := newEpoch(t, c, 2, 3)
	for id := range c.Signers {
		if err := c.Signers[id].Server.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Coordinator.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if got, want := jwksKids(t, c), sorted(oldKid, newKid); !slices.Equal(got, want) {
		t.Fatalf("JWKS before activation %v, want %v", got, want)
	}
	if c.Coordinator.KeyID() != oldKid {
		t.Fatal("a new epoch became active without activation")
	}

	// Activation: new tokens carry the new kid; the old key stays published
	// so that tokens it signed still verify.
	if err := keydir.Activate(coordKeys, newKid, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.Coordinator.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	after, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatalf("mint with the new key: %v", err)
	}
	p, err := token.ParseCompact(after.GetToken())
	if err != nil || p.Header.KeyID != newKid {
		t.Fatalf("new token's kid %q (%v), want %s", p.Header.KeyID, err, newKid)
	}
	v := verifierFor(t, c, "aud")
	for _, tok := range []string{before.GetToken(), after.GetToken()} {
		if _, err := v.Verify(ctx(t), tok, "read"); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}

	// Once the old key's last token has expired, the JWKS drops it.
	past := time.Now().Add(-time.Hour).Unix()
	if err := os.WriteFile(filepath.Join(coordKeys, oldKid, keydir.DeactivatedFile), []byte(fmt.Sprint(past)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Coordinator.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, c); !slices.Equal(got, []string{newKid}) {
		t.Fatalf("JWKS after the old key's tokens expired %v, want [%s]", got, newKid)
	}

	// Retiring the old epoch on the signers wipes its share from disk and
	// memory; minting goes on with the new one.
	for id, s := range c.Signers {
		if err := keydir.Retire(s.Config.KeysDir, oldKid); err != nil {
			t.Fatal(err)
		}
		if err := s.Server.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
		info, err := s.Server.Info(context.Background(), &signv1.InfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(info.GetKeys()) != 1 || info.GetKeys()[0].GetKeyId() != newKid {
			t.Fatalf("signer %d still holds %v", id, info.GetKeys())
		}
		if _, err := os.Stat(filepath.Join(s.Config.KeysDir, oldKid)); !os.IsNotExist(err) {
			t.Fatalf("signer %d: retired epoch still on disk: %v", id, err)
		}
	}
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatalf("after retirement: %v", err)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
