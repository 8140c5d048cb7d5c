// Package frost is frostmint's only door to the FROST implementation
// (github.com/bytemare/frost, RFC 9591, ciphersuite FROST(Ed25519, SHA-512))
// and to its distributed key generation (github.com/bytemare/dkg). Keeping
// every call in one package lets it defend against the library's two hazards:
//
//   - The library is not safe for concurrent use, even on separate objects: it
//     keeps hash state at package level. Every call into it from this process
//     goes through one lock ([lib]), so callers may use this package from any
//     number of goroutines. A -race stress test proves it.
//   - A Signer state restored from bytes still holds its nonces and will sign
//     a second message with one of them, which leaks the secret share. This
//     package never encodes, persists or restores a Signer or its nonces: they
//     live in memory, each nonce signs at most once (it is consumed before the
//     share is returned, and also when signing fails), and unused nonces
//     expire. After a restart, every earlier commitment is unknown.
//
// The group's signature is an ordinary Ed25519 signature (RFC 8032) over the
// message, so verifiers need nothing but crypto/ed25519.
package frost

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	bfrost "github.com/bytemare/frost"
	"github.com/bytemare/secret-sharing/keys"
)

// lib serialises every call into the FROST and DKG libraries in this
// process. It is package-level on purpose: the state it protects is
// package-level in the library.
var lib sync.Mutex

const suite = bfrost.Ed25519

// Errors; all returned errors wrap one of these or describe bad input.
var (
	// ErrUnknownCommitment means this signer does not hold (any longer) the
	// nonce for its commitment in the list: it was used, expired, or issued
	// by an earlier process.
	ErrUnknownCommitment = errors.New("frost: commitment unknown to this signer")
	// ErrInvalidInput means an encoded value did not decode or is
	// inconsistent with the group.
	ErrInvalidInput = errors.New("frost: invalid input")
	// ErrTooManyNonces means the signer holds its maximum of outstanding nonces.
	ErrTooManyNonces = errors.New("frost: too many outstanding nonces")
)

// BadShareError names a signer whose signature share did not verify.
type BadShareError struct{ SignerID uint16 }

func (e *BadShareError) Error() string {
	return fmt.Sprintf("frost: signature share of signer %d is invalid", e.SignerID)
}

// PublicGroup is the public description of a FROST group: what a coordinator
// needs to verify shares and aggregate, and what signers need to sign.
type PublicGroup struct {
	Threshold  uint16 `json:"threshold"`
	MaxSigners uint16 `json:"max_signers"`
	// PublicKey is the group verification key, an Ed25519 public key.
	PublicKey ed25519.PublicKey `json:"public_key"`
	// Shares maps a signer id to its encoded public key share.
	Shares map[uint16][]byte `json:"public_key_shares"`
}

// ReadGroupFile reads a JSON [PublicGroup] and returns the checked Group.
func ReadGroupFile(path string) (*Group, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("frost: reading group file: %w", err)
	}
	var pg PublicGroup
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&pg); err != nil {
		return nil, fmt.Errorf("%w: group file %s: %w", ErrInvalidInput, path, err)
	}
	return NewGroup(pg)
}

// Group is an initialised [PublicGroup], safe for concurrent use.
type Group struct {
	pub  PublicGroup
	conf *bfrost.Configuration
}

// NewGroup checks pg and returns a Group. Errors wrap [ErrInvalidInput].
func NewGroup(pg PublicGroup) (*Group, error) {
	if len(pg.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: group key is %d bytes", ErrInvalidInput, len(pg.PublicKey))
	}
	if pg.Threshold < 1 || pg.Threshold > pg.MaxSigners {
		return nil, fmt.Errorf("%w: threshold %d of %d", ErrInvalidInput, pg.Threshold, pg.MaxSigners)
	}
	if len(pg.Shares) != int(pg.MaxSigners) {
		return nil, fmt.Errorf("%w: %d public key shares for %d signers", ErrInvalidInput, len(pg.Shares), pg.MaxSigners)
	}
	lib.Lock()
	defer lib.Unlock()
	g := suite.Group()
	vk := g.NewElement()
	if err := vk.Decode(pg.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: group key: %w", ErrInvalidInput, err)
	}
	pks := make([]*keys.PublicKeyShare, 0, len(pg.Shares))
	for id, enc := range pg.Shares {
		p := new(keys.PublicKeyShare)
		if err := p.Decode(enc); err != nil {
			return nil, fmt.Errorf("%w: public key share %d: %w", ErrInvalidInput, id, err)
		}
		if p.Identifier() != id {
			return nil, fmt.Errorf("%w: public key share listed as %d is for %d", ErrInvalidInput, id, p.Identifier())
		}
		pks = append(pks, p)
	}
	sort.Slice(pks, func(i, j int) bool { return pks[i].Identifier() < pks[j].Identifier() })
	conf := &bfrost.Configuration{
		Ciphersuite:           suite,
		Threshold:             pg.Threshold,
		MaxSigners:            pg.MaxSigners,
		VerificationKey:       vk,
		SignerPublicKeyShares: pks,
	}
	if err := conf.Init(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	pub := pg
	pub.PublicKey = append(ed25519.PublicKey(nil), pg.PublicKey...)
	return &Group{pub: pub, conf: conf}, nil
}

// Public returns the group's public description.
func (g *Group) Public() PublicGroup { return g.pub }

// Commitment is one signer's decoded nonce commitment.
type Commitment struct {
	SignerID uint16
	ID       uint64
	Encoded  []byte
	// dec is Encoded decoded and checked by DecodeCommitment, so that a
	// session does not decode it again (twice: for its list, then to
	// aggregate); nil in a Commitment made otherwise. Only read, and only
	// under lib.
	dec *bfrost.Commitment
}

// DecodeCommitment decodes and checks one encoded commitment against the
// group. Errors wrap [ErrInvalidInput].
func (g *Group) DecodeCommitment(enc []byte) (Commitment, error) {
	lib.Lock()
	defer lib.Unlock()
	c := new(bfrost.Commitment)
	if err := c.Decode(enc); err != nil {
		return Commitment{}, fmt.Errorf("%w: commitment: %w", ErrInvalidInput, err)
	}
	if err := g.conf.ValidateCommitment(c); err != nil {
		return Commitment{}, fmt.Errorf("%w: commitment: %w", ErrInvalidInput, err)
	}
	return Commitment{SignerID: c.SignerID, ID: c.CommitmentID, Encoded: append([]byte(nil), enc...), dec: c}, nil
}

// EncodeList builds the encoded commitment list of one signing session from
// the participants' commitments (any order). Errors wrap [ErrInvalidInput].
func (g *Group) EncodeList(cs []Commitment) ([]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	list, err := g.decodeCommitments(cs)
	if err != nil {
		return nil, err
	}
	return list.Encode(), nil
}

func (g *Group) decodeCommitments(cs []Commitment) (bfrost.CommitmentList, error) {
	list := make(bfrost.CommitmentList, 0, len(cs))
	for _, c := range cs {
		if c.dec != nil {
			list = append(list, c.dec)
			continue
		}
		d := new(bfrost.Commitment)
		if err := d.Decode(c.Encoded); err != nil {
			return nil, fmt.Errorf("%w: commitment of signer %d: %w", ErrInvalidInput, c.SignerID, err)
		}
		list = append(list, d)
	}
	list.Sort()
	if err := g.conf.ValidateCommitmentList(list); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return list, nil
}

// Share is one signer's encoded signature share.
type Share struct {
	SignerID uint16
	Encoded  []byte
}

// Aggregate combines the shares of the session described by cs into an
// Ed25519 signature over msg. It aggregates without per-share checks (they
// cost O(t²)), verifies the result once with crypto/ed25519, and only when
// that fails checks the shares one by one to name the culprit: the error
// is then a *[BadShareError]. Other errors wrap [ErrInvalidInput].
func (g *Group) Aggregate(msg []byte, cs []Commitment, shares []Share) ([]byte, error) {
	sig, err := g.aggregate(msg, cs, shares)
	if err != nil {
		return nil, err
	}
	if ed25519.Verify(g.pub.PublicKey, msg, sig) {
		return sig, nil
	}
	if bad := g.findBadShare(msg, cs, shares); bad != nil {
		return nil, bad
	}
	return nil, fmt.Errorf("%w: aggregate signature does not verify", ErrInvalidInput)
}

func (g *Group) aggregate(msg []byte, cs []Commitment, shares []Share) ([]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	list, err := g.decodeCommitments(cs)
	if err != nil {
		return nil, err
	}
	if len(shares) != len(list) {
		return nil, fmt.Errorf("%w: %d shares for %d commitments", ErrInvalidInput, len(shares), len(list))
	}
	ss := make([]*bfrost.SignatureShare, 0, len(shares))
	for _, s := range shares {
		d := new(bfrost.SignatureShare)
		if err := d.Decode(s.Encoded); err != nil {
			return nil, &BadShareError{SignerID: s.SignerID}
		}
		// A share of another ciphersuite decodes, but the library panics
		// on it ("wrong group"): it is as bad as one that does not decode.
		if d.Group != suite.Group() || d.SignerIdentifier != s.SignerID || list.Get(s.SignerID) == nil {
			return nil, &BadShareError{SignerID: s.SignerID}
		}
		ss = append(ss, d)
	}
	sig, err := g.conf.AggregateSignatures(msg, ss, list, false)
	if err != nil {
		return nil, fmt.Errorf("%w: aggregate: %w", ErrInvalidInput, err)
	}
	enc := sig.Encode()
	if len(enc) != 1+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature encoding of %d bytes", ErrInvalidInput, len(enc))
	}
	// Encode() is a one-byte ciphersuite id, then R || z as in RFC 8032.
	return enc[1:], nil
}

func (g *Group) findBadShare(msg []byte, cs []Commitment, shares []Share) error {
	lib.Lock()
	defer lib.Unlock()
	list, err := g.decodeCommitments(cs)
	if err != nil {
		return err
	}
	for _, s := range shares {
		d := new(bfrost.SignatureShare)
		if err := d.Decode(s.Encoded); err != nil || d.Group != suite.Group() {
			return &BadShareError{SignerID: s.SignerID}
		}
		if err := g.conf.VerifySignatureShare(d, msg, list); err != nil {
			return &BadShareError{SignerID: s.SignerID}
		}
	}
	return nil
}

// VerifyShare checks one share of a session. It returns a *[BadShareError]
// when the share is invalid.
func (g *Group) VerifyShare(msg []byte, cs []Commitment, s Share) error {
	return g.findBadShare(msg, cs, []Share{s})
}

// Signer holds one participant's secret share and its outstanding nonces,
// in memory only. It is safe for concurrent use.
type Signer struct {
	group *Group
	s     *bfrost.Signer
	id    uint16
	// issued records when each outstanding nonce was made, for expiry.
	issued  map[uint64]time.Time
	maxLive int
	// reserved counts nonces a Commit under way has yet to make: they
	// count against maxLive already.
	reserved int
	closed   bool
}

// NewSigner returns a Signer for the encoded secret key share (see
// [KeyShare.Secret]). maxLive bounds the outstanding nonces. Errors wrap
// [ErrInvalidInput]; they never contain secret material.
func NewSigner(g *Group, secret []byte, maxLive int) (*Signer, error) {
	lib.Lock()
	defer lib.Unlock()
	ks := new(keys.KeyShare)
	if err := ks.Decode(secret); err != nil {
		return nil, fmt.Errorf("%w: key share does not decode", ErrInvalidInput)
	}
	want, ok := g.pub.Shares[ks.Identifier()]
	if !ok {
		return nil, fmt.Errorf("%w: key share id %d is not in the group", ErrInvalidInput, ks.Identifier())
	}
	if pt := publicPoint(want); pt == nil || string(ks.PublicKey().Encode()) != string(pt) {
		return nil, fmt.Errorf("%w: key share %d does not match the group's public key share", ErrInvalidInput, ks.Identifier())
	}
	s, err := g.conf.Signer(ks)
	if err != nil {
		return nil, fmt.Errorf("%w: key share %d: %w", ErrInvalidInput, ks.Identifier(), err)
	}
	if maxLive <= 0 {
		maxLive = 4096
	}
	return &Signer{group: g, s: s, id: ks.Identifier(), issued: map[uint64]time.Time{}, maxLive: maxLive}, nil
}

func publicPoint(encShare []byte) []byte {
	p := new(keys.PublicKeyShare)
	if err := p.Decode(encShare); err != nil {
		return nil
	}
	return p.PublicKey().Encode()
}

// ID returns the signer's participant identifier (also after Close).
func (s *Signer) ID() uint16 { return s.id }

// Commit makes n fresh nonces and returns their encoded commitments. The
// nonces never leave memory. It fails with [ErrTooManyNonces] when n more
// would exceed the limit, and with [ErrInvalidInput] after Close.
//
// It takes the process-wide lock once per nonce, not once for all n: a
// nonce costs two scalar base multiplications, and a batch made under one
// lock would hold up every Sign in the process for n of them.
func (s *Signer) Commit(n int, now time.Time) ([][]byte, error) {
	lib.Lock()
	if live := len(s.issued) + s.reserved; live+n > s.maxLive {
		lib.Unlock()
		return nil, fmt.Errorf("%w: %d outstanding, limit %d", ErrTooManyNonces, live, s.maxLive)
	}
	s.reserved += n
	lib.Unlock()
	out := make([][]byte, n)
	for i := range out {
		lib.Lock()
		s.reserved--
		if s.closed {
			s.reserved -= n - 1 - i
			lib.Unlock()
			return nil, fmt.Errorf("%w: signer closed", ErrInvalidInput)
		}
		c := s.s.Commit()
		s.issued[c.CommitmentID] = now
		out[i] = c.Encode()
		lib.Unlock()
	}
	return out, nil
}

// Sign makes this signer's share of the signature over msg for the session
// whose encoded commitment list is list. The nonce behind this signer's
// commitment is consumed before Sign returns, whether it succeeds or not, so
// it can never sign twice. Errors wrap [ErrUnknownCommitment] or
// [ErrInvalidInput].
func (s *Signer) Sign(msg, list []byte) ([]byte, error) {
	lib.Lock()
	defer lib.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: signer closed", ErrInvalidInput)
	}
	cl, err := bfrost.DecodeList(list)
	if err != nil {
		return nil, fmt.Errorf("%w: commitment list: %w", ErrInvalidInput, err)
	}
	id := s.id
	mine := cl.Get(id)
	if mine == nil {
		return nil, fmt.Errorf("%w: no commitment of signer %d in the list", ErrInvalidInput, id)
	}
	cid := mine.CommitmentID
	if _, ok := s.issued[cid]; !ok {
		return nil, fmt.Errorf("%w: commitment %016x", ErrUnknownCommitment, cid)
	}
	// Consume first: whatever happens next, this nonce is gone.
	defer func() {
		s.s.ClearNonceCommitment(cid)
		delete(s.issued, cid)
	}()
	share, err := s.s.Sign(msg, cl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return share.Encode(), nil
}

// Expire drops every nonce made before cutoff and returns how many.
func (s *Signer) Expire(cutoff time.Time) int {
	lib.Lock()
	defer lib.Unlock()
	n := 0
	for cid, t := range s.issued {
		if t.Before(cutoff) {
			s.s.ClearNonceCommitment(cid)
			delete(s.issued, cid)
			n++
		}
	}
	return n
}

// Outstanding returns the number of unused, unexpired nonces.
func (s *Signer) Outstanding() int {
	lib.Lock()
	defer lib.Unlock()
	return len(s.issued)
}

// Close wipes every nonce and drops the secret share; later calls to
// Commit and Sign fail. The share itself cannot be zeroed: the library
// gives no handle to it (its SecretKey returns a copy), so dropping the
// only reference, for the garbage collector, is as far as Go allows.
func (s *Signer) Close() {
	lib.Lock()
	defer lib.Unlock()
	s.closed = true
	for cid := range s.issued {
		s.s.ClearNonceCommitment(cid)
		delete(s.issued, cid)
	}
	s.s.KeyShare = nil
}
