package frost

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/bytemare/dkg"
	"github.com/bytemare/ecc"
	secretsharing "github.com/bytemare/secret-sharing"
	"github.com/bytemare/secret-sharing/keys"
)

// dkgSuite is the DKG ciphersuite matching FROST(Ed25519, SHA-512).
const dkgSuite = dkg.Edwards25519Sha512

// CheaterError names the participant of a key generation whose message is
// provably invalid: a round-1 message that does not decode, claims another
// sender, carries the wrong number of commitments or a proof of knowledge
// that does not verify, or a round-2 share that does not decode or is
// inconsistent with its sender's round-1 commitments. Reason never carries
// secret material.
type CheaterError struct {
	Participant uint16
	Round       int
	Reason      string
}

func (e *CheaterError) Error() string {
	return fmt.Sprintf("frost: dkg round-%d message of participant %d is invalid: %s", e.Round, e.Participant, e.Reason)
}

// DKG is one participant of a FROST distributed key generation (no trusted
// dealer): every participant draws its own polynomial, broadcasts
// commitments with a proof of knowledge (round 1), sends each peer a
// secret share over a confidential channel (round 2), and ends with its own
// key share, which no other party ever sees. The caller moves the messages;
// round-1 messages must be authenticated, round-2 ones also confidential.
//
// A DKG is not safe for concurrent use by several goroutines (the calls are
// sequential rounds anyway); distinct DKGs are.
type DKG struct {
	p        *dkg.Participant
	id, t, n uint16
	own      []byte
	round1   map[uint16][]byte
}

// NewDKG starts participant id of a t-of-n key generation.
func NewDKG(id, t, n uint16) (*DKG, error) {
	lib.Lock()
	defer lib.Unlock()
	p, err := dkgSuite.NewParticipant(id, t, n)
	if err != nil {
		return nil, fmt.Errorf("%w: dkg participant %d (%d of %d): %w", ErrInvalidInput, id, t, n, err)
	}
	return &DKG{p: p, id: id, t: t, n: n}, nil
}

// Round1 returns this participant's broadcast message.
func (d *DKG) Round1() ([]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	if d.p == nil {
		return nil, fmt.Errorf("%w: dkg participant closed", ErrInvalidInput)
	}
	r1, err := d.p.Start()
	if err != nil {
		return nil, fmt.Errorf("frost: dkg round 1: %w", err)
	}
	d.own = r1.Encode()
	return append([]byte(nil), d.own...), nil
}

// decodeRound1From decodes participant id's round-1 message of a t-of-n
// key generation and checks everything that needs no secret. The caller
// holds lib. Failures are a *CheaterError naming id.
func decodeRound1From(id, t, n uint16, msg []byte) (*dkg.Round1Data, error) {
	cheat := func(format string, a ...any) error {
		return &CheaterError{Participant: id, Round: 1, Reason: fmt.Sprintf(format, a...)}
	}
	if id == 0 || id > n {
		return nil, fmt.Errorf("%w: participant %d of %d", ErrInvalidInput, id, n)
	}
	r := new(dkg.Round1Data)
	if err := r.Decode(msg); err != nil {
		return nil, cheat("does not decode")
	}
	if r.Group != ecc.Edwards25519Sha512 {
		return nil, cheat("wrong ciphersuite")
	}
	if r.SenderIdentifier != id {
		return nil, cheat("claims to come from participant %d", r.SenderIdentifier)
	}
	if len(r.Commitment) != int(t) {
		return nil, cheat("%d commitments for threshold %d", len(r.Commitment), t)
	}
	for i, c := range r.Commitment {
		if c.IsIdentity() {
			return nil, cheat("commitment %d is the identity", i)
		}
	}
	ok, err := dkg.FrostVerifyZeroKnowledgeProof(dkgSuite, id, r.Commitment[0], r.ProofOfKnowledge)
	if err != nil || !ok {
		return nil, cheat("proof of knowledge does not verify")
	}
	return r, nil
}

// VerifyRound1 checks participant id's round-1 message of a t-of-n key
// generation without any secret, as anyone relaying it can: it must
// decode, come from id, carry t commitments, and prove knowledge of its
// secret. It fails with a *CheaterError naming id.
func VerifyRound1(id, t, n uint16, msg []byte) error {
	lib.Lock()
	defer lib.Unlock()
	_, err := decodeRound1From(id, t, n, msg)
	return err
}

// Round2 takes every participant's round-1 message (its own included, in
// any order) and returns the secret round-2 message for each peer, keyed
// by recipient. An invalid message fails with a *CheaterError naming its
// sender, when the sender can be told; otherwise the error wraps
// [ErrInvalidInput].
func (d *DKG) Round2(round1 [][]byte) (map[uint16][]byte, error) {
	byID := make(map[uint16][]byte, len(round1))
	for i, b := range round1 {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: dkg round-1 message %d is too short", ErrInvalidInput, i)
		}
		// The sender is the little-endian uint16 after the suite byte.
		from := uint16(b[1]) | uint16(b[2])<<8
		if _, dup := byID[from]; dup {
			return nil, fmt.Errorf("%w: two dkg round-1 messages from participant %d", ErrInvalidInput, from)
		}
		byID[from] = b
	}
	if _, ok := byID[d.id]; !ok {
		byID[d.id] = d.own
	}
	return d.Round2From(byID)
}

// Round2From is [DKG.Round2] with the round-1 messages keyed by the
// participant the caller received them from: exactly one for each of
// 1..n, this participant's own included and unchanged. A message that is
// invalid or comes from someone else fails with a *CheaterError naming
// the participant it was received from.
//
// The returned messages carry secret shares: encrypt them to their
// recipients and wipe them.
func (d *DKG) Round2From(round1 map[uint16][]byte) (map[uint16][]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	if d.p == nil {
		return nil, fmt.Errorf("%w: dkg participant closed", ErrInvalidInput)
	}
	if d.own == nil {
		return nil, fmt.Errorf("%w: dkg round 2 before round 1", ErrInvalidInput)
	}
	if len(round1) != int(d.n) {
		return nil, fmt.Errorf("%w: %d dkg round-1 messages for %d participants", ErrInvalidInput, len(round1), d.n)
	}
	if !bytes.Equal(round1[d.id], d.own) {
		return nil, fmt.Errorf("%w: dkg round-1 messages do not carry this participant's own unchanged", ErrInvalidInput)
	}
	list := make([]*dkg.Round1Data, 0, d.n)
	for id := uint16(1); id <= d.n; id++ {
		msg, ok := round1[id]
		if !ok {
			return nil, fmt.Errorf("%w: no dkg round-1 message from participant %d", ErrInvalidInput, id)
		}
		r, err := decodeRound1From(id, d.t, d.n, msg)
		if err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	r2, err := d.p.Continue(list)
	if err != nil {
		return nil, fmt.Errorf("frost: dkg round 2: %w", err)
	}
	d.round1 = make(map[uint16][]byte, len(round1))
	for id, m := range round1 {
		d.round1[id] = append([]byte(nil), m...)
	}
	out := make(map[uint16][]byte, len(r2))
	for to, m := range r2 {
		out[to] = m.Encode()
		m.SecretShare.Zero()
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

// Finalize takes the round-2 messages addressed to this participant (one
// from every peer, in any order) and returns its key share with the
// group's public description (computed from the round-1 commitments, so
// every participant derives the same one). A share inconsistent with its
// sender's commitments fails with a *CheaterError naming the sender.
func (d *DKG) Finalize(round2 [][]byte) (*KeyShare, error) {
	byID := make(map[uint16][]byte, len(round2))
	for i, b := range round2 {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: dkg round-2 message %d is too short", ErrInvalidInput, i)
		}
		from := uint16(b[1]) | uint16(b[2])<<8
		if _, dup := byID[from]; dup {
			return nil, fmt.Errorf("%w: two dkg round-2 messages from participant %d", ErrInvalidInput, from)
		}
		byID[from] = b
	}
	return d.FinalizeFrom(byID)
}

// FinalizeFrom is [DKG.Finalize] with the round-2 messages keyed by the
// participant the caller received them from: exactly one from each peer.
// A message that does not decode, is not from that peer to this
// participant, or carries a share inconsistent with the peer's round-1
// commitments fails with a *CheaterError naming the peer. The caller
// should wipe the messages afterwards; the returned Secret too, once
// sealed.
func (d *DKG) FinalizeFrom(round2 map[uint16][]byte) (*KeyShare, error) {
	lib.Lock()
	defer lib.Unlock()
	if d.p == nil {
		return nil, fmt.Errorf("%w: dkg participant closed", ErrInvalidInput)
	}
	if d.round1 == nil {
		return nil, fmt.Errorf("%w: dkg finalize before round 2", ErrInvalidInput)
	}
	if len(round2) != int(d.n)-1 {
		return nil, fmt.Errorf("%w: %d dkg round-2 messages for %d peers", ErrInvalidInput, len(round2), d.n-1)
	}
	r1 := make([]*dkg.Round1Data, 0, d.n)
	coms := make(map[uint16][]*ecc.Element, d.n)
	for id := uint16(1); id <= d.n; id++ {
		r, err := decodeRound1From(id, d.t, d.n, d.round1[id])
		if err != nil {
			return nil, err
		}
		r1 = append(r1, r)
		coms[id] = r.Commitment
	}
	g := ecc.Edwards25519Sha512
	r2 := make([]*dkg.Round2Data, 0, len(round2))
	defer func() {
		for _, m := range r2 {
			if m.SecretShare != nil {
				m.SecretShare.Zero()
			}
		}
	}()
	for from := uint16(1); from <= d.n; from++ {
		if from == d.id {
			continue
		}
		msg, ok := round2[from]
		if !ok {
			return nil, fmt.Errorf("%w: no dkg round-2 message from participant %d", ErrInvalidInput, from)
		}
		cheat := func(reason string) error { return &CheaterError{Participant: from, Round: 2, Reason: reason} }
		m := new(dkg.Round2Data)
		if err := m.Decode(msg); err != nil {
			return nil, cheat("does not decode")
		}
		r2 = append(r2, m)
		if m.Group != g {
			return nil, cheat("wrong ciphersuite")
		}
		if m.SenderIdentifier != from || m.RecipientIdentifier != d.id {
			return nil, cheat(fmt.Sprintf("labelled %d→%d", m.SenderIdentifier, m.RecipientIdentifier))
		}
		if m.SecretShare.IsZero() {
			return nil, cheat("share is zero")
		}
		pk := g.Base().Multiply(m.SecretShare)
		if !secretsharing.Verify(g, d.id, pk, coms[from]) {
			return nil, cheat("share is inconsistent with the sender's commitments")
		}
	}
	ks, err := d.p.Finalize(r1, r2)
	if err != nil {
		return nil, fmt.Errorf("frost: dkg finalize: %w", err)
	}
	pub, err := publicGroup(d.t, d.n, r1)
	if err != nil {
		return nil, err
	}
	if string(pub.PublicKey) != string(ks.VerificationKey().Encode()) {
		return nil, fmt.Errorf("frost: dkg: group key disagrees with the commitments")
	}
	if !ks.PublicKey().Equal(mustPoint(pub.Shares[d.id])) {
		return nil, fmt.Errorf("frost: dkg: own public share disagrees with the commitments")
	}
	out := &KeyShare{ID: d.id, Secret: ks.Encode(), Public: pub}
	d.closeLocked()
	return out, nil
}

// Close drops the participant's state. The library keeps its polynomial
// and own share in values it gives no handle to (it zeroes the polynomial
// itself in round 2 and the own share on finalize); Close releases them to
// the garbage collector, which is as far as Go allows. It is idempotent.
func (d *DKG) Close() {
	lib.Lock()
	defer lib.Unlock()
	d.closeLocked()
}

func (d *DKG) closeLocked() {
	d.p = nil
	d.round1 = nil
}

// PublicGroupFromRound1 computes the public description of the group a
// t-of-n key generation produces from its round-1 messages (keyed by
// sender, exactly 1..n), without any secret: the group key and every
// participant's public key share. Anyone holding the broadcasts (a relay,
// an auditor reading a transcript) gets what the participants get. An
// invalid message fails with a *CheaterError naming its sender.
func PublicGroupFromRound1(t, n uint16, round1 map[uint16][]byte) (PublicGroup, error) {
	if t < 1 || t > n {
		return PublicGroup{}, fmt.Errorf("%w: threshold %d of %d", ErrInvalidInput, t, n)
	}
	if len(round1) != int(n) {
		return PublicGroup{}, fmt.Errorf("%w: %d dkg round-1 messages for %d participants", ErrInvalidInput, len(round1), n)
	}
	lib.Lock()
	defer lib.Unlock()
	r1 := make([]*dkg.Round1Data, 0, n)
	for id := uint16(1); id <= n; id++ {
		msg, ok := round1[id]
		if !ok {
			return PublicGroup{}, fmt.Errorf("%w: no dkg round-1 message from participant %d", ErrInvalidInput, id)
		}
		r, err := decodeRound1From(id, t, n, msg)
		if err != nil {
			return PublicGroup{}, err
		}
		r1 = append(r1, r)
	}
	return publicGroup(t, n, r1)
}

// publicGroup derives the group from verified round-1 messages ordered by
// sender. The caller holds lib.
func publicGroup(t, n uint16, r1 []*dkg.Round1Data) (PublicGroup, error) {
	coms := make([][]*ecc.Element, len(r1))
	for i, m := range r1 {
		coms[i] = m.Commitment
	}
	vk, err := dkg.VerificationKeyFromCommitments(dkgSuite, coms)
	if err != nil {
		return PublicGroup{}, fmt.Errorf("%w: dkg commitments: %w", ErrInvalidInput, err)
	}
	pub := PublicGroup{
		Threshold:  t,
		MaxSigners: n,
		PublicKey:  ed25519.PublicKey(vk.Encode()),
		Shares:     make(map[uint16][]byte, n),
	}
	for id := uint16(1); id <= n; id++ {
		pk, err := dkg.ComputeParticipantPublicKey(dkgSuite, id, coms)
		if err != nil {
			return PublicGroup{}, fmt.Errorf("frost: dkg public share %d: %w", id, err)
		}
		pks, err := keys.NewPublicKeyShare(ecc.Edwards25519Sha512, id, pk, nil)
		if err != nil {
			return PublicGroup{}, fmt.Errorf("frost: dkg public share %d: %w", id, err)
		}
		pub.Shares[id] = pks.Encode()
	}
	return pub, nil
}

func mustPoint(enc []byte) *ecc.Element {
	p := new(keys.PublicKeyShare)
	if err := p.Decode(enc); err != nil {
		return ecc.Edwards25519Sha512.NewElement()
	}
	return p.PublicKey()
}
