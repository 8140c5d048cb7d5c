package keydir_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
)

// fuzzGroup runs a 2-of-2 key generation and returns the public group.
func fuzzGroup(f *testing.F) frost.PublicGroup {
	f.Helper()
	ds := make([]*frost.DKG, 2)
	r1 := make([][]byte, 2)
	for i := range ds {
		var err error
		if ds[i], err = frost.NewDKG(uint16(i+1), 2, 2); err != nil {
			f.Fatal(err)
		}
		if r1[i], err = ds[i].Round1(); err != nil {
			f.Fatal(err)
		}
	}
	inbox := make([][][]byte, 2)
	for _, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			f.Fatal(err)
		}
		for to, m := range out {
			inbox[to-1] = append(inbox[to-1], m)
		}
	}
	ks, err := ds[0].Finalize(inbox[0])
	if err != nil {
		f.Fatal(err)
	}
	return ks.Public
}

// FuzzKeysDir gives a keys dir holding one genuine epoch an arbitrary
// active marker, an arbitrary deactivation record for that epoch, and an
// arbitrary second epoch (any directory name, any group file). Nothing
// may panic; the active kid, when there is one, is an epoch of the dir
// whose group is that key's; an epoch is only ever read as the group of
// the key it is named after; and a deactivation time is read exactly when
// the record is a decimal Unix time.
func FuzzKeysDir(f *testing.F) {
	pub := fuzzGroup(f)
	gb, err := json.Marshal(pub)
	if err != nil {
		f.Fatal(err)
	}
	kid, err := keydir.KeyID(pub)
	if err != nil {
		f.Fatal(err)
	}
	other := fuzzGroup(f)
	ob, _ := json.Marshal(other)
	okid, _ := keydir.KeyID(other)
	f.Add([]byte(kid+"\n"), []byte("1767225600\n"), "", []byte{})
	f.Add([]byte(okid), []byte(" 17 "), okid, ob)
	f.Add([]byte(okid), []byte("x"), kid+"x", ob)
	f.Add([]byte("../"+kid), []byte("-1"), "zz", gb)
	f.Add([]byte{}, []byte("99999999999999999999"), okid, gb)
	// The genuine epoch is written once (Write syncs), then copied.
	template := filepath.Join(f.TempDir(), "template")
	if _, err := keydir.Write(template, keydir.Epoch{Public: pub}); err != nil {
		f.Fatal(err)
	}
	dir := filepath.Join(f.TempDir(), "keys")
	f.Fuzz(func(t *testing.T, marker, deactivated []byte, name string, group []byte) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
			t.Fatal(err)
		}
		if len(marker) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "active"), marker, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, kid, keydir.DeactivatedFile), deactivated, 0o600); err != nil {
			t.Fatal(err)
		}
		if name != "" && name != kid && !strings.ContainsAny(name, "/\x00") && name != "." && name != ".." && len(name) < 200 {
			if err := os.Mkdir(filepath.Join(dir, name), 0o700); err == nil {
				if err := os.WriteFile(filepath.Join(dir, name, keydir.GroupFile), group, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}

		kids, err := keydir.List(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			g, err := keydir.ReadGroup(dir, k)
			if err != nil {
				continue
			}
			if got, _ := keydir.KeyID(g.Public()); got != k {
				t.Fatalf("epoch %q read as the group of key %q", k, got)
			}
		}
		if a, err := keydir.Active(dir); err == nil {
			g, gerr := keydir.ReadGroup(dir, a)
			if !slices.Contains(kids, a) || gerr != nil {
				t.Fatalf("active kid %q: listed %v, group %v", a, kids, gerr)
			}
			if got, _ := keydir.KeyID(g.Public()); got != a {
				t.Fatalf("active kid %q holds the group of %q", a, got)
			}
		}
		at, ok := keydir.Deactivated(dir, kid)
		sec, perr := strconv.ParseInt(strings.TrimSpace(string(deactivated)), 10, 64)
		if ok != (perr == nil) || ok && at.Unix() != sec {
			t.Fatalf("Deactivated(%q) = %v, %v", deactivated, at, ok)
		}
	})
}
