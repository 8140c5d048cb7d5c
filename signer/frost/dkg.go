package frost

import (
	"crypto/ed25519"
	"fmt"

	"github.com/bytemare/dkg"
	"github.com/bytemare/ecc"
	"github.com/bytemare/secret-sharing/keys"
)

// DKG is one participant of a FROST distributed key generation (no trusted
// dealer): every participant draws its own polynomial, broadcasts
// commitments with a proof of knowledge (round 1), sends each peer a
// secret share over a confidential channel (round 2), and ends with its own
// key share, which no other party ever sees. The caller moves the messages;
// round-1 messages must be authenticated, round-2 ones also confidential.
type DKG struct {
	p        *dkg.Participant
	id, t, n uint16
	round1   [][]byte
}

// NewDKG starts participant id of a t-of-n key generation.
func NewDKG(id, t, n uint16) (*DKG, error) {
	lib.Lock()
	defer lib.Unlock()
	p, err := dkg.Edwards25519Sha512.NewParticipant(id, t, n)
	if err != nil {
		return nil, fmt.Errorf("%w: dkg participant %d (%d of %d): %w", ErrInvalidInput, id, t, n, err)
	}
	return &DKG{p: p, id: id, t: t, n: n}, nil
}

// Round1 returns this participant's broadcast message.
func (d *DKG) Round1() ([]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	r1, err := d.p.Start()
	if err != nil {
		return nil, fmt.Errorf("frost: dkg round 1: %w", err)
	}
	return r1.Encode(), nil
}

func decodeRound1(all [][]byte) ([]*dkg.Round1Data, error) {
	out := make([]*dkg.Round1Data, len(all))
	for i, b := range all {
		out[i] = new(dkg.Round1Data)
		if err := out[i].Decode(b); err != nil {
			return nil, fmt.Errorf("%w: dkg round-1 message %d: %w", ErrInvalidInput, i, err)
		}
	}
	return out, nil
}

// Round2 takes every participant's round-1 message (its own included) and
// returns the secret round-2 message for each peer, keyed by recipient.
// A round-1 message with a bad proof fails with an error naming its sender.
func (d *DKG) Round2(round1 [][]byte) (map[uint16][]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	r1, err := decodeRound1(round1)
	if err != nil {
		return nil, err
	}
	r2, err := d.p.Continue(r1)
	if err != nil {
		return nil, fmt.Errorf("frost: dkg round 2: %w", err)
	}
	d.round1 = round1
	out := make(map[uint16][]byte, len(r2))
	for to, m := range r2 {
		out[to] = m.Encode()
	}
	return out, nil
}

// KeyShare is the result of a key generation for one participant.
type KeyShare struct {
	ID uint16
	// Secret is the encoded secret key share: seal it, never store it plain.
	Secret []byte
	Public PublicGroup
}

// Finalize takes the round-2 messages addressed to this participant and
// returns its key share with the group's public description (computed from
// the round-1 commitments, so every participant derives the same one).
func (d *DKG) Finalize(round2 [][]byte) (*KeyShare, error) {
	lib.Lock()
	defer lib.Unlock()
	r1, err := decodeRound1(d.round1)
	if err != nil {
		return nil, err
	}
	r2 := make([]*dkg.Round2Data, len(round2))
	for i, b := range round2 {
		r2[i] = new(dkg.Round2Data)
		if err := r2[i].Decode(b); err != nil {
			return nil, fmt.Errorf("%w: dkg round-2 message %d: %w", ErrInvalidInput, i, err)
		}
	}
	ks, err := d.p.Finalize(r1, r2)
	if err != nil {
		return nil, fmt.Errorf("frost: dkg finalize: %w", err)
	}
	coms := make([][]*ecc.Element, len(r1))
	for i, m := range r1 {
		coms[i] = m.Commitment
	}
	pub := PublicGroup{
		Threshold:  d.t,
		MaxSigners: d.n,
		PublicKey:  ed25519.PublicKey(ks.VerificationKey().Encode()),
		Shares:     map[uint16][]byte{},
	}
	for id := uint16(1); id <= d.n; id++ {
		pk, err := dkg.ComputeParticipantPublicKey(dkg.Edwards25519Sha512, id, coms)
		if err != nil {
			return nil, fmt.Errorf("frost: dkg public share %d: %w", id, err)
		}
		pks, err := keys.NewPublicKeyShare(ecc.Edwards25519Sha512, id, pk, nil)
		if err != nil {
			return nil, fmt.Errorf("frost: dkg public share %d: %w", id, err)
		}
		pub.Shares[id] = pks.Encode()
	}
	if string(pub.Shares[d.id]) != string(ks.PublicKeyShare().Encode()) &&
		!ks.PublicKey().Equal(mustPoint(pub.Shares[d.id])) {
		return nil, fmt.Errorf("frost: dkg: own public share disagrees with the commitments")
	}
	return &KeyShare{ID: d.id, Secret: ks.Encode(), Public: pub}, nil
}

func mustPoint(enc []byte) *ecc.Element {
	p := new(keys.PublicKeyShare)
	if err := p.Decode(enc); err != nil {
		return ecc.Edwards25519Sha512.NewElement()
	}
	return p.PublicKey()
}
