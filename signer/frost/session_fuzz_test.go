package frost

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	bfrost "github.com/bytemare/frost"
)

// tamper returns genuine changed by the fuzzer's bytes b: replaced by b
// (mode 0), XORed with b (1), b appended (2), or cut to len(b) bytes (3).
func tamper(genuine, b []byte, mode uint8) []byte {
	out := bytes.Clone(genuine)
	switch mode % 4 {
	case 0:
		return bytes.Clone(b)
	case 1:
		for i := 0; i < len(out) && i < len(b); i++ {
			out[i] ^= b[i]
		}
	case 2:
		out = append(out, b...)
	case 3:
		out = out[:min(len(out), len(b))]
	}
	return out
}

// FuzzAggregate is the coordinator aggregating the shares of a real 2-of-3
// session in which signer 2 sent arbitrary bytes for its share: nothing
// may panic, a signature returned must verify with crypto/ed25519, and a
// failure must blame signer 2 (a *BadShareError naming it), never the
// honest signer 1, whom the coordinator would otherwise quarantine.
func FuzzAggregate(f *testing.F) {
	c := newCluster(f, 2, 3)
	f.Add([]byte{}, uint8(1), []byte("eyJhbGciOiJFZERTQSJ9.e30"))
	f.Add([]byte{0, 0, 0, 1}, uint8(1), []byte("m"))
	f.Add([]byte{0xff}, uint8(2), []byte("m"))
	f.Add([]byte{}, uint8(3), []byte("m"))
	f.Add(bytes.Repeat([]byte{0xff}, 35), uint8(0), []byte("m"))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8, msg []byte) {
		var cs []Commitment
		for _, s := range c.signers[:2] {
			enc, err := s.Commit(1, time.Now())
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
		for _, s := range c.signers[:2] {
			sh, err := s.Sign(msg, list)
			if err != nil {
				t.Fatal(err)
			}
			shares = append(shares, Share{SignerID: s.ID(), Encoded: sh})
		}
		shares[1].Encoded = tamper(shares[1].Encoded, b, mode)

		sig, err := c.group.Aggregate(msg, cs, shares)
		if err != nil {
			var bad *BadShareError
			if !errors.As(err, &bad) || bad.SignerID != 2 {
				t.Fatalf("Aggregate = %v, want a *BadShareError naming signer 2", err)
			}
			if c.group.VerifyShare(msg, cs, shares[0]) != nil {
				t.Fatal("the honest share does not verify")
			}
			return
		}
		if !ed25519.Verify(c.group.Public().PublicKey, msg, sig) {
			t.Fatal("Aggregate returned a signature that does not verify")
		}
	})
}

// FuzzSignHeldNonce gives signer 1 commitment lists that do carry one of
// its own outstanding nonces, beside an arbitrary commitment (possibly a
// copy of its own): nothing may panic; once the list decodes, the nonce
// is gone whatever the outcome, so it can never sign twice; errors wrap
// ErrInvalidInput; and a share is only made for a valid session, and is
// valid.
func FuzzSignHeldNonce(f *testing.F) {
	c := newCluster(f, 2, 3)
	own, _ := c.signers[0].Commit(1, time.Now())
	peer, _ := c.signers[1].Commit(1, time.Now())
	f.Add(peer[0], uint8(0), []byte("m"), uint8(0))
	f.Add(peer[0], uint8(0), []byte("m"), uint8(1))
	f.Add(own[0], uint8(0), []byte("m"), uint8(0))
	f.Add([]byte{1, 2, 3}, uint8(1), []byte(""), uint8(2))
	f.Add([]byte{}, uint8(3), []byte("m"), uint8(3))
	c.signers[0].Expire(time.Now().Add(time.Hour))
	c.signers[1].Expire(time.Now().Add(time.Hour))
	f.Fuzz(func(t *testing.T, other []byte, mode uint8, msg []byte, order uint8) {
		s := c.signers[0]
		defer s.Expire(time.Now().Add(time.Hour))
		enc, err := s.Commit(1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mine := enc[0]
		// The other entry is as long as a commitment: the list's own
		// framing is FuzzSignInputs' business.
		o := tamper(mine, other, mode)
		o = append(o, make([]byte, len(mine))...)[:len(mine)]
		entries := [][]byte{mine, o}
		if order%2 == 1 {
			entries[0], entries[1] = entries[1], entries[0]
		}
		list := []byte{mine[0], 0, 0}
		binary.LittleEndian.PutUint16(list[1:], uint16(len(entries)))
		for _, e := range entries {
			list = append(list, e...)
		}

		before := s.Outstanding()
		share, err := s.Sign(msg, list)
		// The nonce Sign looks up is that of the list's first commitment
		// of signer 1.
		if cl, derr := bfrost.DecodeList(list); derr == nil {
			if g := cl.Get(1); g != nil && bytes.Equal(g.Encode(), mine) && s.Outstanding() != before-1 {
				t.Fatalf("Sign (%v) left %d nonces of %d: its own nonce was not consumed", err, s.Outstanding(), before)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrUnknownCommitment) {
				t.Fatalf("Sign = %v, want ErrInvalidInput", err)
			}
			return
		}
		oc, err := c.group.DecodeCommitment(o)
		if err != nil || oc.SignerID == 1 {
			t.Fatalf("signed with a list whose other commitment is invalid (%v) or its own (%d)", err, oc.SignerID)
		}
		mc, err := c.group.DecodeCommitment(mine)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.group.VerifyShare(msg, []Commitment{mc, oc}, Share{SignerID: 1, Encoded: share}); err != nil {
			t.Fatalf("the share made does not verify: %v", err)
		}
		if _, err := s.Sign(msg, list); !errors.Is(err, ErrUnknownCommitment) {
			t.Fatalf("a second Sign with the same list = %v, want ErrUnknownCommitment", err)
		}
	})
}

// FuzzFinalizeRound2 gives participant 1 of a 2-of-3 key generation an
// arbitrary round-2 message from participant 2 (participant 3's is
// genuine), as a cheating participant can send one that decrypts: nothing
// may panic; a failure must be a *CheaterError naming participant 2 in
// round 2, so that the ceremony blames the cheater and no one else; and
// a key share, when made, belongs to the group every other participant
// computes.
func FuzzFinalizeRound2(f *testing.F) {
	r := startDKG(f, 2, 3)
	inbox := r.round2(f)
	genuine := inbox[1][2]
	f.Add([]byte{}, uint8(1))
	f.Add([]byte{0, 0, 1}, uint8(1))
	f.Add([]byte{0, 0, 0, 0, 0, 2}, uint8(1))
	f.Add([]byte{0xff}, uint8(2))
	f.Add([]byte{0, 0, 0, 0, 0}, uint8(3))
	f.Add(bytes.Repeat([]byte{0}, len(genuine)), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		// Participant 1 again, with a fresh polynomial: the others'
		// messages to it do not depend on it.
		d, err := NewDKG(1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r1 := clone(r.round1)
		if r1[1], err = d.Round1(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Round2From(r1); err != nil {
			t.Fatal(err)
		}
		msg := tamper(genuine, b, mode)
		ks, err := d.FinalizeFrom(map[uint16][]byte{2: msg, 3: bytes.Clone(inbox[1][3])})
		if err != nil {
			var ce *CheaterError
			if !errors.As(err, &ce) || ce.Participant != 2 || ce.Round != 2 {
				t.Fatalf("FinalizeFrom = %v, want a round-2 *CheaterError naming participant 2", err)
			}
			return
		}
		want, err := PublicGroupFromRound1(2, 3, r1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ks.Public.PublicKey, want.PublicKey) || !bytes.Equal(ks.Public.Shares[2], want.Shares[2]) ||
			!bytes.Equal(ks.Public.Shares[1], want.Shares[1]) {
			t.Fatal("participant 1 finished with a group the others do not compute")
		}
	})
}

// TestAggregateForeignCiphersuiteShare is FuzzAggregate's first crasher:
// a share that decodes as another ciphersuite's (here secp256k1's, by its
// first byte) made the library panic in Aggregate, so one signer could
// crash the coordinator. It must be blamed like any other bad share.
func TestAggregateForeignCiphersuiteShare(t *testing.T) {
	c := newCluster(t, 2, 3)
	msg := []byte("m")
	var cs []Commitment
	for _, s := range c.signers[:2] {
		enc, err := s.Commit(1, time.Now())
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
	for _, s := range c.signers[:2] {
		sh, err := s.Sign(msg, list)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, Share{SignerID: s.ID(), Encoded: sh})
	}
	shares[1].Encoded[0] ^= 1 // Ed25519's ciphersuite id 6 becomes 7
	var bad *BadShareError
	if _, err := c.group.Aggregate(msg, cs, shares); !errors.As(err, &bad) || bad.SignerID != 2 {
		t.Fatalf("Aggregate = %v, want a *BadShareError naming signer 2", err)
	}
	if err := c.group.VerifyShare(msg, cs, shares[1]); !errors.As(err, &bad) || bad.SignerID != 2 {
		t.Fatalf("VerifyShare = %v, want a *BadShareError naming signer 2", err)
	}
}
