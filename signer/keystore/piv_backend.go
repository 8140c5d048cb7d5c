package keystore

// The YubiKey PIV backend (see openPIV and EnrollPIV, in piv.go for cgo
// builds). This file holds what needs no card library, so it builds and is
// tested everywhere: the URI, the sealed envelope and the sealing itself,
// behind the pivCard interface.
//
// PIV has no symmetric sealing, so the share is sealed by ECIES: Seal
// makes an ephemeral key in software, does ECDH with the slot's public key
// (no card operation, no PIN), derives an AEAD key with HKDF-SHA256 and
// encrypts. Only the card can redo that ECDH from the ephemeral public
// key, so Unseal asks the card, under the slot's PIN (and touch) policy.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of the PIV backend, besides ErrConfig, ErrFormat and ErrUnseal.
var (
	// ErrPIVPIN means the card refused the PIN, or the backend would not
	// spend the card's last PIN try. Such errors are *[PIVPINError].
	ErrPIVPIN = errors.New("keystore: piv: PIN refused")
	// ErrPIVNoCard means no card matching the URI could be opened.
	ErrPIVNoCard = errors.New("keystore: piv: no matching card")
	// ErrPIVNoKey means the slot holds no key generated on the card.
	ErrPIVNoKey = errors.New("keystore: piv: slot holds no generated key")
	// ErrPIVSlotInUse means enrolment found the slot already holding a key
	// or certificate, and was not told to overwrite it.
	ErrPIVSlotInUse = errors.New("keystore: piv: slot already in use")
	// ErrPIVManagementKey means the card refused the management key.
	ErrPIVManagementKey = errors.New("keystore: piv: management key refused")
	// ErrPIVAttestation means the slot key's attestation did not verify,
	// or attests something other than what was asked for.
	ErrPIVAttestation = errors.New("keystore: piv: attestation refused")
)

// PIVPINError is a refused PIN. It never carries the PIN.
type PIVPINError struct {
	// Retries is the number of PIN tries the card has left; 0 means the
	// PIN is blocked and must be reset with the PUK.
	Retries int
	// NotTried is set when the backend did not present the PIN at all:
	// it never spends a card's last try, so that a wrong pin-source in a
	// restart loop cannot block the card. A person who fixed the PIN
	// source verifies the PIN once by hand (ykman piv info, or any PIV
	// tool) to restore the tries.
	NotTried bool
}

func (e *PIVPINError) Error() string {
	switch {
	case e.NotTried && e.Retries == 0:
		return "keystore: piv: the card's PIN is blocked; unblock it with the PUK"
	case e.NotTried:
		return fmt.Sprintf("keystore: piv: PIN not tried: only %d try left before the card blocks it; check pin-source, then verify the PIN by hand", e.Retries)
	case e.Retries == 0:
		return "keystore: piv: wrong PIN; the card's PIN is now blocked"
	default:
		return fmt.Sprintf("keystore: piv: wrong PIN (%d tries left)", e.Retries)
	}
}

// Unwrap makes errors.Is(err, ErrPIVPIN) hold.
func (e *PIVPINError) Unwrap() error { return ErrPIVPIN }

// pivMinRetries is the fewest PIN tries the card must have left for the
// backend to present a PIN from its source.
const pivMinRetries = 2

// PIN and touch policies, by the names the URI uses.
const (
	pivPolicyNever  = "never"
	pivPolicyOnce   = "once"
	pivPolicyAlways = "always"
	pivPolicyCached = "cached"
)

// pivConfig is a parsed piv: URI.
type pivConfig struct {
	serial    uint32 // 0: the only card present
	slot      byte
	pinSource string // env:NAME or file:PATH; "" only with pin-policy never
	pinPolicy string // once, always or never
	touch     string // never, always or cached
}

// pivAttributes are the attributes a piv: URI may carry.
var pivAttributes = []string{"pin-policy", "pin-source", "serial", "slot", "touch"}

// parsePIVURI reads
//
//	piv:?serial=12345678&slot=9d&pin-source=env:NAME&touch=never&pin-policy=once
//
// serial may be left out when exactly one card is present; slot defaults
// to 9d (key management), pin-policy to once and touch to never (the
// YubiKey's own defaults). pin-source names where the PIN is read from;
// the PIN itself is never accepted in the URI. Errors wrap ErrConfig and
// never repeat a value that could be a secret.
func parsePIVURI(u *url.URL) (pivConfig, error) {
	bad := func(format string, a ...any) (pivConfig, error) {
		return pivConfig{}, fmt.Errorf("%w: piv: "+format, append([]any{ErrConfig}, a...)...)
	}
	if u.Scheme != "piv" {
		return bad("scheme %q is not piv", u.Scheme)
	}
	if u.Opaque != "" || u.Host != "" || u.Path != "" || u.User != nil || u.Fragment != "" {
		return bad("attributes go in the query only, as in piv:?slot=9d&pin-source=env:NAME")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("the query does not parse")
	}
	if _, ok := q["pin"]; ok {
		return bad("never put the PIN in the URI; name its source with pin-source=env:NAME or pin-source=file:PATH")
	}
	if _, ok := q["pin-value"]; ok {
		return bad("never put the PIN in the URI (pin-value); name its source with pin-source=env:NAME or pin-source=file:PATH")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(pivAttributes, k) {
			return bad("unknown attribute %q (known: %s)", k, strings.Join(pivAttributes, ", "))
		}
		if len(q[k]) != 1 {
			return bad("attribute %q given more than once", k)
		}
	}
	c := pivConfig{slot: 0x9d, pinPolicy: pivPolicyOnce, touch: pivPolicyNever}
	if v, ok := q["serial"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 32)
		if err != nil || n == 0 {
			return bad("serial must be the card's decimal serial number")
		}
		c.serial = uint32(n)
	}
	if v, ok := q["slot"]; ok {
		s, err := parsePIVSlot(strings.ToLower(v[0]))
		if err != nil {
			return pivConfig{}, fmt.Errorf("%w: piv: %v", ErrConfig, err)
		}
		c.slot = s
	}
	if v, ok := q["pin-policy"]; ok {
		switch v[0] {
		case pivPolicyOnce, pivPolicyAlways, pivPolicyNever:
			c.pinPolicy = v[0]
		default:
			return bad("pin-policy must be once, always or never")
		}
	}
	if v, ok := q["touch"]; ok {
		switch v[0] {
		case pivPolicyNever, pivPolicyAlways, pivPolicyCached:
			c.touch = v[0]
		default:
			return bad("touch must be never, always or cached")
		}
	}
	if v, ok := q["pin-source"]; ok {
		if err := SecretSource("piv: pin-source", v[0]); err != nil {
			return pivConfig{}, err
		}
		c.pinSource = v[0]
	} else if c.pinPolicy != pivPolicyNever {
		return bad("pin-source is required (env:NAME or file:PATH) unless pin-policy=never")
	}
	return c, nil
}

// parsePIVURIString parses a piv: URI given as text.
func parsePIVURIString(uri string) (pivConfig, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return pivConfig{}, fmt.Errorf("%w: %q does not parse", ErrConfig, Redact(uri))
	}
	return parsePIVURI(u)
}

// parsePIVSlot reads a key slot as two lower-case hex digits: 9a, 9c, 9d,
// 9e or a retired key-management slot 82 to 95. The management key (9b)
// and attestation (f9) slots are refused.
func parsePIVSlot(s string) (byte, error) {
	if len(s) != 2 || strings.ToLower(s) != s {
		return 0, fmt.Errorf("slot %q is not two lower-case hex digits (9a, 9c, 9d, 9e, 82-95)", s)
	}
	n, err := strconv.ParseUint(s, 16, 8)
	if err != nil {
		return 0, fmt.Errorf("slot %q is not two lower-case hex digits (9a, 9c, 9d, 9e, 82-95)", s)
	}
	b := byte(n)
	switch {
	case b == 0x9a || b == 0x9c || b == 0x9d || b == 0x9e, b >= 0x82 && b <= 0x95:
		return b, nil
	default:
		return 0, fmt.Errorf("slot %s cannot hold a sealing key (use 9a, 9c, 9d, 9e or 82-95)", s)
	}
}

// Envelope kinds, one per slot key type.
const (
	pivKindP256   = "piv-p256-ecdh"
	pivKindX25519 = "piv-x25519-ecdh"
)

func pivKindOf(c ecdh.Curve) (string, bool) {
	switch c {
	case ecdh.P256():
		return pivKindP256, true
	case ecdh.X25519():
		return pivKindX25519, true
	}
	return "", false
}

func pivCurveOf(kind string) ecdh.Curve {
	if kind == pivKindX25519 {
		return ecdh.X25519()
	}
	return ecdh.P256()
}

// pivEnvelope is the sealed blob: small, versioned JSON. Every field is
// required and checked; the header fields (serial, slot, slot key) let
// Unseal say which card a blob belongs to, and are bound into the key
// derivation, so changing them only makes the blob fail to open.
type pivEnvelope struct {
	Version    int    `json:"v"`
	Kind       string `json:"kind"`
	Serial     uint32 `json:"serial"`
	Slot       string `json:"slot"`
	SlotKey    []byte `json:"slot_key_sha256"` // SHA-256 of the slot key's PKIX DER
	Ephemeral  []byte `json:"ephemeral"`       // ephemeral public key, uncompressed point or X25519 bytes
	Salt       []byte `json:"salt"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

const (
	pivEnvelopeVersion = 1
	pivSaltSize        = 32
	pivMaxEnvelope     = 1 << 20
	pivMaxSecret       = 1 << 16
)

// pivEnvelopeFields are the JSON names, all required, and whether each is
// a number (the rest are strings).
var pivEnvelopeFields = map[string]bool{
	"v": true, "kind": false, "serial": true, "slot": false, "slot_key_sha256": false,
	"ephemeral": false, "salt": false, "nonce": false, "ciphertext": false,
}

// parsePIVEnvelope reads a sealed blob strictly: one flat JSON object with
// exactly the known fields, each once, in their exact case, holding
// values of the right type, with canonical base64, and nothing after it.
// Anything else fails with an error wrapping ErrFormat.
func parsePIVEnvelope(b []byte) (*pivEnvelope, error) {
	bad := func(why string) (*pivEnvelope, error) {
		return nil, fmt.Errorf("%w: piv: %s", ErrFormat, why)
	}
	if len(b) > pivMaxEnvelope {
		return bad("envelope too large")
	}
	raw, err := pivFlatObject(b)
	if err != nil {
		return bad(err.Error())
	}
	for name, num := range pivEnvelopeFields {
		v, ok := raw[name]
		if !ok {
			return bad("field " + name + " missing")
		}
		if _, isNum := v.(json.Number); isNum != num {
			return bad("field " + name + " has the wrong type")
		}
	}
	var e pivEnvelope
	if err := json.Unmarshal(b, &e); err != nil {
		return bad("fields do not decode")
	}
	for name, got := range map[string][]byte{"slot_key_sha256": e.SlotKey, "ephemeral": e.Ephemeral,
		"salt": e.Salt, "nonce": e.Nonce, "ciphertext": e.Ciphertext} {
		if base64.StdEncoding.EncodeToString(got) != raw[name] {
			return bad("field " + name + " is not canonical base64")
		}
	}
	if e.Version != pivEnvelopeVersion {
		return bad("unknown version")
	}
	if e.Kind != pivKindP256 && e.Kind != pivKindX25519 {
		return bad("unknown kind")
	}
	if e.Serial == 0 {
		return bad("no card serial")
	}
	if _, err := parsePIVSlot(e.Slot); err != nil {
		return bad(err.Error())
	}
	if len(e.SlotKey) != sha256.Size {
		return bad("slot key fingerprint is not SHA-256")
	}
	if _, err := pivCurveOf(e.Kind).NewPublicKey(e.Ephemeral); err != nil {
		return bad("ephemeral key is not a valid point")
	}
	if len(e.Salt) != pivSaltSize || len(e.Nonce) != chacha20poly1305.NonceSizeX {
		return bad("salt or nonce size")
	}
	if len(e.Ciphertext) < chacha20poly1305.Overhead || len(e.Ciphertext) > pivMaxSecret+chacha20poly1305.Overhead {
		return bad("ciphertext size")
	}
	return &e, nil
}

// pivFlatObject reads b as one JSON object whose values are strings or
// numbers, with no repeated name, followed only by white space. String
// values are returned decoded, numbers as json.Number.
func pivFlatObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]any{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		name, _ := t.(string)
		if _, known := pivEnvelopeFields[name]; !known {
			return nil, fmt.Errorf("unknown field %q", name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("field %q repeated", name)
		}
		v, err := d.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		switch v.(type) {
		case string, json.Number:
			out[name] = v
		default:
			return nil, fmt.Errorf("field %q is not a string or number", name)
		}
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("malformed JSON")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// pivCard is what the backend needs of a card: the ECDH of its slot key
// with a peer key, performed on the card (under its PIN and touch
// policies), and releasing it. piv.go adapts piv-go's YubiKey to it; tests
// use a software card to check the sealing beyond what the emulator
// reaches.
type pivCard interface {
	ecdh(peer *ecdh.PublicKey) ([]byte, error)
	Close() error
}

// pivBackend is the PIV [Backend]. The card handle is held for the
// backend's life (a PC/SC connection to a YubiKey is exclusive), and mu
// lets one card operation run at a time.
type pivBackend struct {
	mu     sync.Mutex
	card   pivCard // nil once closed
	serial uint32
	slot   byte
	pub    *ecdh.PublicKey
	kind   string
	fp     [sha256.Size]byte
}

// newPIVBackend wraps an opened card whose slot holds the key pub.
func newPIVBackend(card pivCard, serial uint32, slot byte, pub *ecdh.PublicKey) (*pivBackend, error) {
	kind, ok := pivKindOf(pub.Curve())
	if !ok {
		return nil, errors.New("keystore: piv: the slot key is neither P-256 nor X25519")
	}
	fp, err := pivFingerprint(pub)
	if err != nil {
		return nil, err
	}
	return &pivBackend{card: card, serial: serial, slot: slot, pub: pub, kind: kind, fp: fp}, nil
}

// pivFingerprint is the SHA-256 of a public key's PKIX DER encoding.
func pivFingerprint(pub any) ([sha256.Size]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("keystore: piv: %w", err)
	}
	return sha256.Sum256(der), nil
}

var errPIVClosed = errors.New("keystore: piv: backend is closed")

// pivKDF derives the AEAD key. The info binds the format version, the
// envelope kind, the label, the card serial, the slot and both public
// keys, each length-prefixed, so a blob cannot be moved to another label,
// card, slot or key and still open.
func pivKDF(shared []byte, e *pivEnvelope, slot byte, slotPub []byte, label string) ([]byte, error) {
	lv := func(b []byte, v []byte) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...)
	}
	info := []byte("frostmint piv seal v1\x00")
	info = lv(info, []byte(e.Kind))
	info = lv(info, []byte(label))
	info = binary.BigEndian.AppendUint32(info, e.Serial)
	info = append(info, slot)
	info = lv(info, slotPub)
	info = lv(info, e.Ephemeral)
	return hkdf.Key(sha256.New, shared, e.Salt, string(info), chacha20poly1305.KeySize)
}

// pivAAD is the AEAD's associated data: the label, domain-separated.
func pivAAD(label string) []byte { return []byte("frostmint piv seal v1\x00" + label) }

// Seal implements [Sealer]. It does not use the card: ECDH with the slot's
// public key needs neither PIN nor touch.
func (b *pivBackend) Seal(secret []byte, label string) ([]byte, error) {
	b.mu.Lock()
	closed := b.card == nil
	b.mu.Unlock()
	if closed {
		return nil, errPIVClosed
	}
	if len(secret) > pivMaxSecret {
		return nil, fmt.Errorf("keystore: piv: secret larger than %d bytes", pivMaxSecret)
	}
	eph, err := b.pub.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	shared, err := eph.ECDH(b.pub)
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: ECDH: %w", err)
	}
	defer wipe(shared)
	e := pivEnvelope{
		Version: pivEnvelopeVersion, Kind: b.kind, Serial: b.serial, Slot: fmt.Sprintf("%02x", b.slot),
		SlotKey: b.fp[:], Ephemeral: eph.PublicKey().Bytes(),
		Salt: make([]byte, pivSaltSize), Nonce: make([]byte, chacha20poly1305.NonceSizeX),
	}
	if _, err := rand.Read(e.Salt); err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	if _, err := rand.Read(e.Nonce); err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	key, err := pivKDF(shared, &e, b.slot, b.pub.Bytes(), label)
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: %w", err)
	}
	defer wipe(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	e.Ciphertext = aead.Seal(nil, e.Nonce, secret, pivAAD(label))
	return json.MarshalIndent(e, "", "  ")
}

// Unseal implements [Sealer]. A blob sealed for another card, slot or
// slot key fails with ErrUnseal before the card is asked anything (no PIN
// is spent on it); a refused PIN fails with a *PIVPINError.
func (b *pivBackend) Unseal(sealed []byte, label string) ([]byte, error) {
	e, err := parsePIVEnvelope(sealed)
	if err != nil {
		return nil, err
	}
	slot := fmt.Sprintf("%02x", b.slot)
	if e.Serial != b.serial || e.Slot != slot || e.Kind != b.kind {
		return nil, fmt.Errorf("%w: piv: sealed for card %d slot %s (%s); this is card %d slot %s (%s)",
			ErrUnseal, e.Serial, e.Slot, e.Kind, b.serial, slot, b.kind)
	}
	if subtle.ConstantTimeCompare(e.SlotKey, b.fp[:]) != 1 {
		return nil, fmt.Errorf("%w: piv: sealed to another key of card %d slot %s (was the slot enrolled again?)",
			ErrUnseal, b.serial, slot)
	}
	peer, err := b.pub.Curve().NewPublicKey(e.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("%w: piv: ephemeral key", ErrFormat)
	}
	shared, err := b.cardECDH(peer)
	if err != nil {
		return nil, err
	}
	defer wipe(shared)
	if subtle.ConstantTimeCompare(shared, make([]byte, len(shared))) == 1 {
		return nil, fmt.Errorf("%w: piv: degenerate shared secret", ErrUnseal)
	}
	key, err := pivKDF(shared, e, b.slot, b.pub.Bytes(), label)
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: %w", err)
	}
	defer wipe(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, e.Nonce, e.Ciphertext, pivAAD(label))
	if err != nil {
		return nil, fmt.Errorf("%w: piv: wrong label, or the blob was altered", ErrUnseal)
	}
	return out, nil
}

func (b *pivBackend) cardECDH(peer *ecdh.PublicKey) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.card == nil {
		return nil, errPIVClosed
	}
	return b.card.ecdh(peer)
}

// Close releases the card. Closing twice is harmless.
func (b *pivBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.card == nil {
		return nil
	}
	err := b.card.Close()
	b.card = nil
	return err
}

// PIVEnrollOptions adjust [EnrollPIV].
type PIVEnrollOptions struct {
	// ManagementKeySource names the card's management key, hex-encoded as
	// ykman prints it, by source: env:NAME or file:PATH.
	ManagementKeySource string
	// AllowDefaultManagementKey lets enrolment use the factory management
	// key (010203…08), when no source is given or the source holds it.
	// For tests and development only: a card that still has it lets
	// anyone with the card replace its keys.
	AllowDefaultManagementKey bool
	// Roots are the attestation roots the card's attestation must chain
	// to. Nil means Yubico's PIV attestation roots (as bundled in
	// piv-go); tests pass the emulator's test root.
	Roots *x509.CertPool
	// Algorithm is the slot key type: "p256" (the default, ECC P-256) or
	// "x25519" (YubiKey firmware 5.7 and later).
	Algorithm string
	// Overwrite allows replacing a key or certificate already in the
	// slot. Whatever it sealed can no longer be unsealed.
	Overwrite bool
}

// PIVEnrollment records an enrolled slot. The caller stores it (as JSON)
// next to the sealed share: it is the evidence that the sealing key was
// generated on a genuine card with the stated policies, and can be
// checked again offline from its certificates.
type PIVEnrollment struct {
	Serial      uint32 `json:"serial"`
	Firmware    string `json:"firmware"` // from the attestation, e.g. "5.7.1"
	FormFactor  string `json:"form_factor,omitempty"`
	Slot        string `json:"slot"`
	Algorithm   string `json:"algorithm"`    // p256 or x25519
	PINPolicy   string `json:"pin_policy"`   // as attested
	TouchPolicy string `json:"touch_policy"` // as attested
	// PublicKey is the slot's public key, PEM "PUBLIC KEY" (PKIX), and
	// PublicKeySHA256 its fingerprint, as sealed blobs carry it.
	PublicKey       string `json:"public_key"`
	PublicKeySHA256 []byte `json:"public_key_sha256"`
	// AttestationCertificate is the card's attestation (slot F9)
	// certificate and SlotCertificate the attestation of the slot key it
	// signed, both PEM.
	AttestationCertificate string `json:"attestation_certificate"`
	SlotCertificate        string `json:"slot_certificate"`
}

// pivEnrollAlgorithm checks the algorithm option.
func pivEnrollAlgorithm(a string) (string, error) {
	switch a {
	case "", "p256":
		return "p256", nil
	case "x25519":
		return "x25519", nil
	default:
		return "", fmt.Errorf("%w: piv: algorithm %q (want p256 or x25519)", ErrConfig, a)
	}
}

// pivDefaultManagementKey is the factory management key.
func pivDefaultManagementKey() []byte {
	return []byte{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}
}

// pivManagementKey reads the management key the options name. The
// caller wipes it.
func pivManagementKey(o PIVEnrollOptions) ([]byte, error) {
	if o.ManagementKeySource == "" {
		if !o.AllowDefaultManagementKey {
			return nil, fmt.Errorf("%w: piv: a management key source is required (ManagementKeySource env:NAME or file:PATH, hex)", ErrConfig)
		}
		return pivDefaultManagementKey(), nil
	}
	if err := SecretSource("piv: management key source", o.ManagementKeySource); err != nil {
		return nil, err
	}
	h, err := ReadPassphrase(o.ManagementKeySource)
	if err != nil {
		return nil, fmt.Errorf("%w: piv: management key: %v", ErrConfig, err)
	}
	defer wipe(h)
	h = bytes.TrimSpace(h)
	// hex.Decode writes into key and allocates nothing; its error, which
	// names the offending byte, is dropped.
	key := make([]byte, len(h)/2)
	if _, err := hex.Decode(key, h); err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
		wipe(key)
		return nil, fmt.Errorf("%w: piv: the management key must be 32, 48 or 64 hex digits", ErrConfig)
	}
	if bytes.Equal(key, pivDefaultManagementKey()) && !o.AllowDefaultManagementKey {
		wipe(key)
		return nil, fmt.Errorf("%w: piv: the card still has the factory management key; change it (ykman piv access change-management-key) or, for tests, set AllowDefaultManagementKey", ErrConfig)
	}
	return key, nil
}
