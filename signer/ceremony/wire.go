package ceremony

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	attestv1 "github.com/frostmint/frostmint/proto/frostmint/attest/v1"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// MaxParticipants bounds n.
const MaxParticipants = 64

// Bounds on signed bodies. A round-1 body holds up to about 2 KiB of DKG
// commitments and proof, and the participant's attestation evidence (a
// 1184-byte report and a certificate table of a few KiB): 48 KiB keeps
// the Exchange request of 64 participants under gRPC's default 4 MiB.
const (
	maxRound1Body = 48 << 10
	maxRound2Body = 4 << 10
)

var ceremonyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Roster maps each participant id (1..n) to the SPIFFE identity whose
// certificate must sign that participant's messages.
type Roster map[uint16]string

// Validate checks that r has exactly the ids 1..n, each with a distinct,
// well-formed SPIFFE ID. Errors wrap [ErrInvalid].
func (r Roster) Validate(n uint16) error {
	if len(r) != int(n) {
		return fmt.Errorf("%w: roster has %d entries for %d participants", ErrInvalid, len(r), n)
	}
	seen := make(map[string]uint16, len(r))
	for id := uint16(1); id <= n; id++ {
		ident, ok := r[id]
		if !ok {
			return fmt.Errorf("%w: roster has no participant %d", ErrInvalid, id)
		}
		if err := mtls.CheckSPIFFE(ident); err != nil {
			return fmt.Errorf("%w: roster entry %d: %w", ErrInvalid, id, err)
		}
		if prev, dup := seen[ident]; dup {
			return fmt.Errorf("%w: roster names %s for participants %d and %d", ErrInvalid, ident, prev, id)
		}
		seen[ident] = id
	}
	return nil
}

// Hash is SHA-256 over the roster in id order, each entry as its id
// (uint16) and identity (length-prefixed), after a domain prefix.
func (r Roster) Hash() []byte {
	h := sha256.New()
	h.Write([]byte("frostmint ceremony roster v1\x00"))
	ids := r.ids()
	writeU16(h, uint16(len(ids)))
	for _, id := range ids {
		writeU16(h, id)
		writeLP(h, []byte(r[id]))
	}
	return h.Sum(nil)
}

func (r Roster) ids() []uint16 {
	ids := make([]uint16, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Proto returns the roster's wire form, ordered by id.
func (r Roster) Proto() []*ceremonyv1.RosterEntry {
	out := make([]*ceremonyv1.RosterEntry, 0, len(r))
	for _, id := range r.ids() {
		out = append(out, &ceremonyv1.RosterEntry{ParticipantId: uint32(id), Identity: r[id]})
	}
	return out
}

// Params are what every message of one ceremony is bound to.
type Params struct {
	CeremonyID string
	Threshold  uint16
	MaxSigners uint16
	// StartedAt is whole seconds, UTC.
	StartedAt time.Time
	Roster    Roster
}

// Validate checks the parameters' form. Errors wrap [ErrInvalid].
func (p Params) Validate() error {
	if !ceremonyIDPattern.MatchString(p.CeremonyID) {
		return fmt.Errorf("%w: ceremony id must be 1 to 64 characters of [A-Za-z0-9._-]", ErrInvalid)
	}
	if p.MaxSigners < 2 || p.MaxSigners > MaxParticipants {
		return fmt.Errorf("%w: %d participants (want 2..%d)", ErrInvalid, p.MaxSigners, MaxParticipants)
	}
	if p.Threshold < 2 || p.Threshold > p.MaxSigners {
		return fmt.Errorf("%w: threshold %d of %d (want 2..n)", ErrInvalid, p.Threshold, p.MaxSigners)
	}
	if p.StartedAt.IsZero() || !p.StartedAt.Equal(p.StartedAt.Truncate(time.Second)) {
		return fmt.Errorf("%w: start time must be whole seconds", ErrInvalid)
	}
	return p.Roster.Validate(p.MaxSigners)
}

// BeginRequest returns the Begin call of these parameters.
func (p Params) BeginRequest() *ceremonyv1.BeginRequest {
	return &ceremonyv1.BeginRequest{CeremonyId: p.CeremonyID, Threshold: uint32(p.Threshold), MaxSigners: uint32(p.MaxSigners),
		Roster: p.Roster.Proto(), StartedAt: timestamppb.New(p.StartedAt)}
}

// ParamsFromBegin reads and validates the parameters of a Begin call.
// Errors wrap [ErrInvalid].
func ParamsFromBegin(req *ceremonyv1.BeginRequest) (Params, error) {
	if req.GetThreshold() > MaxParticipants || req.GetMaxSigners() > MaxParticipants || len(req.GetRoster()) > MaxParticipants {
		return Params{}, fmt.Errorf("%w: at most %d participants", ErrInvalid, MaxParticipants)
	}
	if err := req.GetStartedAt().CheckValid(); err != nil {
		return Params{}, fmt.Errorf("%w: started_at: %w", ErrInvalid, err)
	}
	p := Params{CeremonyID: req.GetCeremonyId(), Threshold: uint16(req.GetThreshold()), MaxSigners: uint16(req.GetMaxSigners()),
		StartedAt: req.GetStartedAt().AsTime().UTC(), Roster: Roster{}}
	for _, e := range req.GetRoster() {
		if e.GetParticipantId() == 0 || e.GetParticipantId() > MaxParticipants {
			return Params{}, fmt.Errorf("%w: roster participant id %d", ErrInvalid, e.GetParticipantId())
		}
		id := uint16(e.GetParticipantId())
		if _, dup := p.Roster[id]; dup {
			return Params{}, fmt.Errorf("%w: roster lists participant %d twice", ErrInvalid, id)
		}
		p.Roster[id] = e.GetIdentity()
	}
	return p, p.Validate()
}

// Round1 is a verified round-1 package.
type Round1 struct {
	ID       uint16
	Identity string
	// Chain is the sender's certificate chain, leaf first.
	Chain []*x509.Certificate
	// Hash is [PackageHash] of the package.
	Hash []byte
	// DKG is the FROST DKG round-1 message.
	DKG []byte
	// BoxKey is the sender's X25519 key for this ceremony.
	BoxKey []byte
	// Attestation is the sender's SEV-SNP evidence, covered by its
	// signature but not checked by VerifyRound1 (see [VerifyAttestation]);
	// nil when the package carries none.
	Attestation *attestv1.Evidence
	Package     *ceremonyv1.Round1Package
}

// PackageHash is SHA-256 over a round-1 package's body, signature and
// certificates, each length-prefixed after a domain prefix: independent of
// how the protobuf message happens to be serialized.
func PackageHash(pkg *ceremonyv1.Round1Package) []byte {
	h := sha256.New()
	h.Write([]byte("frostmint ceremony round1 package v1\x00"))
	writeLP(h, pkg.GetBody())
	writeLP(h, pkg.GetSignature())
	writeU16(h, uint16(len(pkg.GetCertificateChain())))
	for _, c := range pkg.GetCertificateChain() {
		writeLP(h, c)
	}
	return h.Sum(nil)
}

// VerifyRound1 checks that pkg is participant id's authentic round-1
// package of the ceremony p: its certificate chain verifies against roots
// at p.StartedAt and names the roster's identity for id, its signature
// verifies, its body is bound to p, and its DKG message is well formed with
// a valid proof of knowledge. now, when not zero, is when the leaf must
// also be valid (a live ceremony); transcripts are checked at p.StartedAt
// only. With nil roots the chain is not anchored (see [VerifyTranscript]).
// Attestation evidence in the body is covered by the signature check but
// not judged here: see [VerifyAttestation].
//
// It fails with a *[CheatError] naming id as culprit and the relay as
// reporter: the caller re-attributes it when it is not the relay.
func VerifyRound1(pkg *ceremonyv1.Round1Package, id uint16, p Params, roots *x509.CertPool, now time.Time) (*Round1, error) {
	if pkg == nil {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "no round-1 package")
	}
	if len(pkg.GetBody()) > maxRound1Body {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-1 body of %d bytes", len(pkg.GetBody()))
	}
	chain, err := parseChain(pkg.GetCertificateChain())
	if err != nil {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_CERTIFICATE, "round-1 package: %v", err)
	}
	ident, err := verifyChain(chain, roots, p.StartedAt)
	if err != nil {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_CERTIFICATE, "round-1 package: %v", err)
	}
	if !now.IsZero() && roots != nil && (now.Before(chain[0].NotBefore) || now.After(chain[0].NotAfter)) {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_CERTIFICATE, "round-1 package: certificate not valid now")
	}
	if ident != p.Roster[id] {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_WRONG_IDENTITY, "round-1 package signed by %s; the roster says %s", ident, p.Roster[id])
	}
	if !verifySignature(chain[0].PublicKey, domainRound1, pkg.GetBody(), pkg.GetSignature()) {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_SIGNATURE, "round-1 package signature does not verify")
	}
	var body ceremonyv1.Round1Body
	if err := proto.Unmarshal(pkg.GetBody(), &body); err != nil {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-1 body does not parse")
	}
	switch {
	case body.GetCeremonyId() != p.CeremonyID:
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-1 package is for ceremony %q", body.GetCeremonyId())
	case body.GetParticipantId() != uint32(id):
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-1 package claims participant %d", body.GetParticipantId())
	case body.GetThreshold() != uint32(p.Threshold) || body.GetMaxSigners() != uint32(p.MaxSigners):
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-1 package is for %d of %d", body.GetThreshold(), body.GetMaxSigners())
	case body.GetStartedAtUnix() != p.StartedAt.Unix():
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-1 package has another start time")
	case !bytes.Equal(body.GetRosterSha256(), p.Roster.Hash()):
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-1 package binds another roster")
	case len(body.GetBoxPublicKey()) != curve25519.PointSize:
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-1 box key is %d bytes", len(body.GetBoxPublicKey()))
	}
	if err := frost.VerifyRound1(id, p.Threshold, p.MaxSigners, body.GetDkgRound1()); err != nil {
		var ce *frost.CheaterError
		if errors.As(err, &ce) {
			return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_PROOF, "round-1 DKG message: %s", ce.Reason)
		}
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-1 DKG message: %v", err)
	}
	ev := body.GetAttestation()
	if len(ev.GetReport()) == 0 && len(ev.GetCertTable()) == 0 {
		ev = nil
	}
	return &Round1{ID: id, Identity: ident, Chain: chain, Hash: PackageHash(pkg), DKG: body.GetDkgRound1(),
		BoxKey: body.GetBoxPublicKey(), Attestation: ev, Package: pkg}, nil
}

// Round1Set is the verified round-1 packages of a ceremony, by sender.
type Round1Set map[uint16]*Round1

// Digest is SHA-256 over every package hash in id order: the round-1 view
// that round-2 messages and the transcript are bound to.
func (s Round1Set) Digest() []byte {
	h := sha256.New()
	h.Write([]byte("frostmint ceremony round1 set v1\x00"))
	for id := uint16(1); id <= uint16(len(s)); id++ {
		if r, ok := s[id]; ok {
			h.Write(r.Hash)
		}
	}
	return h.Sum(nil)
}

// DKGMessages returns the DKG round-1 messages by sender.
func (s Round1Set) DKGMessages() map[uint16][]byte {
	out := make(map[uint16][]byte, len(s))
	for id, r := range s {
		out[id] = r.DKG
	}
	return out
}

// VerifyEnvelope checks that env is from's authentic round-2 envelope to
// recipient `to` in ceremony p with the round-1 view digest, and returns
// its body. It fails with a *[CheatError] naming from (reporter: the
// relay); it does not decrypt.
func VerifyEnvelope(env *ceremonyv1.Round2Envelope, from *Round1, to uint16, p Params, digest []byte) (*ceremonyv1.Round2Body, error) {
	id := from.ID
	if env == nil || len(env.GetBody()) > maxRound2Body {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-2 envelope missing or oversized")
	}
	if !verifySignature(from.Chain[0].PublicKey, domainRound2, env.GetBody(), env.GetSignature()) {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_BAD_SIGNATURE, "round-2 envelope for participant %d: signature does not verify", to)
	}
	var b ceremonyv1.Round2Body
	if err := proto.Unmarshal(env.GetBody(), &b); err != nil {
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-2 body does not parse")
	}
	switch {
	case b.GetCeremonyId() != p.CeremonyID:
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-2 envelope is for ceremony %q", b.GetCeremonyId())
	case b.GetSenderId() != uint32(id) || b.GetRecipientId() != uint32(to):
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-2 envelope labelled %d→%d, want %d→%d", b.GetSenderId(), b.GetRecipientId(), id, to)
	case !bytes.Equal(b.GetRound1Sha256(), digest):
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MISMATCH, "round-2 envelope for participant %d is bound to another round-1 view", to)
	case len(b.GetNonce()) != chacha20poly1305.NonceSize:
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-2 nonce of %d bytes", len(b.GetNonce()))
	case len(b.GetCiphertext()) < chacha20poly1305.Overhead:
		return nil, cheat(id, ceremonyv1.Fault_FAULT_MALFORMED, "round-2 ciphertext too short")
	}
	return &b, nil
}

// VerifyTranscriptSignature checks r's signature over a transcript hash.
func VerifyTranscriptSignature(r *Round1, hash, sig []byte) bool {
	return verifySignature(r.Chain[0].PublicKey, domainTranscript, hash, sig)
}

// channel derives the AEAD of messages from → to: X25519 between the
// sender's and the recipient's box keys, HKDF-SHA-256 with the round-1
// digest as salt and the ceremony, the direction and both public keys as
// info. The shared secret and the key are wiped before returning.
func channel(priv []byte, peerPub []byte, p Params, from, to uint16, fromPub, toPub, digest []byte) (cipher.AEAD, error) {
	shared, err := curve25519.X25519(priv, peerPub)
	if err != nil {
		return nil, err // a low-order point
	}
	defer wipe(shared)
	info := new(bytes.Buffer)
	info.WriteString("frostmint ceremony v1 round2 key\x00")
	writeLP(info, []byte(p.CeremonyID))
	writeU16(info, from)
	writeU16(info, to)
	info.Write(fromPub)
	info.Write(toPub)
	key, err := hkdf.Key(sha256.New, shared, digest, info.String(), chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	return chacha20poly1305.New(key)
}

// associatedData binds a round-2 ciphertext to its ceremony, direction
// and round-1 view.
func associatedData(p Params, from, to uint16, digest []byte) []byte {
	b := new(bytes.Buffer)
	b.WriteString("frostmint ceremony v1 round2 ad\x00")
	writeLP(b, []byte(p.CeremonyID))
	writeU16(b, from)
	writeU16(b, to)
	b.Write(digest)
	return b.Bytes()
}

// seal encrypts a DKG round-2 message from → to and returns the body.
func seal(priv, fromPub, toPub []byte, p Params, from, to uint16, digest, msg []byte) (*ceremonyv1.Round2Body, error) {
	aead, err := channel(priv, toPub, p, from, to, fromPub, toPub, digest)
	if err != nil {
		return nil, fmt.Errorf("ceremony: round-2 key for participant %d: %w", to, err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return &ceremonyv1.Round2Body{CeremonyId: p.CeremonyID, SenderId: uint32(from), RecipientId: uint32(to),
		Round1Sha256: digest, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, msg, associatedData(p, from, to, digest))}, nil
}

// open decrypts a verified round-2 body addressed to `to`.
func open(priv, fromPub, toPub []byte, p Params, from, to uint16, digest []byte, b *ceremonyv1.Round2Body) ([]byte, error) {
	aead, err := channel(priv, fromPub, p, from, to, fromPub, toPub, digest)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, b.GetNonce(), b.GetCiphertext(), associatedData(p, from, to, digest))
}

type byteWriter interface{ Write([]byte) (int, error) }

func writeU16(w byteWriter, v uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	w.Write(b[:])
}

func writeLP(w byteWriter, v []byte) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(v)))
	w.Write(b[:])
	w.Write(v)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
