package ceremony

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/jwks"
)

// Output file names in <KeysDir>/<kid>/.
const (
	GroupFile      = "group.json"
	ShareFile      = "share.sealed"
	TranscriptFile = "transcript.json"
)

// maxTranscript bounds a transcript file.
const maxTranscript = 8 << 20

// Transcript is the public record of a ceremony: what every participant
// signed (through [Transcript.SHA256]) and the signatures. It is written
// as transcript.json beside the group file; [VerifyTranscript] checks one.
//
// The hash covers, in this order and after a domain prefix: the ceremony
// id (length-prefixed), the start time (Unix seconds, int64), t and n
// (uint16), the roster hash, every round-1 package hash in id order, the
// group key and every public key share in id order (length-prefixed). The
// kid and the signatures are not covered: the kid follows from the group
// key, and the signatures are over the hash.
type Transcript struct {
	Version         int               `json:"version"`
	CeremonyID      string            `json:"ceremony_id"`
	Time            time.Time         `json:"time"`
	Threshold       uint16            `json:"threshold"`
	MaxSigners      uint16            `json:"max_signers"`
	Roster          []RosterRecord    `json:"roster"`
	Round1          []Round1Record    `json:"round1"`
	GroupPublicKey  []byte            `json:"group_public_key"`
	PublicKeyShares map[uint16][]byte `json:"public_key_shares"`
	KeyID           string            `json:"kid"`
	SHA256          string            `json:"transcript_sha256"`
	Signatures      []SignatureRecord `json:"signatures"`
}

// RosterRecord is one roster entry.
type RosterRecord struct {
	ID       uint16 `json:"id"`
	Identity string `json:"identity"`
}

// Round1Record is one round-1 package (public: commitments, proof of
// knowledge, box key, signature and certificates) and its hash.
type Round1Record struct {
	ID               uint16   `json:"id"`
	SHA256           string   `json:"sha256"`
	Body             []byte   `json:"body"`
	Signature        []byte   `json:"signature"`
	CertificateChain [][]byte `json:"certificate_chain"`
}

// SignatureRecord is one participant's signature over the transcript hash,
// with the certificates of the key that made it.
type SignatureRecord struct {
	ID               uint16   `json:"id"`
	Identity         string   `json:"identity"`
	CertificateChain [][]byte `json:"certificate_chain"`
	Signature        []byte   `json:"signature"`
}

// BuildTranscript assembles the unsigned transcript of ceremony p from its
// verified round-1 packages and the group they yield. Its errors come from
// the kid computation only.
func BuildTranscript(p Params, set Round1Set, pub frost.PublicGroup) (*Transcript, error) {
	kid, err := jwks.KeyID(pub.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("ceremony: group key: %w", err)
	}
	t := &Transcript{Version: 1, CeremonyID: p.CeremonyID, Time: p.StartedAt.UTC(), Threshold: p.Threshold, MaxSigners: p.MaxSigners,
		GroupPublicKey: bytes.Clone(pub.PublicKey), PublicKeyShares: make(map[uint16][]byte, len(pub.Shares)), KeyID: kid}
	for _, id := range p.Roster.ids() {
		t.Roster = append(t.Roster, RosterRecord{ID: id, Identity: p.Roster[id]})
	}
	for id := uint16(1); id <= p.MaxSigners; id++ {
		r := set[id]
		t.Round1 = append(t.Round1, Round1Record{ID: id, SHA256: hex.EncodeToString(r.Hash), Body: r.Package.GetBody(),
			Signature: r.Package.GetSignature(), CertificateChain: r.Package.GetCertificateChain()})
	}
	for id, s := range pub.Shares {
		t.PublicKeyShares[id] = bytes.Clone(s)
	}
	t.SHA256 = hex.EncodeToString(t.hash(p))
	return t, nil
}

func (t *Transcript) hash(p Params) []byte {
	h := sha256.New()
	h.Write([]byte("frostmint ceremony transcript v1\x00"))
	writeLP(h, []byte(t.CeremonyID))
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(t.Time.Unix()))
	h.Write(ts[:])
	writeU16(h, t.Threshold)
	writeU16(h, t.MaxSigners)
	h.Write(p.Roster.Hash())
	for _, r := range t.Round1 {
		b, _ := hex.DecodeString(r.SHA256)
		h.Write(b)
	}
	writeLP(h, t.GroupPublicKey)
	for id := uint16(1); id <= t.MaxSigners; id++ {
		writeLP(h, t.PublicKeyShares[id])
	}
	return h.Sum(nil)
}

// Digest returns the transcript hash as bytes.
func (t *Transcript) Digest() []byte {
	b, _ := hex.DecodeString(t.SHA256)
	return b
}

// Group returns the public group the transcript records.
func (t *Transcript) Group() frost.PublicGroup {
	pub := frost.PublicGroup{Threshold: t.Threshold, MaxSigners: t.MaxSigners, PublicKey: bytes.Clone(t.GroupPublicKey),
		Shares: make(map[uint16][]byte, len(t.PublicKeyShares))}
	for id, s := range t.PublicKeyShares {
		pub.Shares[id] = bytes.Clone(s)
	}
	return pub
}

// WithSignatures returns a copy of t carrying the participants'
// signatures (already verified by the caller), in id order.
func (t *Transcript) WithSignatures(set Round1Set, sigs map[uint16][]byte) *Transcript {
	out := *t
	out.Signatures = nil
	for id := uint16(1); id <= t.MaxSigners; id++ {
		r := set[id]
		out.Signatures = append(out.Signatures, SignatureRecord{ID: id, Identity: r.Identity,
			CertificateChain: r.Package.GetCertificateChain(), Signature: bytes.Clone(sigs[id])})
	}
	return &out
}

// Marshal returns the transcript's JSON (indented, newline-terminated).
func (t *Transcript) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// VerifyTranscript parses a transcript.json and checks all of it: every
// round-1 package's hash, certificate chain (against roots, at the
// ceremony's time), identity and signature; that the recorded group key,
// public key shares and kid are those the round-1 commitments yield; the
// transcript hash; and every participant's signature over it, by the key
// of its round-1 package. With nil roots the certificate chains are not
// anchored to a CA: only the data's consistency and the signatures by the
// certificates it carries are checked. Errors wrap [ErrTranscript].
func VerifyTranscript(data []byte, roots *x509.CertPool) (*Transcript, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrTranscript, fmt.Sprintf(format, a...))
	}
	if len(data) > maxTranscript {
		return nil, fail("%d bytes", len(data))
	}
	var t Transcript
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return nil, fail("does not parse: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("trailing data")
	}
	if t.Version != 1 {
		return nil, fail("version %d", t.Version)
	}
	p := Params{CeremonyID: t.CeremonyID, Threshold: t.Threshold, MaxSigners: t.MaxSigners, StartedAt: t.Time.UTC(), Roster: Roster{}}
	if len(t.Roster) > MaxParticipants {
		return nil, fail("%d roster entries", len(t.Roster))
	}
	for i, e := range t.Roster {
		if e.ID != uint16(i+1) {
			return nil, fail("roster entry %d has id %d", i+1, e.ID)
		}
		p.Roster[e.ID] = e.Identity
	}
	if err := p.Validate(); err != nil {
		return nil, fail("%v", err)
	}
	if len(t.Round1) != int(p.MaxSigners) || len(t.Signatures) != int(p.MaxSigners) {
		return nil, fail("%d round-1 packages and %d signatures for %d participants", len(t.Round1), len(t.Signatures), p.MaxSigners)
	}
	set := make(Round1Set, p.MaxSigners)
	for i, rec := range t.Round1 {
		id := uint16(i + 1)
		if rec.ID != id {
			return nil, fail("round-1 record %d has id %d", id, rec.ID)
		}
		pkg := &ceremonyv1.Round1Package{Body: rec.Body, Signature: rec.Signature, CertificateChain: rec.CertificateChain}
		if hex.EncodeToString(PackageHash(pkg)) != rec.SHA256 {
			return nil, fail("round-1 package %d does not match its hash", id)
		}
		r, err := VerifyRound1(pkg, id, p, roots, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("%w: round-1 package %d: %w", ErrTranscript, id, err)
		}
		set[id] = r
	}
	pub, err := frost.PublicGroupFromRound1(p.Threshold, p.MaxSigners, set.DKGMessages())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTranscript, err)
	}
	if !bytes.Equal(pub.PublicKey, t.GroupPublicKey) {
		return nil, fail("the group key is not the one the commitments yield")
	}
	if len(t.PublicKeyShares) != len(pub.Shares) {
		return nil, fail("%d public key shares for %d participants", len(t.PublicKeyShares), len(pub.Shares))
	}
	for id, s := range pub.Shares {
		if !bytes.Equal(t.PublicKeyShares[id], s) {
			return nil, fail("public key share %d is not the one the commitments yield", id)
		}
	}
	kid, err := jwks.KeyID(pub.PublicKey)
	if err != nil || kid != t.KeyID {
		return nil, fail("kid %q is not the group key's", t.KeyID)
	}
	want := t.hash(p)
	if hex.EncodeToString(want) != t.SHA256 {
		return nil, fail("transcript hash does not match its contents")
	}
	for i, s := range t.Signatures {
		id := uint16(i + 1)
		r := set[id]
		if s.ID != id || s.Identity != r.Identity || !sameChain(s.CertificateChain, r.Package.GetCertificateChain()) {
			return nil, fail("signature record %d does not match participant %d's round-1 identity", i+1, id)
		}
		if !VerifyTranscriptSignature(r, want, s.Signature) {
			return nil, fail("participant %d's signature over the transcript does not verify", id)
		}
	}
	return &t, nil
}

func sameChain(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// VerifyDir verifies the transcript.json of an output directory
// <KeysDir>/<kid>/ (see [VerifyTranscript]), and that the directory is
// named by the transcript's kid and its group.json is the transcript's
// group. The sealed share is not opened. Errors wrap [ErrTranscript], or
// are the file system's.
func VerifyDir(dir string, roots *x509.CertPool) (*Transcript, error) {
	data, err := os.ReadFile(filepath.Join(dir, TranscriptFile))
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	t, err := VerifyTranscript(data, roots)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	if filepath.Base(abs) != t.KeyID {
		return nil, fmt.Errorf("%w: directory %s holds the transcript of kid %s", ErrTranscript, filepath.Base(abs), t.KeyID)
	}
	g, err := frost.ReadGroupFile(filepath.Join(dir, GroupFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTranscript, err)
	}
	got, want := g.Public(), t.Group()
	if !bytes.Equal(got.PublicKey, want.PublicKey) || got.Threshold != want.Threshold || got.MaxSigners != want.MaxSigners {
		return nil, fmt.Errorf("%w: %s is not the transcript's group", ErrTranscript, GroupFile)
	}
	for id, s := range want.Shares {
		if !bytes.Equal(got.Shares[id], s) {
			return nil, fmt.Errorf("%w: %s: public key share %d is not the transcript's", ErrTranscript, GroupFile, id)
		}
	}
	return t, nil
}
