//go:build cgo

package keystore

// The YubiKey PIV backend's card side, through piv-go (which needs cgo and
// libpcsclite to talk to pcscd).

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/go-piv/piv-go/v2/piv"
)

// openPIV opens the card and slot a piv: URI names (see [Open]) and holds
// the card until Close. It checks that the slot holds a key generated on
// the card whose PIN and touch policies are those the URI states, so a
// slot enrolled with other policies (or by someone else) is noticed at
// start rather than trusted.
func openPIV(u *url.URL) (Backend, error) {
	cfg, err := parsePIVURI(u)
	if err != nil {
		return nil, err
	}
	yk, serial, err := pivOpenCard(cfg)
	if err != nil {
		return nil, err
	}
	b, err := pivOpenSlot(yk, serial, cfg)
	if err != nil {
		yk.Close()
		return nil, err
	}
	return b, nil
}

// pivOpenSlot reads the slot's key and policies from the card's own
// attestation of it and wraps the card in a backend.
func pivOpenSlot(yk *piv.YubiKey, serial uint32, cfg pivConfig) (*pivBackend, error) {
	slot := pivSlot(cfg.slot)
	cert, err := yk.Attest(slot)
	if errors.Is(err, piv.ErrNotFound) {
		return nil, fmt.Errorf("%w: card %d slot %02x (enrol it first, see EnrollPIV)", ErrPIVNoKey, serial, cfg.slot)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: reading slot %02x of card %d: %w", cfg.slot, serial, err)
	}
	pp, tp, err := pivAttestedPolicies(cert)
	if err != nil {
		return nil, err
	}
	if pp != cfg.pinPolicy || tp != cfg.touch {
		return nil, fmt.Errorf("%w: piv: card %d slot %02x has pin-policy=%s touch=%s; the URI says pin-policy=%s touch=%s",
			ErrConfig, serial, cfg.slot, pp, tp, cfg.pinPolicy, cfg.touch)
	}
	certPub, err := pivCertPublicKey(cert)
	if err != nil {
		return nil, err
	}
	pub, err := pivECDHPublic(certPub)
	if err != nil {
		return nil, err
	}
	card, err := newPIVYubiKey(yk, slot, certPub, cfg)
	if err != nil {
		return nil, err
	}
	return newPIVBackend(card, serial, cfg.slot, pub)
}

// pivOpenCard opens the card the URI names: the one with its serial, or
// the only PIV card present. Each reader is tried in turn; readers
// without a card, cards that are not PIV and cards another process holds
// (PC/SC access to a YubiKey is exclusive) are passed over.
//
// Known piv-go v2.6.0 limitation: when a reader holds a card without a
// PIV applet, piv.Open fails after connecting and does not release its
// exclusive PC/SC handle, so this process keeps that other card locked
// until it exits. Signer hosts should have only the YubiKey attached.
func pivOpenCard(cfg pivConfig) (*piv.YubiKey, uint32, error) {
	readers, err := piv.Cards()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: cannot reach the PC/SC daemon (is pcscd running?): %v", ErrPIVNoCard, err)
	}
	type found struct {
		yk     *piv.YubiKey
		serial uint32
	}
	var cards []found
	closeAll := func() {
		for _, c := range cards {
			c.yk.Close()
		}
	}
	skipped := 0
	for _, r := range readers {
		yk, err := piv.Open(r)
		if err != nil {
			skipped++
			continue
		}
		serial, err := yk.Serial()
		if err != nil || (cfg.serial != 0 && serial != cfg.serial) {
			yk.Close()
			continue
		}
		if cfg.serial != 0 {
			return yk, serial, nil
		}
		cards = append(cards, found{yk, serial})
	}
	note := ""
	if skipped > 0 {
		note = fmt.Sprintf(" (%d of %d readers had no card, no PIV applet, or a card another process holds)", skipped, len(readers))
	}
	switch {
	case cfg.serial != 0:
		return nil, 0, fmt.Errorf("%w: no YubiKey with serial %d%s", ErrPIVNoCard, cfg.serial, note)
	case len(cards) == 0:
		return nil, 0, fmt.Errorf("%w: no YubiKey found%s", ErrPIVNoCard, note)
	case len(cards) > 1:
		serials := make([]string, len(cards))
		for i, c := range cards {
			serials[i] = fmt.Sprint(c.serial)
		}
		closeAll()
		return nil, 0, fmt.Errorf("%w: piv: several YubiKeys present (serials %s); say which with serial=", ErrConfig, strings.Join(serials, ", "))
	}
	return cards[0].yk, cards[0].serial, nil
}

// pivSlot maps a slot number checked by parsePIVSlot to piv-go's Slot.
func pivSlot(b byte) piv.Slot {
	switch b {
	case 0x9a:
		return piv.SlotAuthentication
	case 0x9c:
		return piv.SlotSignature
	case 0x9d:
		return piv.SlotKeyManagement
	case 0x9e:
		return piv.SlotCardAuthentication
	}
	s, _ := piv.RetiredKeyManagementSlot(uint32(b))
	return s
}

// oidYubicoPolicy is the attestation extension holding the PIN and touch
// policies (https://developers.yubico.com/PIV/Introduction/PIV_attestation.html).
var oidYubicoPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}

// pivAttestedPolicies reads the PIN and touch policies of an attestation
// certificate, by their URI names. Open reads them without checking the
// chain: the chain was checked at enrolment, and a sealed blob names the
// slot key it was sealed to.
func pivAttestedPolicies(cert *x509.Certificate) (pin, touch string, err error) {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidYubicoPolicy) || len(e.Value) != 2 {
			continue
		}
		pin = map[byte]string{1: pivPolicyNever, 2: pivPolicyOnce, 3: pivPolicyAlways}[e.Value[0]]
		touch = map[byte]string{1: pivPolicyNever, 2: pivPolicyAlways, 3: pivPolicyCached}[e.Value[1]]
		if pin != "" && touch != "" {
			return pin, touch, nil
		}
	}
	return "", "", errors.New("keystore: piv: the slot's attestation states no PIN or touch policy this backend knows")
}

func pivPINPolicy(s string) piv.PINPolicy {
	return map[string]piv.PINPolicy{pivPolicyNever: piv.PINPolicyNever, pivPolicyOnce: piv.PINPolicyOnce,
		pivPolicyAlways: piv.PINPolicyAlways}[s]
}

func pivTouchPolicy(s string) piv.TouchPolicy {
	return map[string]piv.TouchPolicy{pivPolicyNever: piv.TouchPolicyNever, pivPolicyAlways: piv.TouchPolicyAlways,
		pivPolicyCached: piv.TouchPolicyCached}[s]
}

func pivPolicyName(p piv.PINPolicy) string {
	return map[piv.PINPolicy]string{piv.PINPolicyNever: pivPolicyNever, piv.PINPolicyOnce: pivPolicyOnce,
		piv.PINPolicyAlways: pivPolicyAlways}[p]
}

func pivTouchName(p piv.TouchPolicy) string {
	return map[piv.TouchPolicy]string{piv.TouchPolicyNever: pivPolicyNever, piv.TouchPolicyAlways: pivPolicyAlways,
		piv.TouchPolicyCached: pivPolicyCached}[p]
}

// pivCertPublicKey returns a certificate's public key. crypto/x509 leaves
// Certificate.PublicKey nil for X25519 keys, but parses their
// SubjectPublicKeyInfo.
func pivCertPublicKey(cert *x509.Certificate) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: the slot's attested public key: %w", err)
	}
	return pub, nil
}

// pivECDHPublic converts a slot public key to crypto/ecdh: P-256 (as
// *ecdsa.PublicKey from piv-go and x509) or X25519.
func pivECDHPublic(pub crypto.PublicKey) (*ecdh.PublicKey, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		k, err := p.ECDH()
		if err == nil && k.Curve() == ecdh.P256() {
			return k, nil
		}
	case *ecdh.PublicKey:
		if p.Curve() == ecdh.X25519() {
			return p, nil
		}
	}
	return nil, fmt.Errorf("keystore: piv: the slot key is %T, not P-256 or X25519", pub)
}

// pivYubiKey adapts piv-go to pivCard.
type pivYubiKey struct {
	yk   *piv.YubiKey
	priv crypto.PrivateKey // *piv.ECDSAPrivateKey or *piv.X25519PrivateKey
	// promptErr is why the PIN prompt gave no PIN during the current
	// operation: piv-go flattens the prompt's error to text.
	promptErr error
}

// newPIVYubiKey prepares the slot key for ECDH. The PIN is read from its
// source each time the card needs it and held no longer than the VERIFY
// (piv-go takes it as a string, which cannot be wiped).
func newPIVYubiKey(yk *piv.YubiKey, slot piv.Slot, pub crypto.PublicKey, cfg pivConfig) (*pivYubiKey, error) {
	c := &pivYubiKey{yk: yk}
	auth := piv.KeyAuth{PINPolicy: pivPINPolicy(cfg.pinPolicy), PINPrompt: func() (string, error) {
		pin, err := c.readPIN(cfg.pinSource)
		if err != nil {
			c.promptErr = err
			return "", err
		}
		defer wipe(pin)
		return string(pin), nil
	}}
	priv, err := yk.PrivateKey(slot, pub, auth)
	if err != nil {
		return nil, fmt.Errorf("keystore: piv: %w", err)
	}
	c.priv = priv
	return c, nil
}

// readPIN reads the PIN, unless the card has fewer than pivMinRetries
// tries left.
func (c *pivYubiKey) readPIN(src string) ([]byte, error) {
	// Retries fails when the PIN is already verified; then no try is at
	// stake.
	if n, err := c.yk.Retries(); err == nil && n < pivMinRetries {
		return nil, &PIVPINError{Retries: n, NotTried: true}
	}
	if src == "" {
		return nil, fmt.Errorf("%w: piv: the card asks for a PIN and the URI has no pin-source", ErrConfig)
	}
	pin, err := ReadPassphrase(src)
	if err != nil {
		return nil, fmt.Errorf("%w: piv: pin-source: %v", ErrConfig, err)
	}
	return pin, nil
}

func (c *pivYubiKey) ecdh(peer *ecdh.PublicKey) ([]byte, error) {
	c.promptErr = nil
	var out []byte
	var err error
	switch k := c.priv.(type) {
	case *piv.ECDSAPrivateKey:
		out, err = k.ECDH(peer)
	case *piv.X25519PrivateKey:
		out, err = k.ECDH(peer)
	default:
		return nil, fmt.Errorf("keystore: piv: no ECDH with a %T", c.priv)
	}
	switch {
	case err == nil:
		return out, nil
	case c.promptErr != nil:
		return nil, c.promptErr
	}
	return nil, pivCardError("ECDH on the card", err)
}

func (c *pivYubiKey) Close() error { return c.yk.Close() }

// pivStatus is the status word of a card error (piv-go's APDU errors have
// a Status method).
func pivStatus(err error) uint16 {
	var s interface{ Status() uint16 }
	if errors.As(err, &s) {
		return s.Status()
	}
	return 0
}

// pivCardError turns piv-go's errors into the backend's: a refused PIN
// becomes a *PIVPINError (which carries the tries left, never the PIN).
func pivCardError(op string, err error) error {
	var ae piv.AuthErr
	if errors.As(err, &ae) {
		return &PIVPINError{Retries: ae.Retries}
	}
	if pivStatus(err) == 0x6982 {
		return fmt.Errorf("keystore: piv: %s: the card refused (security status not satisfied: touch timeout, or PIN not verified): %w", op, err)
	}
	return fmt.Errorf("keystore: piv: %s: %w", op, err)
}

// EnrollPIV generates the sealing key in the slot a piv: URI names (see
// [Open]), on the card, with the URI's PIN and touch policies, and proves
// it with the card's attestation before returning the record to store
// beside the sealed share.
//
// In order, it:
//   - refuses a slot that already holds a key or certificate unless
//     o.Overwrite (slot 9d of a personal YubiKey often holds its owner's
//     e-mail decryption key);
//   - verifies the PIN from pin-source, before anything is changed;
//   - generates the key with the management key (from
//     o.ManagementKeySource; the factory key only with
//     o.AllowDefaultManagementKey);
//   - checks the slot key's attestation: yk.Attest(slot) signed by the
//     card's attestation certificate, chained to o.Roots (Yubico's PIV
//     roots when nil), for this card's serial and slot, with the public
//     key that was generated and exactly the PIN and touch policies asked
//     for; otherwise it fails with ErrPIVAttestation (the new key stays in
//     the slot, untrusted: enrol again, or reset the slot);
//   - stores the slot attestation as the slot's certificate, so PIV tools
//     (ykman piv info) show the slot in use;
//   - seals and unseals a random probe through the card, so a wrong PIN
//     source or a card that cannot do the ECDH is found now rather than
//     at the signer's first start (with touch=always, touch the key).
func EnrollPIV(uri string, o PIVEnrollOptions) (*PIVEnrollment, error) {
	cfg, err := parsePIVURIString(uri)
	if err != nil {
		return nil, err
	}
	alg, err := pivEnrollAlgorithm(o.Algorithm)
	if err != nil {
		return nil, err
	}
	mgmt, err := pivManagementKey(o)
	if err != nil {
		return nil, err
	}
	defer wipe(mgmt)
	yk, serial, err := pivOpenCard(cfg)
	if err != nil {
		return nil, err
	}
	defer yk.Close()
	slot := pivSlot(cfg.slot)

	if !o.Overwrite {
		if err := pivSlotFree(yk, slot); err != nil {
			return nil, err
		}
	}
	if cfg.pinPolicy != pivPolicyNever {
		if err := pivVerifyPIN(yk, cfg.pinSource); err != nil {
			return nil, err
		}
	}
	key := piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: pivPINPolicy(cfg.pinPolicy), TouchPolicy: pivTouchPolicy(cfg.touch)}
	if alg == "x25519" {
		key.Algorithm = piv.AlgorithmX25519
	}
	pub, err := yk.GenerateKey(mgmt, slot, key)
	if err != nil {
		if pivStatus(err) == 0x6982 {
			return nil, fmt.Errorf("%w: card %d", ErrPIVManagementKey, serial)
		}
		return nil, fmt.Errorf("keystore: piv: generating the key in slot %02x of card %d: %w", cfg.slot, serial, err)
	}

	slotCert, err := yk.Attest(slot)
	if err != nil {
		return nil, fmt.Errorf("%w: card %d cannot attest slot %02x: %v", ErrPIVAttestation, serial, cfg.slot, err)
	}
	attCert, err := yk.AttestationCertificate()
	if err != nil {
		return nil, fmt.Errorf("%w: card %d has no attestation certificate: %v", ErrPIVAttestation, serial, err)
	}
	a, err := pivCheckAttestation(attCert, slotCert, o.Roots, serial, slot, pub, key)
	if err != nil {
		return nil, err
	}
	if err := yk.SetCertificate(mgmt, slot, slotCert); err != nil {
		return nil, fmt.Errorf("keystore: piv: storing the slot certificate: %w", err)
	}

	ecdhPub, err := pivECDHPublic(pub)
	if err != nil {
		return nil, err
	}
	card, err := newPIVYubiKey(yk, slot, pub, cfg)
	if err != nil {
		return nil, err
	}
	b, err := newPIVBackend(card, serial, cfg.slot, ecdhPub)
	if err != nil {
		return nil, err
	}
	if err := pivSelfTest(b); err != nil {
		return nil, err
	}

	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	rec := &PIVEnrollment{
		Serial:                 serial,
		Firmware:               fmt.Sprintf("%d.%d.%d", a.Version.Major, a.Version.Minor, a.Version.Patch),
		Slot:                   fmt.Sprintf("%02x", cfg.slot),
		Algorithm:              alg,
		PINPolicy:              pivPolicyName(a.PINPolicy),
		TouchPolicy:            pivTouchName(a.TouchPolicy),
		PublicKey:              string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})),
		PublicKeySHA256:        b.fp[:],
		AttestationCertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: attCert.Raw})),
		SlotCertificate:        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: slotCert.Raw})),
	}
	if a.Formfactor != 0 {
		rec.FormFactor = a.Formfactor.String()
	}
	return rec, nil
}

// pivSlotFree fails with ErrPIVSlotInUse when the slot holds a key
// (generated or imported, as the card's metadata says on firmware 5.3 and
// later, generated only on older cards) or a certificate.
func pivSlotFree(yk *piv.YubiKey, slot piv.Slot) error {
	v := yk.Version()
	if v.Major > 5 || (v.Major == 5 && v.Minor >= 3) {
		_, err := yk.KeyInfo(slot)
		switch {
		case err == nil:
			return fmt.Errorf("%w: slot %s holds a key; set Overwrite to replace it (whatever it sealed is lost)", ErrPIVSlotInUse, slot)
		case !errors.Is(err, piv.ErrNotFound):
			return fmt.Errorf("keystore: piv: reading slot %s: %w", slot, err)
		}
	} else if _, err := yk.Attest(slot); err == nil {
		return fmt.Errorf("%w: slot %s holds a key; set Overwrite to replace it (whatever it sealed is lost)", ErrPIVSlotInUse, slot)
	}
	if _, err := yk.Certificate(slot); err == nil {
		return fmt.Errorf("%w: slot %s holds a certificate; set Overwrite to replace its key", ErrPIVSlotInUse, slot)
	}
	return nil
}

// pivVerifyPIN checks the PIN source against the card, never spending
// the card's last try.
func pivVerifyPIN(yk *piv.YubiKey, src string) error {
	c := &pivYubiKey{yk: yk}
	pin, err := c.readPIN(src)
	if err != nil {
		return err
	}
	defer wipe(pin)
	if err := yk.VerifyPIN(string(pin)); err != nil {
		return pivCardError("verifying the PIN", err)
	}
	return nil
}

// pivCheckAttestation verifies the slot attestation against roots and
// checks it certifies exactly what was generated.
func pivCheckAttestation(attCert, slotCert *x509.Certificate, roots *x509.CertPool, serial uint32,
	slot piv.Slot, pub crypto.PublicKey, key piv.Key) (*piv.Attestation, error) {
	v := piv.Verifier{Roots: roots}
	a, err := v.Verify(attCert, slotCert)
	if err != nil {
		return nil, fmt.Errorf("%w: card %d slot %s: %v", ErrPIVAttestation, serial, slot, err)
	}
	want, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(slotCert.RawSubjectPublicKeyInfo, want) {
		return nil, fmt.Errorf("%w: card %d slot %s: the attested key is not the generated one", ErrPIVAttestation, serial, slot)
	}
	var problems []string
	if a.Serial != serial {
		problems = append(problems, fmt.Sprintf("serial %d", a.Serial))
	}
	if a.Slot != slot {
		problems = append(problems, fmt.Sprintf("slot %q", a.Slot))
	}
	if a.PINPolicy != key.PINPolicy {
		problems = append(problems, "pin-policy "+orUnknown(pivPolicyName(a.PINPolicy)))
	}
	if a.TouchPolicy != key.TouchPolicy {
		problems = append(problems, "touch "+orUnknown(pivTouchName(a.TouchPolicy)))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: card %d slot %s: the attestation states %s, not what was asked (pin-policy %s, touch %s)",
			ErrPIVAttestation, serial, slot, strings.Join(problems, ", "), pivPolicyName(key.PINPolicy), pivTouchName(key.TouchPolicy))
	}
	return a, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// pivSelfTest seals and unseals a random probe through the card.
func pivSelfTest(b *pivBackend) error {
	probe := make([]byte, 32)
	if _, err := rand.Read(probe); err != nil {
		return fmt.Errorf("keystore: randomness: %w", err)
	}
	sealed, err := b.Seal(probe, "frostmint piv enrolment self-test")
	if err != nil {
		return err
	}
	got, err := b.Unseal(sealed, "frostmint piv enrolment self-test")
	if err != nil {
		return fmt.Errorf("keystore: piv: enrolment self-test: %w", err)
	}
	defer wipe(got)
	if !slices.Equal(got, probe) {
		return errors.New("keystore: piv: enrolment self-test: the card's ECDH does not match its public key")
	}
	return nil
}
