package frost

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bfrost "github.com/bytemare/frost"
)

// runDKG runs a t-of-n key generation among n in-memory participants.
func runDKG(t testing.TB, th, n uint16) []*KeyShare {
	t.Helper()
	ps := make([]*DKG, n)
	r1 := make([][]byte, n)
	for i := range ps {
		var err error
		if ps[i], err = NewDKG(uint16(i+1), th, n); err != nil {
			t.Fatal(err)
		}
		if r1[i], err = ps[i].Round1(); err != nil {
			t.Fatal(err)
		}
	}
	inbox := make([][][]byte, n)
	for _, p := range ps {
		out, err := p.Round2(r1)
		if err != nil {
			t.Fatal(err)
		}
		for to, m := range out {
			inbox[to-1] = append(inbox[to-1], m)
		}
	}
	kss := make([]*KeyShare, n)
	for i, p := range ps {
		var err error
		if kss[i], err = p.Finalize(inbox[i]); err != nil {
			t.Fatal(err)
		}
	}
	return kss
}

type cluster struct {
	group   *Group
	signers []*Signer
}

func newCluster(t testing.TB, th, n uint16) *cluster {
	kss := runDKG(t, th, n)
	for _, ks := range kss[1:] {
		if !bytes.Equal(ks.Public.PublicKey, kss[0].Public.PublicKey) {
			t.Fatal("participants disagree on the group key")
		}
	}
	g, err := NewGroup(kss[0].Public)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{group: g}
	for _, ks := range kss {
		s, err := NewSigner(g, ks.Secret, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.signers = append(c.signers, s)
	}
	return c
}

// sign runs one signing session with the given signers (0-based indexes).
func (c *cluster) sign(t testing.TB, msg []byte, who ...int) ([]byte, error) {
	t.Helper()
	var cs []Commitment
	for _, i := range who {
		enc, err := c.signers[i].Commit(1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cm, err := c.group.DecodeCommitment(enc[0])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, cm)
	}
	list, err := c.group.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	var shares []Share
	for _, i := range who {
		sh, err := c.signers[i].Sign(msg, list)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, Share{SignerID: c.signers[i].ID(), Encoded: sh})
	}
	return c.group.Aggregate(msg, cs, shares)
}

func TestDKGThenSignEveryQuorum(t *testing.T) {
	c := newCluster(t, 2, 3)
	msg := []byte("eyJhbGciOiJFZERTQSJ9.e30")
	for _, q := range [][]int{{0, 1}, {0, 2}, {1, 2}, {0, 1, 2}} {
		sig, err := c.sign(t, msg, q...)
		if err != nil {
			t.Fatalf("quorum %v: %v", q, err)
		}
		if !ed25519.Verify(c.group.Public().PublicKey, msg, sig) {
			t.Fatalf("quorum %v: signature does not verify with crypto/ed25519", q)
		}
	}
}

func TestNonceIsSingleUse(t *testing.T) {
	c := newCluster(t, 2, 3)
	var cs []Commitment
	for _, s := range c.signers[:2] {
		enc, _ := s.Commit(1, time.Now())
		cm, err := c.group.DecodeCommitment(enc[0])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, cm)
	}
	list, _ := c.group.EncodeList(cs)
	if _, err := c.signers[0].Sign([]byte("one"), list); err != nil {
		t.Fatal(err)
	}
	if _, err := c.signers[0].Sign([]byte("two"), list); !errors.Is(err, ErrUnknownCommitment) {
		t.Fatalf("second use of a nonce: got %v, want ErrUnknownCommitment", err)
	}
	if c.signers[0].Outstanding() != 0 {
		t.Fatal("used nonce still outstanding")
	}
}

func TestNonceConsumedEvenWhenSignFails(t *testing.T) {
	c := newCluster(t, 2, 3)
	enc, _ := c.signers[0].Commit(1, time.Now())
	cm, _ := c.group.DecodeCommitment(enc[0])
	// A list with only our commitment is invalid (below threshold).
	bad := bfrost.CommitmentList{}
	d := new(bfrost.Commitment)
	if err := d.Decode(cm.Encoded); err != nil {
		t.Fatal(err)
	}
	bad = append(bad, d)
	if _, err := c.signers[0].Sign([]byte("m"), bad.Encode()); err == nil {
		t.Fatal("signing with a one-entry list succeeded")
	}
	if n := c.signers[0].Outstanding(); n != 0 {
		t.Fatalf("%d nonces outstanding after a failed sign, want 0", n)
	}
}

func TestExpire(t *testing.T) {
	c := newCluster(t, 2, 3)
	t0 := time.Unix(1000, 0)
	if _, err := c.signers[0].Commit(3, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.signers[0].Commit(2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := c.signers[0].Expire(t0.Add(30 * time.Second)); n != 3 {
		t.Fatalf("expired %d, want 3", n)
	}
	if n := c.signers[0].Outstanding(); n != 2 {
		t.Fatalf("outstanding %d, want 2", n)
	}
}

func TestNonceLimit(t *testing.T) {
	kss := runDKG(t, 2, 3)
	g, _ := NewGroup(kss[0].Public)
	s, err := NewSigner(g, kss[0].Secret, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(4, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(1, time.Now()); !errors.Is(err, ErrTooManyNonces) {
		t.Fatalf("got %v, want ErrTooManyNonces", err)
	}
}

func TestBadShareIsNamed(t *testing.T) {
	c := newCluster(t, 2, 3)
	msg := []byte("m")
	var cs []Commitment
	for _, s := range c.signers[:2] {
		enc, _ := s.Commit(1, time.Now())
		cm, _ := c.group.DecodeCommitment(enc[0])
		cs = append(cs, cm)
	}
	list, _ := c.group.EncodeList(cs)
	good, err := c.signers[0].Sign(msg, list)
	if err != nil {
		t.Fatal(err)
	}
	// Signer 2 signs a different message: a valid-looking but wrong share.
	wrong, err := c.signers[1].Sign([]byte("other"), list)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.group.Aggregate(msg, cs, []Share{{1, good}, {c.signers[1].ID(), wrong}})
	var bad *BadShareError
	if !errors.As(err, &bad) || bad.SignerID != c.signers[1].ID() {
		t.Fatalf("got %v, want BadShareError naming signer %d", err, c.signers[1].ID())
	}
}

func TestSecretMismatchRefused(t *testing.T) {
	a := runDKG(t, 2, 3)
	b := runDKG(t, 2, 3)
	g, _ := NewGroup(a[0].Public)
	if _, err := NewSigner(g, b[0].Secret, 0); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("share of another group: got %v", err)
	}
	if _, err := NewSigner(g, []byte("garbage"), 0); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("garbage share: got %v", err)
	}
}

// TestConcurrentStress runs many sessions at once across separate Group and
// Signer objects. Run with -race: the library shares hash state between
// objects, so without the package lock this test reports races or produces
// invalid signatures.
func TestConcurrentStress(t *testing.T) {
	c1 := newCluster(t, 2, 3)
	c2 := newCluster(t, 2, 3)
	n := 16
	if testing.Short() {
		n = 4
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		for _, c := range []*cluster{c1, c2} {
			wg.Add(1)
			go func(c *cluster, i int) {
				defer wg.Done()
				msg := []byte(strings.Repeat("x", i+1))
				sig, err := c.sign(t, msg, i%3, (i+1)%3)
				if err != nil {
					errs <- err
					return
				}
				if !ed25519.Verify(c.group.Public().PublicKey, msg, sig) {
					errs <- errors.New("invalid signature under concurrency")
				}
			}(c, i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestRFC9591Vectors runs the FROST(Ed25519, SHA-512) test vectors of RFC
// 9591 Appendix E, as shipped in the library's module, through this
// package's Group and Signer.
func TestRFC9591Vectors(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/bytemare/frost").Output()
	if err != nil {
		t.Fatalf("locating the frost module: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "tests", "vectors", "frost-ed25519-sha512.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Inputs struct {
			ParticipantList []uint16 `json:"participant_list"`
			GroupPublicKey  hexBytes `json:"group_public_key"`
			Message         hexBytes `json:"message"`
			Shares          []struct {
				ID    uint16   `json:"identifier"`
				Share hexBytes `json:"participant_share"`
			} `json:"participant_shares"`
		} `json:"inputs"`
		Round1 struct {
			Outputs []struct {
				ID         uint16   `json:"identifier"`
				HidingRand hexBytes `json:"hiding_nonce_randomness"`
				BindRand   hexBytes `json:"binding_nonce_randomness"`
				HidingCom  hexBytes `json:"hiding_nonce_commitment"`
				BindCom    hexBytes `json:"binding_nonce_commitment"`
			} `json:"outputs"`
		} `json:"round_one_outputs"`
		Round2 struct {
			Outputs []struct {
				ID    uint16   `json:"identifier"`
				Share hexBytes `json:"sig_share"`
			} `json:"outputs"`
		} `json:"round_two_outputs"`
		Final struct {
			Sig hexBytes `json:"sig"`
		} `json:"final_output"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	in := v.Inputs
	pub := PublicGroup{Threshold: 2, MaxSigners: uint16(len(in.Shares)), PublicKey: ed25519.PublicKey(in.GroupPublicKey), Shares: map[uint16][]byte{}}
	secrets := map[uint16][]byte{}
	g := suite.Group()
	for _, s := range in.Shares {
		sc := g.NewScalar()
		if err := sc.Decode(s.Share); err != nil {
			t.Fatal(err)
		}
		pk := g.Base().Multiply(sc).Encode()
		ks, err := bfrost.NewKeyShare(suite, s.ID, s.Share, pk, in.GroupPublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pub.Shares[s.ID] = ks.PublicKeyShare().Encode()
		secrets[s.ID] = ks.Encode()
	}
	grp, err := NewGroup(pub)
	if err != nil {
		t.Fatal(err)
	}
	signers := map[uint16]*Signer{}
	var cs []Commitment
	for _, o := range v.Round1.Outputs {
		s, err := NewSigner(grp, secrets[o.ID], 0)
		if err != nil {
			t.Fatal(err)
		}
		// Test-only knob: the vectors fix the nonce randomness.
		s.s.HidingRandom, s.s.BindingRandom = o.HidingRand, o.BindRand
		enc, err := s.Commit(1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d := new(bfrost.Commitment)
		if err := d.Decode(enc[0]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.HidingNonceCommitment.Encode(), o.HidingCom) || !bytes.Equal(d.BindingNonceCommitment.Encode(), o.BindCom) {
			t.Fatalf("signer %d: commitments differ from RFC 9591", o.ID)
		}
		cm, err := grp.DecodeCommitment(enc[0])
		if err != nil {
			t.Fatal(err)
		}
		signers[o.ID] = s
		cs = append(cs, cm)
	}
	list, err := grp.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	var shares []Share
	for _, o := range v.Round2.Outputs {
		sh, err := signers[o.ID].Sign(in.Message, list)
		if err != nil {
			t.Fatal(err)
		}
		d := new(bfrost.SignatureShare)
		if err := d.Decode(sh); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.SignatureShare.Encode(), o.Share) {
			t.Fatalf("signer %d: share differs from RFC 9591", o.ID)
		}
		shares = append(shares, Share{SignerID: o.ID, Encoded: sh})
	}
	sig, err := grp.Aggregate(in.Message, cs, shares)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, v.Final.Sig) {
		t.Fatalf("signature %x, RFC 9591 says %x", sig, []byte(v.Final.Sig))
	}
	if !ed25519.Verify(ed25519.PublicKey(in.GroupPublicKey), in.Message, sig) {
		t.Fatal("RFC 9591 signature does not verify with crypto/ed25519")
	}
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func BenchmarkMint2of3(b *testing.B) {
	c := newCluster(b, 2, 3)
	msg := bytes.Repeat([]byte("a"), 300)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.sign(b, msg, 0, 1); err != nil {
			b.Fatal(err)
		}
	}
}
