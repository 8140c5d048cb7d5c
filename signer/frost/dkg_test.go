package frost

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// dkgRun is an in-memory key generation stopped between rounds, so tests
// can tamper with messages.
type dkgRun struct {
	t, n   uint16
	ps     map[uint16]*DKG
	round1 map[uint16][]byte
}

func startDKG(t testing.TB, th, n uint16) *dkgRun {
	t.Helper()
	r := &dkgRun{t: th, n: n, ps: map[uint16]*DKG{}, round1: map[uint16][]byte{}}
	for id := uint16(1); id <= n; id++ {
		d, err := NewDKG(id, th, n)
		if err != nil {
			t.Fatal(err)
		}
		r.ps[id] = d
		if r.round1[id], err = d.Round1(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// round2 runs round 2 and returns inbox[to][from].
func (r *dkgRun) round2(t testing.TB) map[uint16]map[uint16][]byte {
	t.Helper()
	inbox := map[uint16]map[uint16][]byte{}
	for from, d := range r.ps {
		out, err := d.Round2From(r.round1)
		if err != nil {
			t.Fatal(err)
		}
		for to, m := range out {
			if inbox[to] == nil {
				inbox[to] = map[uint16][]byte{}
			}
			inbox[to][from] = m
		}
	}
	return inbox
}

func clone(m map[uint16][]byte) map[uint16][]byte {
	out := make(map[uint16][]byte, len(m))
	for k, v := range m {
		out[k] = bytes.Clone(v)
	}
	return out
}

func TestPublicGroupFromRound1MatchesParticipants(t *testing.T) {
	for _, tc := range []struct{ th, n uint16 }{{2, 3}, {3, 5}} {
		r := startDKG(t, tc.th, tc.n)
		pub, err := PublicGroupFromRound1(tc.th, tc.n, r.round1)
		if err != nil {
			t.Fatal(err)
		}
		inbox := r.round2(t)
		for id, d := range r.ps {
			ks, err := d.FinalizeFrom(inbox[id])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ks.Public.PublicKey, pub.PublicKey) || len(ks.Public.Shares) != len(pub.Shares) {
				t.Fatalf("participant %d's group differs from the public computation", id)
			}
			for sid, s := range pub.Shares {
				if !bytes.Equal(ks.Public.Shares[sid], s) {
					t.Fatalf("participant %d: public share %d differs", id, sid)
				}
			}
		}
		if _, err := NewGroup(pub); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRound1CheaterNamed(t *testing.T) {
	r := startDKG(t, 2, 3)
	swapProof := func(m map[uint16][]byte) {
		// Participant 2's message with participant 3's proof (bytes 5..69:
		// R and z after the suite, sender and length header).
		copy(m[2][5:69], r.round1[3][5:69])
	}
	tests := []struct {
		name    string
		tamper  func(map[uint16][]byte)
		culprit uint16
	}{
		{"proof of knowledge of another participant", swapProof, 2},
		{"claims another sender", func(m map[uint16][]byte) { m[3] = bytes.Clone(r.round1[2]) }, 3},
		{"truncated", func(m map[uint16][]byte) { m[2] = m[2][:len(m[2])-1] }, 2},
		{"commitment is the identity", func(m map[uint16][]byte) {
			last := m[3][len(m[3])-32:]
			clear(last)
			last[0] = 1 // the encoding of the identity point
		}, 3},
		{"wrong suite", func(m map[uint16][]byte) { m[2][0] = 1 }, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := clone(r.round1)
			tc.tamper(m)
			var ce *CheaterError
			err := VerifyRound1(tc.culprit, 2, 3, m[tc.culprit])
			if !errors.As(err, &ce) || ce.Participant != tc.culprit || ce.Round != 1 {
				t.Fatalf("VerifyRound1: %v, want a cheater error naming %d", err, tc.culprit)
			}
			_, err = PublicGroupFromRound1(2, 3, m)
			if !errors.As(err, &ce) || ce.Participant != tc.culprit {
				t.Fatalf("PublicGroupFromRound1: %v, want a cheater error naming %d", err, tc.culprit)
			}
			d, err := NewDKG(1, 2, 3)
			if err != nil {
				t.Fatal(err)
			}
			own, err := d.Round1()
			if err != nil {
				t.Fatal(err)
			}
			m[1] = own
			_, err = d.Round2From(m)
			if !errors.As(err, &ce) || ce.Participant != tc.culprit {
				t.Fatalf("Round2From: %v, want a cheater error naming %d", err, tc.culprit)
			}
		})
	}
}

func TestRound2ValidMessagesAccepted(t *testing.T) {
	r := startDKG(t, 2, 3)
	for id := uint16(1); id <= 3; id++ {
		if err := VerifyRound1(id, 2, 3, r.round1[id]); err != nil {
			t.Fatalf("participant %d: %v", id, err)
		}
	}
}

func TestRound2OwnMessageMustBeUnchanged(t *testing.T) {
	r := startDKG(t, 2, 3)
	m := clone(r.round1)
	m[1] = bytes.Clone(r.round1[2])
	if _, err := r.ps[1].Round2From(m); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("got %v, want ErrInvalidInput", err)
	}
	delete(m, 1)
	if _, err := r.ps[1].Round2From(m); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("got %v, want ErrInvalidInput", err)
	}
}

func TestRound2CheaterNamed(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(inbox map[uint16]map[uint16][]byte)
		culprit uint16
	}{
		{"share of another sender relabelled", func(in map[uint16]map[uint16][]byte) {
			m := bytes.Clone(in[1][3])
			m[1], m[2] = 2, 0
			in[1][2] = m
		}, 2},
		{"share for another recipient", func(in map[uint16]map[uint16][]byte) { in[1][3] = bytes.Clone(in[2][3]) }, 3},
		{"flipped share", func(in map[uint16]map[uint16][]byte) { in[1][2][5] ^= 1 }, 2},
		{"truncated", func(in map[uint16]map[uint16][]byte) { in[1][3] = in[1][3][:10] }, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startDKG(t, 2, 3)
			inbox := r.round2(t)
			tc.tamper(inbox)
			_, err := r.ps[1].FinalizeFrom(inbox[1])
			var ce *CheaterError
			if !errors.As(err, &ce) || ce.Participant != tc.culprit || ce.Round != 2 {
				t.Fatalf("got %v, want a round-2 cheater error naming %d", err, tc.culprit)
			}
			// The honest ones are unaffected.
			if _, err := r.ps[2].FinalizeFrom(inbox[2]); err != nil && tc.name != "share for another recipient" {
				t.Fatal(err)
			}
		})
	}
}

func TestFinalizeThenSignWithPublicGroup(t *testing.T) {
	r := startDKG(t, 3, 5)
	inbox := r.round2(t)
	pub, err := PublicGroupFromRound1(3, 5, r.round1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGroup(pub)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{group: g}
	for id := uint16(1); id <= 5; id++ {
		ks, err := r.ps[id].FinalizeFrom(inbox[id])
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(g, ks.Secret, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.signers = append(c.signers, s)
		// Closed after finalize: no second use.
		if _, err := r.ps[id].FinalizeFrom(inbox[id]); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("finalize twice: %v", err)
		}
	}
	msg := []byte("dkg then sign")
	sig, err := c.sign(t, msg, 0, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub.PublicKey, msg, sig) {
		t.Fatal("signature does not verify")
	}
}

func TestClosedDKGRefuses(t *testing.T) {
	d, err := NewDKG(1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	if _, err := d.Round1(); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("got %v", err)
	}
}

// FuzzVerifyRound1 feeds arbitrary round-1 messages to the public checks:
// nothing may panic, and an accepted message must also yield a group.
func FuzzVerifyRound1(f *testing.F) {
	r := startDKG(f, 2, 3)
	f.Add(uint16(1), r.round1[1])
	f.Add(uint16(2), r.round1[2])
	f.Add(uint16(2), r.round1[1])
	f.Add(uint16(3), []byte{6, 3, 0, 2, 0})
	f.Fuzz(func(t *testing.T, id uint16, msg []byte) {
		if err := VerifyRound1(id, 2, 3, msg); err != nil {
			return
		}
		m := clone(r.round1)
		m[id] = msg
		if _, err := PublicGroupFromRound1(2, 3, m); err != nil {
			t.Fatalf("accepted message %x of %d yields no group: %v", msg, id, err)
		}
	})
}
