package signer

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
)

// countingSealer counts unseals and fails them while broken.
type countingSealer struct {
	keystore.Sealer
	unseals int
	broken  bool
}

func (c *countingSealer) Unseal(sealed []byte, label string) ([]byte, error) {
	c.unseals++
	if c.broken {
		return nil, errors.New("device unavailable")
	}
	return c.Sealer.Unseal(sealed, label)
}

// TestKeyringFailedEpochBackoff: an epoch that does not load is not
// unsealed again at every sync (each may be a device operation, a PIN try
// or a touch) but after a doubling number of syncs; it is still reported
// at every sync; it is tried at once when its share file changes; and a
// transient failure heals without a restart.
func TestKeyringFailedEpochBackoff(t *testing.T) {
	kss := testDKG(t, 2, 2)
	pass, err := keystore.NewPassphrase([]byte("keyring test"), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kid, err := keydir.WriteShare(dir, 1, pass, kss[0].Secret, kss[0].Public, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer := &countingSealer{Sealer: pass, broken: true}
	k := &keyring{epochs: map[string]*epoch{}}
	t.Cleanup(k.closeAll)
	sync := func() error { return k.sync(dir, 1, sealer, 0, slog.New(slog.DiscardHandler)) }

	// Tries at syncs 1, 3, 6 and 11: waits of 1, 2 and 4 syncs between.
	for i := 1; i <= 12; i++ {
		if err := sync(); err == nil {
			t.Fatalf("sync %d: no error for an epoch that did not load", i)
		}
	}
	if sealer.unseals != 4 {
		t.Fatalf("%d unseals in 12 syncs, want 4", sealer.unseals)
	}

	// A new share file is tried at the next sync.
	sealed, err := keydir.ReadSealed(dir, kid)
	if err != nil {
		t.Fatal(err)
	}
	if err := keystore.WriteSealed(filepath.Join(dir, kid, keydir.ShareFile), sealed); err != nil {
		t.Fatal(err)
	}
	before := sealer.unseals
	if err := sync(); err == nil || sealer.unseals != before+1 {
		t.Fatalf("changed share file: %d unseals (want %d), %v", sealer.unseals, before+1, err)
	}

	// The device comes back: the epoch loads within the longest wait.
	sealer.broken = false
	for i := 0; ; i++ {
		if i > maxLoadWait {
			t.Fatalf("epoch not loaded %d syncs after the failure cleared", i)
		}
		if err := sync(); err == nil {
			break
		}
	}
	if _, ok := k.get(kid); !ok {
		t.Fatal("epoch not loaded")
	}
	before = sealer.unseals
	if err := sync(); err != nil || sealer.unseals != before {
		t.Fatalf("sync of a loaded epoch: %d unseals, %v", sealer.unseals-before, err)
	}
}

// testDKG runs a t-of-n key generation among n local participants.
func testDKG(tb testing.TB, t, n uint16) []*frost.KeyShare {
	tb.Helper()
	ds := make([]*frost.DKG, n)
	r1 := make([][]byte, n)
	for i := range ds {
		var err error
		if ds[i], err = frost.NewDKG(uint16(i+1), t, n); err != nil {
			tb.Fatal(err)
		}
		if r1[i], err = ds[i].Round1(); err != nil {
			tb.Fatal(err)
		}
	}
	inbox := make([][][]byte, n)
	for _, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			tb.Fatal(err)
		}
		for to, m := range out {
			inbox[to-1] = append(inbox[to-1], m)
		}
	}
	kss := make([]*frost.KeyShare, n)
	for i, d := range ds {
		var err error
		if kss[i], err = d.Finalize(inbox[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return kss
}
