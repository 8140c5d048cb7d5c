//go:build cgo

package keystore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// pkcs11Backend seals with a non-extractable AES-256 key held by a PKCS#11
// token: the share's key never exists in this process's memory, only the
// share itself once unsealed.
//
// A PKCS#11 session runs one operation at a time and is not safe for
// concurrent use, so each backend owns one session behind a mutex. An
// unseal takes microseconds on a software token; a signer unseals once at
// start, so one session is plenty.
type pkcs11Backend struct {
	mu  sync.Mutex
	s   *p11Session // nil once closed
	key pkcs11.ObjectHandle
	// label is the key's CKA_LABEL, recorded in every sealed blob.
	label string
}

func openPKCS11(u *url.URL) (Backend, error) {
	cfg, err := parsePKCS11URI(u)
	if err != nil {
		return nil, err
	}
	s, err := openPKCS11Session(cfg, false)
	if err != nil {
		return nil, err
	}
	key, err := s.sealingKey(cfg.Object)
	if err != nil {
		return nil, errors.Join(err, s.close())
	}
	return &pkcs11Backend{s: s, key: key, label: cfg.Object}, nil
}

// InitPKCS11Key creates the sealing key a pkcs11: keystore URI names: a
// token-resident AES-256 key, private, sensitive and non-extractable, that
// may only encrypt and decrypt. It fails with [ErrPKCS11KeyExists] when a
// secret key with that label is already on the token: replacing it would
// make every share sealed under it unrecoverable.
func InitPKCS11Key(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("%w: %q does not parse", ErrConfig, Redact(uri))
	}
	cfg, err := parsePKCS11URI(u)
	if err != nil {
		return err
	}
	s, err := openPKCS11Session(cfg, true)
	if err != nil {
		return err
	}
	err = s.createKey(cfg.Object)
	return errors.Join(err, s.close())
}

// Seal implements [Sealer].
func (b *pkcs11Backend) Seal(secret []byte, label string) ([]byte, error) {
	if len(secret) > p11MaxSecret {
		return nil, fmt.Errorf("pkcs11: secret of %d bytes, at most %d can be sealed", len(secret), p11MaxSecret)
	}
	iv := make([]byte, p11IVSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == nil {
		return nil, errPKCS11Closed()
	}
	ct, usedIV, err := b.s.encrypt(b.key, iv, aad(label), secret)
	if err != nil {
		return nil, err
	}
	if len(ct) != len(secret)+p11TagSize {
		return nil, fmt.Errorf("pkcs11: encrypt: the module returned %d bytes, want %d", len(ct), len(secret)+p11TagSize)
	}
	return pkcs11Envelope{Version: 1, Kind: pkcs11Kind, Key: b.label, IV: usedIV, Ciphertext: ct}.marshal()
}

// Unseal implements [Sealer].
func (b *pkcs11Backend) Unseal(sealed []byte, label string) ([]byte, error) {
	e, err := parsePKCS11Envelope(sealed)
	if err != nil {
		return nil, err
	}
	if e.Key != b.label {
		return nil, fmt.Errorf("%w: sealed under key %q, this keystore uses %q", ErrUnseal, e.Key, b.label)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == nil {
		return nil, errPKCS11Closed()
	}
	return b.s.decrypt(b.key, e.IV, aad(label), e.Ciphertext)
}

// Close logs out (once no other backend of this process relies on the
// login), closes the session and finalizes the module when it was the last
// user. Closing twice is a no-op.
func (b *pkcs11Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == nil {
		return nil
	}
	err := b.s.close()
	b.s = nil
	return err
}

func errPKCS11Closed() error { return errors.New("pkcs11: keystore is closed") }

// p11Session is one logged-in session on the token a URI names.
type p11Session struct {
	mod   *p11Module
	slot  uint
	token string
	h     pkcs11.SessionHandle
}

// openPKCS11Session loads the module, finds the token, opens a session
// (read-write only to create keys) and logs the user in with the PIN from
// the URI's source. The PIN is wiped once the login is done.
func openPKCS11Session(cfg pkcs11Config, rw bool) (_ *p11Session, err error) {
	pin, err := ReadPassphrase(cfg.PINSource)
	if err != nil {
		return nil, fmt.Errorf("%w: pkcs11: pin-source: %w", ErrConfig, err)
	}
	defer Wipe(pin)
	mod, err := p11Modules.acquire(cfg.Module)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p11Modules.release(mod))
		}
	}()
	slot, err := p11FindToken(mod.ctx, cfg)
	if err != nil {
		return nil, err
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	h, err := mod.ctx.OpenSession(slot, flags)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: token %q: opening a session: %w", cfg.Token, err)
	}
	if err := p11Modules.login(mod, slot, h, pin); err != nil {
		_ = mod.ctx.CloseSession(h)
		return nil, fmt.Errorf("%w: token %q: %w", ErrPKCS11Login, cfg.Token, err)
	}
	return &p11Session{mod: mod, slot: slot, token: cfg.Token, h: h}, nil
}

// close undoes openPKCS11Session: logout (when last), close, release.
func (s *p11Session) close() error {
	var errs []error
	if err := p11Modules.logout(s.mod, s.slot, s.h); err != nil {
		errs = append(errs, fmt.Errorf("pkcs11: token %q: logout: %w", s.token, err))
	}
	if err := s.mod.ctx.CloseSession(s.h); err != nil {
		errs = append(errs, fmt.Errorf("pkcs11: token %q: closing the session: %w", s.token, err))
	}
	if err := p11Modules.release(s.mod); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// p11FindToken returns the slot holding the initialised token with cfg's label
// (and serial). Slot ids are not stable across restarts, labels are.
func p11FindToken(ctx *pkcs11.Ctx, cfg pkcs11Config) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: listing slots: %w", err)
	}
	var found []uint
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if ti.Label == cfg.Token && (cfg.Serial == "" || ti.SerialNumber == cfg.Serial) {
			found = append(found, slot)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && cfg.Serial != "":
		return 0, fmt.Errorf("%w: no token %q with serial %q in %s", ErrPKCS11TokenNotFound, cfg.Token, cfg.Serial, cfg.Module)
	case len(found) == 0:
		return 0, fmt.Errorf("%w: no token %q in %s", ErrPKCS11TokenNotFound, cfg.Token, cfg.Module)
	default:
		return 0, fmt.Errorf("%w: pkcs11: %d tokens are labelled %q; add serial= to the URI", ErrConfig, len(found), cfg.Token)
	}
}

// findKeys returns up to two secret keys labelled label: enough to tell
// none, one and too many apart.
func (s *p11Session) findKeys(label string) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := s.mod.ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return nil, fmt.Errorf("pkcs11: token %q: searching keys: %w", s.token, err)
	}
	keys, _, err := s.mod.ctx.FindObjects(s.h, 2)
	if ferr := s.mod.ctx.FindObjectsFinal(s.h); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: token %q: searching keys: %w", s.token, err)
	}
	return keys, nil
}

// sealingKey finds the one key labelled label and checks it is fit to seal
// shares: AES-256, sensitive, never extractable, encrypt and decrypt.
// A key that could leave the token would defeat the backend, so it is
// refused rather than used.
func (s *p11Session) sealingKey(label string) (pkcs11.ObjectHandle, error) {
	keys, err := s.findKeys(label)
	if err != nil {
		return 0, err
	}
	switch len(keys) {
	case 0:
		return 0, fmt.Errorf("%w: no secret key labelled %q on token %q (create it with InitPKCS11Key)", ErrPKCS11KeyNotFound, label, s.token)
	case 1:
	default:
		return 0, fmt.Errorf("%w: several secret keys are labelled %q on token %q; keep one", ErrPKCS11KeyAmbiguous, label, s.token)
	}
	attrs, err := s.keyAttrs(keys[0])
	if err != nil {
		return 0, err
	}
	if why := attrs.unsuitable(); why != "" {
		return 0, fmt.Errorf("%w: key %q on token %q %s", ErrPKCS11KeyUnsuitable, label, s.token, why)
	}
	return keys[0], nil
}

// p11KeyAttrs are the attributes that decide whether a key may seal.
type p11KeyAttrs struct {
	KeyType, ValueLen                        uint64
	Sensitive, Extractable, Encrypt, Decrypt bool
}

func (a p11KeyAttrs) unsuitable() string {
	switch {
	case a.KeyType != pkcs11.CKK_AES:
		return "is not an AES key"
	case a.ValueLen != 32:
		return fmt.Sprintf("is %d bytes long, want 32 (AES-256)", a.ValueLen)
	case !a.Sensitive:
		return "is not sensitive (CKA_SENSITIVE false)"
	case a.Extractable:
		return "is extractable (CKA_EXTRACTABLE true)"
	case !a.Encrypt || !a.Decrypt:
		return "may not both encrypt and decrypt"
	}
	return ""
}

func (s *p11Session) keyAttrs(key pkcs11.ObjectHandle) (p11KeyAttrs, error) {
	// Fail closed: an attribute the token does not report reads as
	// extractable.
	a := p11KeyAttrs{Extractable: true}
	got, err := s.mod.ctx.GetAttributeValue(s.h, key, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
	})
	if err != nil {
		return a, fmt.Errorf("%w: token %q: reading the key's attributes: %w", ErrPKCS11KeyUnsuitable, s.token, err)
	}
	for _, at := range got {
		switch at.Type {
		case pkcs11.CKA_KEY_TYPE:
			a.KeyType = p11Ulong(at.Value)
		case pkcs11.CKA_VALUE_LEN:
			a.ValueLen = p11Ulong(at.Value)
		case pkcs11.CKA_SENSITIVE:
			a.Sensitive = p11Bool(at.Value)
		case pkcs11.CKA_EXTRACTABLE:
			a.Extractable = p11Bool(at.Value)
		case pkcs11.CKA_ENCRYPT:
			a.Encrypt = p11Bool(at.Value)
		case pkcs11.CKA_DECRYPT:
			a.Decrypt = p11Bool(at.Value)
		}
	}
	return a, nil
}

// p11Ulong decodes a CK_ULONG attribute, the platform's unsigned long in
// native byte order; any other size reads as an impossible value.
func p11Ulong(v []byte) uint64 {
	switch len(v) {
	case 8:
		return binary.NativeEndian.Uint64(v)
	case 4:
		return uint64(binary.NativeEndian.Uint32(v))
	}
	return ^uint64(0)
}

func p11Bool(v []byte) bool { return len(v) == 1 && v[0] != 0 }

// p11KeyTemplate is the key InitPKCS11Key creates: stored on the token
// (CKA_TOKEN), usable only after login (CKA_PRIVATE), never readable or
// wrappable out of it (CKA_SENSITIVE, not CKA_EXTRACTABLE), and limited to
// encrypting and decrypting.
func p11KeyTemplate(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
}

// createKey generates the sealing key unless a secret key with the label
// exists. Two enrolments racing on one token could both pass the check;
// the backend then refuses the ambiguous label instead of guessing.
func (s *p11Session) createKey(label string) error {
	keys, err := s.findKeys(label)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		return fmt.Errorf("%w: %q on token %q; it is kept as is", ErrPKCS11KeyExists, label, s.token)
	}
	return s.generateKey(p11KeyTemplate(label))
}

func (s *p11Session) generateKey(tmpl []*pkcs11.Attribute) error {
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
	if _, err := s.mod.ctx.GenerateKey(s.h, mech, tmpl); err != nil {
		return fmt.Errorf("pkcs11: token %q: generating the AES key: %w", s.token, err)
	}
	return nil
}

// encrypt runs AES-GCM with a 128-bit tag. It returns the IV the module
// used: some p11Modules (FIPS-mode HSMs) ignore the caller's and write their
// own, which must then be the one stored.
func (s *p11Session) encrypt(key pkcs11.ObjectHandle, iv, ad, plain []byte) (ct, usedIV []byte, err error) {
	gp := pkcs11.NewGCMParams(iv, ad, p11TagSize*8)
	defer gp.Free()
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, gp)}
	if err := s.mod.ctx.EncryptInit(s.h, mech, key); err != nil {
		return nil, nil, fmt.Errorf("pkcs11: token %q: encrypt init: %w", s.token, err)
	}
	ct, err = s.mod.ctx.Encrypt(s.h, plain)
	if err != nil {
		return nil, nil, fmt.Errorf("pkcs11: token %q: encrypt: %w", s.token, err)
	}
	usedIV = gp.IV()
	if len(usedIV) != p11IVSize {
		return nil, nil, fmt.Errorf("pkcs11: token %q: encrypt: the module used a %d-byte IV", s.token, len(usedIV))
	}
	return ct, usedIV, nil
}

// decrypt opens AES-GCM. Any failure of the decryption itself wraps
// [ErrUnseal]: p11Modules report a bad tag with different codes (SoftHSM2 says
// CKR_GENERAL_ERROR), so no code is trusted to mean anything narrower.
func (s *p11Session) decrypt(key pkcs11.ObjectHandle, iv, ad, ct []byte) ([]byte, error) {
	gp := pkcs11.NewGCMParams(iv, ad, p11TagSize*8)
	defer gp.Free()
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, gp)}
	if err := s.mod.ctx.DecryptInit(s.h, mech, key); err != nil {
		return nil, fmt.Errorf("pkcs11: token %q: decrypt init: %w", s.token, err)
	}
	out, err := s.mod.ctx.Decrypt(s.h, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: token %q: decrypt: %w", ErrUnseal, s.token, err)
	}
	return out, nil
}

// p11PINString views the PIN bytes as a string without copying, so the only
// Go copy is the slice the caller wipes after login. The string must not
// outlive the call it is passed to; pkcs11.Ctx.Login copies it to C memory
// for the duration of C_Login only.
func p11PINString(pin []byte) string {
	if len(pin) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(pin), len(pin))
}
