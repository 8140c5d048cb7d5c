package frost

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzSignInputs feeds arbitrary commitment lists to a signer and arbitrary
// commitments to a group: nothing may panic, and a list that does not carry
// a nonce this signer holds must never produce a share.
func FuzzSignInputs(f *testing.F) {
	c := newCluster(f, 2, 3)
	enc, _ := c.signers[0].Commit(1, time.Now())
	enc2, _ := c.signers[1].Commit(1, time.Now())
	c1, _ := c.group.DecodeCommitment(enc[0])
	c2, _ := c.group.DecodeCommitment(enc2[0])
	list, _ := c.group.EncodeList([]Commitment{c1, c2})
	f.Add(list, enc[0])
	f.Add([]byte{}, []byte{6})
	f.Add(append([]byte{6, 0, 3}, make([]byte, 200)...), []byte{6, 1, 2, 3})
	f.Fuzz(func(t *testing.T, list, com []byte) {
		_, _ = c.group.DecodeCommitment(com)
		before := c.signers[2].Outstanding()
		if _, err := c.signers[2].Sign([]byte("m"), list); err == nil {
			t.Fatal("signer 3 signed with no nonce of its own")
		}
		if c.signers[2].Outstanding() != before {
			t.Fatal("outstanding nonces changed")
		}
	})
}

// FuzzGroupFile feeds arbitrary group files to ReadGroupFile: nothing may
// panic, and whatever is accepted is a usable group.
func FuzzGroupFile(f *testing.F) {
	kss := runDKG(f, 2, 3)
	good, _ := json.Marshal(kss[0].Public)
	f.Add(good)
	f.Add([]byte(`{"threshold":2,"max_signers":3,"public_key":"AA==","public_key_shares":{}}`))
	f.Add([]byte(`{"threshold":0}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "g.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := ReadGroupFile(p)
		if err != nil {
			return
		}
		pub := g.Public()
		if len(pub.PublicKey) != 32 || pub.Threshold < 1 || pub.Threshold > pub.MaxSigners || len(pub.Shares) != int(pub.MaxSigners) {
			t.Fatalf("accepted an inconsistent group %+v", pub)
		}
	})
}
