package pivemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
)

// Management key algorithms (the P1 of GENERAL AUTHENTICATE on key 9B).
const (
	Alg3DES   byte = 0x03
	AlgAES128 byte = 0x08
	AlgAES192 byte = 0x0a
	AlgAES256 byte = 0x0c
)

// Key algorithms the card generates.
const (
	AlgECCP256 byte = 0x11
	AlgX25519  byte = 0xe1
)

// PIN and touch policies, as encoded in the YubiKey tags AA and AB.
const (
	PINPolicyNever  byte = 0x01
	PINPolicyOnce   byte = 0x02
	PINPolicyAlways byte = 0x03

	TouchPolicyNever  byte = 0x01
	TouchPolicyAlways byte = 0x02
	TouchPolicyCached byte = 0x03
)

// Defaults of a card fresh from the factory (and after RESET).
const (
	DefaultPIN = "123456"
	DefaultPUK = "12345678"
)

// DefaultManagementKey returns the factory management key
// (010203040506070801020304050607080102030405060708), a fresh copy each
// time so no caller can change another's.
func DefaultManagementKey() []byte {
	return []byte{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}
}

// ATR is the answer-to-reset the card gives vpcd: a YubiKey 5's, which
// announces T=1, the protocol piv-go asks pcscd for.
var atr = []byte{
	0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0, 0x21,
	0xc0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40,
}

// ATR returns the card's answer-to-reset.
func ATR() []byte { return append([]byte(nil), atr...) }

// Faults make the card lie, for negative tests of attestation checks. A
// real YubiKey has none of them.
type Faults struct {
	// AttestPINPolicy and AttestTouchPolicy, when not zero, are the
	// policies ATTEST certifies instead of the slot's real ones.
	AttestPINPolicy, AttestTouchPolicy byte
	// AttestSerial, when not zero, is the serial ATTEST certifies.
	AttestSerial uint32
	// CorruptAttestation flips a bit of every attestation signature.
	CorruptAttestation bool
}

// Config describes a card. The zero value is a factory-fresh YubiKey 5
// with a random serial.
type Config struct {
	// Serial is the card's serial number (default: random 8 digits).
	Serial uint32
	// Version is the firmware version reported (default 5.7.1).
	Version [3]byte
	// PIN and PUK are the initial values (default DefaultPIN and
	// DefaultPUK); 6 to 8 bytes, as a YubiKey requires.
	PIN, PUK string
	// PINRetries and PUKRetries are the try counters (default 3).
	PINRetries, PUKRetries int
	// ManagementKey and ManagementKeyAlgorithm are the initial management
	// key (default: DefaultManagementKey as AES-192, as on firmware 5.7).
	ManagementKey          []byte
	ManagementKeyAlgorithm byte
	// FormFactor is reported in attestations (default 1, USB-A keychain).
	FormFactor byte
	// Faults makes the card misbehave for negative tests.
	Faults Faults
}

// slotKey is a key generated in a slot.
type slotKey struct {
	alg         byte
	pinPolicy   byte
	touchPolicy byte
	ec          *ecdsa.PrivateKey // ECC P-256
	x           *ecdh.PrivateKey  // X25519
}

// point is the public key as the card encodes it (tag 86 contents).
func (k *slotKey) point() []byte {
	if k.x != nil {
		return k.x.PublicKey().Bytes()
	}
	p, _ := k.ec.PublicKey.Bytes()
	return p
}

func (k *slotKey) public() any {
	if k.x != nil {
		return k.x.PublicKey()
	}
	return &k.ec.PublicKey
}

// Card is one emulated YubiKey PIV applet. Its methods are safe for
// concurrent use: the vpcd connection and a test inspecting the card may
// run at once.
type Card struct {
	mu      sync.Mutex
	cfg     Config
	reader  string // the PC/SC reader name, once Start found it
	powered bool   // vpcd powered the card up since it was inserted

	// Persistent state, kept across power cycles.
	pin, puk             []byte // 8 bytes, 0xFF padded
	pinTries, pukTries   int
	pinMax, pukMax       int
	pinDefault, pukDflt  bool
	mgmKey               []byte
	mgmAlg               byte
	slots                map[byte]*slotKey
	objects              map[uint32][]byte
	root                 *x509.Certificate
	attKey               *ecdsa.PrivateKey
	attCert              *x509.Certificate
	ops                  int // private-key operations performed
	verifies, badVerifys int

	// Session state, cleared by SELECT and power cycles.
	selected    bool
	pinVerified bool
	pinFresh    bool // VERIFY was the previous command (PIN policy "always")
	mgmAuthed   bool
	witness     []byte
	chain       []byte
	chainHdr    [3]byte
	chaining    bool
	pending     []byte
}

// New returns a card configured by cfg, with a fresh attestation
// authority: a test root and the slot-F9 attestation key it certifies.
func New(cfg Config) (*Card, error) {
	if cfg.Serial == 0 {
		n, err := rand.Int(rand.Reader, big.NewInt(90_000_000))
		if err != nil {
			return nil, err
		}
		cfg.Serial = uint32(n.Int64()) + 10_000_000
	}
	if cfg.Version == [3]byte{} {
		cfg.Version = [3]byte{5, 7, 1}
	}
	if cfg.PIN == "" {
		cfg.PIN = DefaultPIN
	}
	if cfg.PUK == "" {
		cfg.PUK = DefaultPUK
	}
	if cfg.PINRetries == 0 {
		cfg.PINRetries = 3
	}
	if cfg.PUKRetries == 0 {
		cfg.PUKRetries = 3
	}
	if cfg.ManagementKey == nil {
		cfg.ManagementKey = DefaultManagementKey()
	}
	if cfg.ManagementKeyAlgorithm == 0 {
		cfg.ManagementKeyAlgorithm = AlgAES192
	}
	if cfg.FormFactor == 0 {
		cfg.FormFactor = 0x01
	}
	pin, err := padPIN([]byte(cfg.PIN))
	if err != nil {
		return nil, fmt.Errorf("pivemu: PIN: %w", err)
	}
	puk, err := padPIN([]byte(cfg.PUK))
	if err != nil {
		return nil, fmt.Errorf("pivemu: PUK: %w", err)
	}
	if cfg.PINRetries < 1 || cfg.PINRetries > 15 || cfg.PUKRetries < 1 || cfg.PUKRetries > 15 {
		return nil, errors.New("pivemu: retries must be 1 to 15")
	}
	if _, err := mgmCipher(cfg.ManagementKeyAlgorithm, cfg.ManagementKey); err != nil {
		return nil, err
	}
	c := &Card{
		cfg: cfg, pin: pin, puk: puk,
		pinTries: cfg.PINRetries, pinMax: cfg.PINRetries,
		pukTries: cfg.PUKRetries, pukMax: cfg.PUKRetries,
		pinDefault: cfg.PIN == DefaultPIN, pukDflt: cfg.PUK == DefaultPUK,
		mgmKey: append([]byte(nil), cfg.ManagementKey...), mgmAlg: cfg.ManagementKeyAlgorithm,
		slots: map[byte]*slotKey{}, objects: map[uint32][]byte{},
	}
	if err := c.newAuthority(); err != nil {
		return nil, err
	}
	return c, nil
}

// padPIN checks a PIN or PUK (6 to 8 bytes, as a YubiKey requires) and
// pads it to 8 bytes with 0xFF, the form VERIFY carries.
func padPIN(p []byte) ([]byte, error) {
	if len(p) < 6 || len(p) > 8 {
		return nil, errors.New("must be 6 to 8 bytes")
	}
	out := bytes.Repeat([]byte{0xff}, 8)
	copy(out, p)
	return out, nil
}

// pinLen is the length of a padded PIN without its padding.
func pinLen(p []byte) int {
	if i := bytes.IndexByte(p, 0xff); i >= 0 {
		return i
	}
	return len(p)
}

// Serial returns the card's serial number.
func (c *Card) Serial() uint32 { return c.cfg.Serial }

// Reader returns the PC/SC reader name the card is in ("" before [Start]
// found it).
func (c *Card) Reader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reader
}

// Root returns the test root that issued the card's attestation
// certificate; it stands in for Yubico's PIV root CA.
func (c *Card) Root() *x509.Certificate { return c.root }

// Roots returns a new pool holding only [Card.Root].
func (c *Card) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.root)
	return p
}

// AttestationCertificate returns the slot-F9 certificate.
func (c *Card) AttestationCertificate() *x509.Certificate { return c.attCert }

// PINRetries returns the PIN tries left.
func (c *Card) PINRetries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinTries
}

// Operations returns how many private-key operations (ECDH, signatures)
// the card has performed.
func (c *Card) Operations() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

// PINVerifications returns how many VERIFY commands carried a PIN, and how
// many of those were wrong.
func (c *Card) PINVerifications() (total, wrong int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verifies, c.badVerifys
}

// SlotPublicKey returns the public key of the key in slot (an
// *ecdsa.PublicKey or an X25519 *ecdh.PublicKey), or nil when it is empty.
func (c *Card) SlotPublicKey(slot byte) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.slots[slot]; k != nil {
		return k.public()
	}
	return nil
}

// SetFaults changes how the card misbehaves from now on (see [Faults]),
// so one inserted card can serve several negative tests.
func (c *Card) SetFaults(f Faults) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.Faults = f
}

// PowerOff ends the session as pulling the card would: PIN and management
// key authentication are forgotten, keys and data stay.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endSession()
}

// setPowered records whether pcscd powered the card since it was
// inserted: only then is it safe to open (see Start).
func (c *Card) setPowered(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = on
}

// isPowered reports whether pcscd powered the card since it was inserted.
func (c *Card) isPowered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powered
}

func (c *Card) endSession() {
	c.selected = false
	c.clearSecurity()
	c.chain, c.chaining, c.pending = nil, false, nil
}

func (c *Card) clearSecurity() {
	c.pinVerified, c.pinFresh, c.mgmAuthed, c.witness = false, false, false, nil
}

// Status words.
const (
	swOK                uint16 = 0x9000
	swWrongLength       uint16 = 0x6700
	swLastOfChain       uint16 = 0x6883
	swSecurityStatus    uint16 = 0x6982
	swBlocked           uint16 = 0x6983
	swConditions        uint16 = 0x6985
	swWrongData         uint16 = 0x6a80
	swFileNotFound      uint16 = 0x6a82
	swNoMemory          uint16 = 0x6a84
	swWrongP1P2         uint16 = 0x6a86
	swRefNotFound       uint16 = 0x6a88
	swINSNotSupported   uint16 = 0x6d00
	swCLANotSupported   uint16 = 0x6e00
	swVerifyFailedTries uint16 = 0x63c0
)

// Instructions.
const (
	insVerify       = 0x20
	insChangeRef    = 0x24
	insResetRetry   = 0x2c
	insGenerate     = 0x47
	insAuthenticate = 0x87
	insSelect       = 0xa4
	insGetResponse  = 0xc0
	insGetData      = 0xcb
	insPutData      = 0xdb
	insGetMetadata  = 0xf7
	insGetSerial    = 0xf8
	insAttest       = 0xf9
	insReset        = 0xfb
	insGetVersion   = 0xfd
	insSetMgmKey    = 0xff
)

// aidPIV is the PIV application identifier; SELECT accepts any prefix of
// at least its first five bytes (the RID and PIX start piv-go sends).
var aidPIV = []byte{0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

type command struct {
	cla, ins, p1, p2 byte
	data             []byte
}

// parseAPDU splits a short or extended command APDU.
func parseAPDU(b []byte) (command, bool) {
	if len(b) < 4 {
		return command{}, false
	}
	c := command{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	b = b[4:]
	switch {
	case len(b) <= 1: // case 1, or case 2 (Le only)
		return c, true
	case b[0] != 0: // short Lc, optional Le
		n := int(b[0])
		if len(b) != 1+n && len(b) != 2+n {
			return command{}, false
		}
		c.data = b[1 : 1+n]
		return c, true
	case len(b) >= 3: // extended Lc
		n := int(b[1])<<8 | int(b[2])
		if n == 0 {
			return c, len(b) == 3
		}
		if len(b) < 3+n || len(b) > 5+n {
			return command{}, false
		}
		c.data = b[3 : 3+n]
		return c, true
	default:
		return command{}, false
	}
}

// maxResponse is the data a short response APDU carries; longer answers
// are chained with 61xx and GET RESPONSE, as a YubiKey does.
const maxResponse = 256

// maxChain bounds command chaining.
const maxChain = 1 << 16

// Transmit answers one command APDU with a response APDU (data and status
// word). It is what vpcd's socket carries, and tests may call it directly.
func (c *Card) Transmit(apdu []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, sw := c.transmit(apdu)
	return binary.BigEndian.AppendUint16(append([]byte(nil), data...), sw)
}

func (c *Card) transmit(raw []byte) ([]byte, uint16) {
	cmd, ok := parseAPDU(raw)
	if !ok {
		return nil, swWrongLength
	}
	if cmd.ins == insGetResponse && cmd.cla == 0 {
		if c.pending == nil {
			return nil, swConditions
		}
		return c.respond(c.pending)
	}
	c.pending = nil
	if cmd.cla&^0x10 != 0 {
		return nil, swCLANotSupported
	}
	hdr := [3]byte{cmd.ins, cmd.p1, cmd.p2}
	if c.chaining && hdr != c.chainHdr {
		c.chain, c.chaining = nil, false
		return nil, swLastOfChain
	}
	if cmd.cla&0x10 != 0 {
		if len(c.chain)+len(cmd.data) > maxChain {
			c.chain, c.chaining = nil, false
			return nil, swNoMemory
		}
		c.chain = append(c.chain, cmd.data...)
		c.chainHdr, c.chaining = hdr, true
		return nil, swOK
	}
	if c.chaining {
		cmd.data = append(c.chain, cmd.data...)
		c.chain, c.chaining = nil, false
	}
	// A VERIFY counts for a PIN-always key only when it is the command
	// just before the operation; any other command in between spends it.
	fresh := c.pinFresh
	c.pinFresh = false
	data, sw := c.dispatch(cmd, fresh)
	if sw != swOK {
		return nil, sw
	}
	return c.respond(data)
}

// respond sends data, chaining what does not fit in one response.
func (c *Card) respond(data []byte) ([]byte, uint16) {
	if len(data) <= maxResponse {
		c.pending = nil
		return data, swOK
	}
	c.pending = data[maxResponse:]
	left := len(c.pending)
	if left > 0xff {
		left = 0
	}
	return data[:maxResponse], 0x6100 | uint16(left)
}

func (c *Card) dispatch(cmd command, fresh bool) ([]byte, uint16) {
	if cmd.ins == insSelect {
		return c.selectApp(cmd)
	}
	if !c.selected {
		return nil, swINSNotSupported
	}
	switch cmd.ins {
	case insGetVersion:
		return c.cfg.Version[:], swOK
	case insGetSerial:
		return binary.BigEndian.AppendUint32(nil, c.cfg.Serial), swOK
	case insGetMetadata:
		return c.metadata(cmd)
	case insVerify:
		return c.verify(cmd)
	case insChangeRef:
		return c.changeReference(cmd)
	case insResetRetry:
		return c.resetRetry(cmd)
	case insReset:
		return c.reset()
	case insSetMgmKey:
		return c.setManagementKey(cmd)
	case insAuthenticate:
		return c.authenticate(cmd, fresh)
	case insGenerate:
		return c.generate(cmd)
	case insGetData:
		return c.getData(cmd)
	case insPutData:
		return c.putData(cmd)
	case insAttest:
		return c.attestSlot(cmd)
	default:
		return nil, swINSNotSupported
	}
}

func (c *Card) selectApp(cmd command) ([]byte, uint16) {
	c.endSession()
	if cmd.p1 != 0x04 {
		return nil, swWrongP1P2
	}
	if len(cmd.data) < 5 || !bytes.HasPrefix(aidPIV, cmd.data) {
		return nil, swFileNotFound
	}
	c.selected = true
	// Application property template: the PIV AID and its authority.
	apt := put(0x61, append(put(0x4f, aidPIV[5:]), put(0x79, put(0x4f, aidPIV[:5]))...))
	return apt, swOK
}

// retriesSW is the status word of a failed verification.
func retriesSW(left int) uint16 {
	if left == 0 {
		return swBlocked
	}
	return swVerifyFailedTries | uint16(left)
}

// checkPIN compares a padded PIN with the reference, counting the try.
func checkPIN(ref, got []byte, tries *int, max int) uint16 {
	if *tries == 0 {
		return swBlocked
	}
	if len(got) != 8 || subtle.ConstantTimeCompare(ref, got) != 1 {
		*tries--
		return retriesSW(*tries)
	}
	*tries = max
	return swOK
}

func (c *Card) verify(cmd command) ([]byte, uint16) {
	if cmd.p2 != 0x80 {
		return nil, swRefNotFound
	}
	switch {
	case cmd.p1 == 0xff && len(cmd.data) == 0:
		c.pinVerified = false
		return nil, swOK
	case cmd.p1 != 0x00:
		return nil, swWrongP1P2
	case len(cmd.data) == 0: // status query
		if c.pinTries == 0 {
			return nil, swBlocked
		}
		if c.pinVerified {
			return nil, swOK
		}
		return nil, retriesSW(c.pinTries)
	}
	c.verifies++
	sw := checkPIN(c.pin, cmd.data, &c.pinTries, c.pinMax)
	if sw != swOK {
		c.badVerifys++
		c.pinVerified = false
		return nil, sw
	}
	c.pinVerified, c.pinFresh = true, true
	return nil, swOK
}

func (c *Card) changeReference(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0 || (cmd.p2 != 0x80 && cmd.p2 != 0x81) {
		return nil, swWrongP1P2
	}
	if len(cmd.data) != 16 {
		return nil, swWrongData
	}
	oldV, newV := cmd.data[:8], cmd.data[8:]
	ref, tries, max, dflt := &c.pin, &c.pinTries, c.pinMax, &c.pinDefault
	if cmd.p2 == 0x81 {
		ref, tries, max, dflt = &c.puk, &c.pukTries, c.pukMax, &c.pukDflt
	}
	if sw := checkPIN(*ref, oldV, tries, max); sw != swOK {
		return nil, sw
	}
	if pinLen(newV) < 6 {
		return nil, swWrongData
	}
	*ref = append([]byte(nil), newV...)
	*dflt = false
	return nil, swOK
}

func (c *Card) resetRetry(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0 || cmd.p2 != 0x80 {
		return nil, swWrongP1P2
	}
	if len(cmd.data) != 16 {
		return nil, swWrongData
	}
	if sw := checkPIN(c.puk, cmd.data[:8], &c.pukTries, c.pukMax); sw != swOK {
		return nil, sw
	}
	if pinLen(cmd.data[8:]) < 6 {
		return nil, swWrongData
	}
	c.pin = append([]byte(nil), cmd.data[8:]...)
	c.pinTries, c.pinDefault = c.pinMax, false
	return nil, swOK
}

// reset is the YubiKey RESET: allowed only once PIN and PUK are both
// blocked; it wipes keys and objects and restores the factory PIN, PUK
// and management key. The attestation key and certificate survive.
func (c *Card) reset() ([]byte, uint16) {
	if c.pinTries != 0 || c.pukTries != 0 {
		return nil, swConditions
	}
	c.pin, _ = padPIN([]byte(DefaultPIN))
	c.puk, _ = padPIN([]byte(DefaultPUK))
	c.pinMax, c.pukMax, c.pinTries, c.pukTries = 3, 3, 3, 3
	c.pinDefault, c.pukDflt = true, true
	c.mgmKey, c.mgmAlg = DefaultManagementKey(), AlgAES192
	if c.cfg.Version[0] < 5 || (c.cfg.Version[0] == 5 && c.cfg.Version[1] < 7) {
		c.mgmAlg = Alg3DES
	}
	c.slots = map[byte]*slotKey{}
	att := c.objects[objAttestation]
	c.objects = map[uint32][]byte{objAttestation: att}
	c.clearSecurity()
	return nil, swOK
}

func (c *Card) setManagementKey(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0xff || (cmd.p2 != 0xff && cmd.p2 != 0xfe) {
		return nil, swWrongP1P2
	}
	if !c.mgmAuthed {
		return nil, swSecurityStatus
	}
	d := cmd.data
	if len(d) < 3 || d[1] != 0x9b || int(d[2]) != len(d)-3 {
		return nil, swWrongData
	}
	if _, err := mgmCipher(d[0], d[3:]); err != nil {
		return nil, swWrongData
	}
	c.mgmAlg, c.mgmKey = d[0], append([]byte(nil), d[3:]...)
	return nil, swOK
}

// mgmCipher returns the block cipher of a management key.
func mgmCipher(alg byte, key []byte) (cipher.Block, error) {
	want := map[byte]int{Alg3DES: 24, AlgAES128: 16, AlgAES192: 24, AlgAES256: 32}[alg]
	if want == 0 || len(key) != want {
		return nil, fmt.Errorf("pivemu: management key: algorithm %#x with %d bytes", alg, len(key))
	}
	if alg == Alg3DES {
		return des.NewTripleDESCipher(key)
	}
	return aes.NewCipher(key)
}

// isKeySlot reports whether ref names a slot that holds a user key.
func isKeySlot(ref byte) bool {
	switch {
	case ref == 0x9a || ref == 0x9c || ref == 0x9d || ref == 0x9e:
		return true
	case ref >= 0x82 && ref <= 0x95:
		return true
	}
	return false
}

func (c *Card) metadata(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0 {
		return nil, swWrongP1P2
	}
	flag := func(b bool) byte {
		if b {
			return 1
		}
		return 0
	}
	switch ref := cmd.p2; {
	case ref == 0x80:
		return cat(put(0x01, []byte{0xff}), put(0x05, []byte{flag(c.pinDefault)}),
			put(0x06, []byte{byte(c.pinMax), byte(c.pinTries)})), swOK
	case ref == 0x81:
		return cat(put(0x01, []byte{0xff}), put(0x05, []byte{flag(c.pukDflt)}),
			put(0x06, []byte{byte(c.pukMax), byte(c.pukTries)})), swOK
	case ref == 0x9b:
		dflt := bytes.Equal(c.mgmKey, DefaultManagementKey())
		return cat(put(0x01, []byte{c.mgmAlg}), put(0x02, []byte{0x00, TouchPolicyNever}),
			put(0x05, []byte{flag(dflt)})), swOK
	case ref == 0xf9:
		p, _ := c.attKey.PublicKey.Bytes()
		return cat(put(0x01, []byte{AlgECCP256}), put(0x02, []byte{PINPolicyNever, TouchPolicyNever}),
			put(0x03, []byte{0x02}), put(0x04, put(0x86, p))), swOK
	case isKeySlot(ref):
		k := c.slots[ref]
		if k == nil {
			return nil, swRefNotFound
		}
		return cat(put(0x01, []byte{k.alg}), put(0x02, []byte{k.pinPolicy, k.touchPolicy}),
			put(0x03, []byte{0x01}), put(0x04, put(0x86, k.point()))), swOK
	default:
		return nil, swWrongP1P2
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// authenticate is GENERAL AUTHENTICATE: management-key mutual
// authentication on key 9B, ECDH or ECDSA with a slot key otherwise.
func (c *Card) authenticate(cmd command, fresh bool) ([]byte, uint16) {
	outer, err := parseTLVs(cmd.data)
	if err != nil || len(outer) != 1 || outer[0].tag != 0x7c {
		return nil, swWrongData
	}
	inner, err := parseTLVs(outer[0].val)
	if err != nil {
		return nil, swWrongData
	}
	if cmd.p2 == 0x9b {
		return c.authManagement(cmd.p1, inner)
	}
	if !isKeySlot(cmd.p2) {
		return nil, swWrongP1P2
	}
	k := c.slots[cmd.p2]
	if k == nil {
		return nil, swRefNotFound
	}
	if cmd.p1 != k.alg {
		return nil, swWrongData
	}
	if v, ok := find(inner, 0x82); !ok || len(v) != 0 {
		return nil, swWrongData
	}
	switch k.pinPolicy {
	case PINPolicyOnce:
		if !c.pinVerified {
			return nil, swSecurityStatus
		}
	case PINPolicyAlways:
		if !c.pinVerified || !fresh {
			return nil, swSecurityStatus
		}
	}
	// Touch: a real card would now wait for the button; this one cannot
	// be touched and goes on at once, whatever the slot's touch policy.
	var out []byte
	if peer, ok := find(inner, 0x85); ok {
		var err error
		if out, err = k.ecdh(peer); err != nil {
			return nil, swWrongData
		}
	} else if digest, ok := find(inner, 0x81); ok && k.ec != nil {
		var err error
		if out, err = ecdsa.SignASN1(rand.Reader, k.ec, digest); err != nil {
			return nil, swWrongData
		}
	} else {
		return nil, swWrongData
	}
	c.ops++
	return put(0x7c, put(0x82, out)), swOK
}

// ecdh computes the shared secret with a peer point: the X coordinate for
// P-256, the X25519 output otherwise (both what crypto/ecdh returns).
func (k *slotKey) ecdh(peer []byte) ([]byte, error) {
	if k.x != nil {
		p, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			return nil, err
		}
		return k.x.ECDH(p)
	}
	p, err := ecdh.P256().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	priv, err := k.ec.ECDH()
	if err != nil {
		return nil, err
	}
	return priv.ECDH(p)
}

// authManagement runs the two steps of mutual authentication: the host
// asks for a witness (80 empty), the card sends it encrypted; the host
// returns it decrypted with a challenge of its own (80, 81) and the card
// answers the challenge encrypted (82).
func (c *Card) authManagement(alg byte, inner []tlv) ([]byte, uint16) {
	if alg != c.mgmAlg {
		return nil, swWrongData
	}
	block, err := mgmCipher(c.mgmAlg, c.mgmKey)
	if err != nil {
		return nil, swWrongData
	}
	bs := block.BlockSize()
	w, hasW := find(inner, 0x80)
	ch, hasCh := find(inner, 0x81)
	switch {
	case hasW && len(w) == 0 && !hasCh:
		c.mgmAuthed = false
		c.witness = make([]byte, bs)
		if _, err := rand.Read(c.witness); err != nil {
			return nil, swConditions
		}
		enc := make([]byte, bs)
		block.Encrypt(enc, c.witness)
		return put(0x7c, put(0x80, enc)), swOK
	case hasW && hasCh:
		want := c.witness
		c.witness = nil
		if want == nil || len(w) != bs || len(ch) != bs || subtle.ConstantTimeCompare(w, want) != 1 {
			c.mgmAuthed = false
			return nil, swSecurityStatus
		}
		c.mgmAuthed = true
		enc := make([]byte, bs)
		block.Encrypt(enc, ch)
		return put(0x7c, put(0x82, enc)), swOK
	default:
		return nil, swWrongData
	}
}

func (c *Card) generate(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0 || !isKeySlot(cmd.p2) {
		return nil, swWrongP1P2
	}
	if !c.mgmAuthed {
		return nil, swSecurityStatus
	}
	outer, err := parseTLVs(cmd.data)
	if err != nil || len(outer) != 1 || outer[0].tag != 0xac {
		return nil, swWrongData
	}
	inner, err := parseTLVs(outer[0].val)
	if err != nil {
		return nil, swWrongData
	}
	one := func(tag uint32, dflt byte) (byte, bool) {
		v, ok := find(inner, tag)
		if !ok {
			return dflt, true
		}
		return v[0], len(v) == 1
	}
	alg, ok1 := one(0x80, 0)
	pp, ok2 := one(0xaa, PINPolicyOnce)
	tp, ok3 := one(0xab, TouchPolicyNever)
	if !ok1 || !ok2 || !ok3 || pp < PINPolicyNever || pp > PINPolicyAlways || tp < TouchPolicyNever || tp > TouchPolicyCached {
		return nil, swWrongData
	}
	k := &slotKey{alg: alg, pinPolicy: pp, touchPolicy: tp}
	switch alg {
	case AlgECCP256:
		k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgX25519:
		if c.cfg.Version[0] < 5 || (c.cfg.Version[0] == 5 && c.cfg.Version[1] < 7) {
			return nil, swWrongData
		}
		k.x, err = ecdh.X25519().GenerateKey(rand.Reader)
	default:
		return nil, swWrongData
	}
	if err != nil {
		return nil, swConditions
	}
	c.slots[cmd.p2] = k
	return put(0x7f49, put(0x86, k.point())), swOK
}

// Data objects.
const (
	objAttestation uint32 = 0x5fff01
)

// pinProtected are the objects a YubiKey reads only after VERIFY:
// fingerprints, printed information, facial image, iris.
var pinProtected = map[uint32]bool{0x5fc103: true, 0x5fc108: true, 0x5fc109: true, 0x5fc121: true}

func objectID(b []byte) (uint32, bool) {
	if len(b) < 1 || len(b) > 3 {
		return 0, false
	}
	var id uint32
	for _, x := range b {
		id = id<<8 | uint32(x)
	}
	return id, true
}

func (c *Card) getData(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0x3f || cmd.p2 != 0xff {
		return nil, swWrongP1P2
	}
	ts, err := parseTLVs(cmd.data)
	if err != nil || len(ts) != 1 || ts[0].tag != 0x5c {
		return nil, swWrongData
	}
	id, ok := objectID(ts[0].val)
	if !ok {
		return nil, swWrongData
	}
	if pinProtected[id] && !c.pinVerified {
		return nil, swSecurityStatus
	}
	v, ok := c.objects[id]
	if !ok {
		return nil, swFileNotFound
	}
	return put(0x53, v), swOK
}

func (c *Card) putData(cmd command) ([]byte, uint16) {
	if cmd.p1 != 0x3f || cmd.p2 != 0xff {
		return nil, swWrongP1P2
	}
	if !c.mgmAuthed {
		return nil, swSecurityStatus
	}
	ts, err := parseTLVs(cmd.data)
	if err != nil || len(ts) != 2 || ts[0].tag != 0x5c || ts[1].tag != 0x53 {
		return nil, swWrongData
	}
	id, ok := objectID(ts[0].val)
	if !ok || id>>16 != 0x5f {
		return nil, swWrongData
	}
	if len(ts[1].val) == 0 {
		delete(c.objects, id)
		return nil, swOK
	}
	c.objects[id] = append([]byte(nil), ts[1].val...)
	return nil, swOK
}

func (c *Card) attestSlot(cmd command) ([]byte, uint16) {
	if cmd.p2 != 0 || !isKeySlot(cmd.p1) {
		return nil, swWrongP1P2
	}
	k := c.slots[cmd.p1]
	if k == nil {
		return nil, swWrongData
	}
	der, err := c.attest(cmd.p1, k)
	if err != nil {
		return nil, swConditions
	}
	return der, swOK
}
