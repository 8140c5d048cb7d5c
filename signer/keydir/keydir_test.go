package keydir_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
)

// group runs a 2-of-3 key generation and returns participant 1's share.
func group(t *testing.T) *frost.KeyShare {
	t.Helper()
	var ds []*frost.DKG
	var r1 [][]byte
	for id := uint16(1); id <= 3; id++ {
		d, err := frost.NewDKG(id, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		m, err := d.Round1()
		if err != nil {
			t.Fatal(err)
		}
		ds, r1 = append(ds, d), append(r1, m)
	}
	var to1 [][]byte
	for _, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := out[1]; ok {
			to1 = append(to1, m)
		}
	}
	ks, err := ds[0].Finalize(to1)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func sealer(t *testing.T) keystore.Sealer {
	s, err := keystore.NewPassphrase([]byte("test passphrase"), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteReadRetire(t *testing.T) {
	dir := t.TempDir()
	ks := group(t)
	kid, err := keydir.WriteShare(dir, 1, sealer(t), ks.Secret, ks.Public, []byte(`{"transcript":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keydir.WriteShare(dir, 1, sealer(t), ks.Secret, ks.Public, nil); !errors.Is(err, keydir.ErrExists) {
		t.Fatalf("second write: %v, want ErrExists", err)
	}
	kids, err := keydir.List(dir, true)
	if err != nil || !slices.Equal(kids, []string{kid}) {
		t.Fatalf("List = %v, %v", kids, err)
	}
	g, err := keydir.ReadGroup(dir, kid)
	if err != nil || !bytes.Equal(g.Public().PublicKey, ks.Public.PublicKey) {
		t.Fatalf("ReadGroup: %v", err)
	}
	sealed, err := keydir.ReadSealed(dir, kid)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, ks.Secret) {
		t.Fatal("the sealed file holds the share")
	}
	got, err := sealer(t).Unseal(sealed, keydir.Label(1, kid))
	if err != nil || !bytes.Equal(got, ks.Secret) {
		t.Fatalf("unseal: %v", err)
	}
	if _, err := sealer(t).Unseal(sealed, keydir.Label(2, kid)); !errors.Is(err, keystore.ErrUnseal) {
		t.Fatalf("another signer's label: %v", err)
	}
	for _, bad := range []string{"../etc", "a/b", "", ".", "..", "x y"} {
		if _, err := keydir.ReadGroup(dir, bad); !errors.Is(err, keydir.ErrNotFound) {
			t.Errorf("kid %q: %v", bad, err)
		}
	}
	if err := keydir.Retire(dir, kid); err != nil {
		t.Fatal(err)
	}
	if kids, _ := keydir.List(dir, false); len(kids) != 0 {
		t.Fatalf("after retire: %v", kids)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("retire left %v", ents)
	}
	if err := keydir.Retire(dir, kid); !errors.Is(err, keydir.ErrNotFound) {
		t.Fatalf("retire twice: %v", err)
	}
}

func TestListSkipsIncompleteEpochs(t *testing.T) {
	dir := t.TempDir()
	ks := group(t)
	kid, err := keydir.Write(dir, keydir.Epoch{Public: ks.Public})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, ".new-x-123"), 0o700) // a crashed write
	os.MkdirAll(filepath.Join(dir, "empty"), 0o700)
	if kids, _ := keydir.List(dir, false); !slices.Equal(kids, []string{kid}) {
		t.Fatalf("groups: %v", kids)
	}
	if kids, _ := keydir.List(dir, true); len(kids) != 0 {
		t.Fatalf("with shares: %v (a coordinator epoch has none)", kids)
	}
}

func TestActivate(t *testing.T) {
	dir := t.TempDir()
	if _, err := keydir.Active(dir); !errors.Is(err, keydir.ErrNotFound) {
		t.Fatalf("empty dir: %v", err)
	}
	a, err := keydir.Write(dir, keydir.Epoch{Public: group(t).Public})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	if kid, err := keydir.EnsureActive(dir, now); err != nil || kid != a {
		t.Fatalf("EnsureActive = %s, %v", kid, err)
	}
	b, err := keydir.Write(dir, keydir.Epoch{Public: group(t).Public})
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := keydir.Active(dir); kid != a {
		t.Fatalf("a new epoch must not become active by itself: %s", kid)
	}
	if err := keydir.Activate(dir, b, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if kid, _ := keydir.Active(dir); kid != b {
		t.Fatalf("active %s, want %s", kid, b)
	}
	if at, ok := keydir.Deactivated(dir, a); !ok || !at.Equal(now.Add(time.Minute)) {
		t.Fatalf("deactivated %v %v", at, ok)
	}
	if _, ok := keydir.Deactivated(dir, b); ok {
		t.Fatal("the active epoch is marked deactivated")
	}
	if err := keydir.Activate(dir, "nope", now); !errors.Is(err, keydir.ErrNotFound) {
		t.Fatalf("unknown kid: %v", err)
	}
}
