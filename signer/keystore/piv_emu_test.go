//go:build cgo && unix

package keystore_test

// These tests run the PIV backend through its real code path: piv-go,
// libpcsclite, pcscd and vsmartcard's vpcd reader, against the emulated
// YubiKey of package pivemu. Without pcscd and vpcd they skip, unless
// FROSTMINT_REQUIRE_EMULATORS=1 (as in CI), which makes them fail.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
	"github.com/frostmint/frostmint/signer/keystore/pivemu"
	"github.com/go-piv/piv-go/v2/piv"
)

const testPIN = "48151623"

// pinSource writes pin to a file and returns its source.
func pinSource(t testing.TB, pin string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(p, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

// newCard inserts one emulated card with testPIN.
func newCard(t testing.TB) *pivemu.Card {
	t.Helper()
	return pivemu.Start(t, pivemu.Config{PIN: testPIN})[0]
}

func cardURI(c *pivemu.Card, slot, src, extra string) string {
	u := fmt.Sprintf("piv:?serial=%d&slot=%s&pin-source=%s", c.Serial(), slot, src)
	if extra != "" {
		u += "&" + extra
	}
	return u
}

// devEnroll enrols with the factory management key and the card's test
// root.
func devEnroll(t testing.TB, c *pivemu.Card, uri string) *keystore.PIVEnrollment {
	t.Helper()
	rec, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots()})
	if err != nil {
		t.Fatalf("EnrollPIV: %v", err)
	}
	return rec
}

func open(t testing.TB, uri string) keystore.Backend {
	t.Helper()
	b, err := keystore.Open(uri, keystore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// perOp is a Sealer that opens the backend for each operation and closes
// it after: it lets the suite use two slots of one card, which two open
// backends cannot share (PC/SC access to a YubiKey is exclusive).
type perOp struct {
	t   testing.TB
	uri string
}

func (p perOp) Seal(secret []byte, label string) ([]byte, error) {
	b, err := keystore.Open(p.uri, keystore.Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Seal(secret, label)
}

func (p perOp) Unseal(sealed []byte, label string) ([]byte, error) {
	b, err := keystore.Open(p.uri, keystore.Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Unseal(sealed, label)
}

// TestPIVSuiteEmulated runs the shared suite through piv-go against the
// emulator: with the other sealer on another slot of the same card, on
// another card (both held open at once), and for an X25519 slot.
func TestPIVSuiteEmulated(t *testing.T) {
	t.Run("OtherSlot", func(t *testing.T) {
		c := newCard(t)
		src := pinSource(t, testPIN)
		u9d, u9a := cardURI(c, "9d", src, ""), cardURI(c, "9a", src, "")
		devEnroll(t, c, u9d)
		devEnroll(t, c, u9a)
		keystoretest.Run(t, perOp{t, u9d}, perOp{t, u9a})
	})
	t.Run("OtherCard", func(t *testing.T) {
		cs := pivemu.Start(t, pivemu.Config{PIN: testPIN}, pivemu.Config{PIN: testPIN})
		src := pinSource(t, testPIN)
		ua, ub := cardURI(cs[0], "9d", src, ""), cardURI(cs[1], "9d", src, "")
		devEnroll(t, cs[0], ua)
		devEnroll(t, cs[1], ub)
		keystoretest.Run(t, open(t, ua), open(t, ub))
	})
	t.Run("X25519", func(t *testing.T) {
		c := newCard(t)
		src := pinSource(t, testPIN)
		u9d, u82 := cardURI(c, "9d", src, ""), cardURI(c, "82", src, "")
		for _, u := range []string{u9d, u82} {
			if _, err := keystore.EnrollPIV(u, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots(), Algorithm: "x25519"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.SlotPublicKey(0x9d).(*ecdh.PublicKey); !ok {
			t.Fatalf("slot key is %T, want X25519", c.SlotPublicKey(0x9d))
		}
		keystoretest.Run(t, perOp{t, u9d}, perOp{t, u82})
	})
}

func TestPIVEnrollRecord(t *testing.T) {
	c := newCard(t)
	uri := cardURI(c, "9d", pinSource(t, testPIN), "touch=cached&pin-policy=always")
	rec := devEnroll(t, c, uri)
	want := keystore.PIVEnrollment{Serial: c.Serial(), Firmware: "5.7.1", FormFactor: piv.Formfactor(1).String(),
		Slot: "9d", Algorithm: "p256", PINPolicy: "always", TouchPolicy: "cached"}
	got := *rec
	got.PublicKey, got.PublicKeySHA256, got.AttestationCertificate, got.SlotCertificate = "", nil, "", ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record %+v, want %+v", got, want)
	}
	// The record's certificates verify offline against the roots, and its
	// key is the card's.
	parse := func(s string) *x509.Certificate {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil || blk.Type != "CERTIFICATE" {
			t.Fatalf("not a PEM certificate: %q", s)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	v := piv.Verifier{Roots: c.Roots()}
	a, err := v.Verify(parse(rec.AttestationCertificate), parse(rec.SlotCertificate))
	if err != nil || a.Serial != c.Serial() || a.Slot != piv.SlotKeyManagement {
		t.Fatalf("record does not verify: %v %+v", err, a)
	}
	blk, _ := pem.Decode([]byte(rec.PublicKey))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(c.SlotPublicKey(0x9d))
	if !bytes.Equal(blk.Bytes, der) || pub == nil {
		t.Fatal("record's public key is not the slot's")
	}
	// Sealed blobs name the same fingerprint.
	b := open(t, uri)
	blob, err := b.Seal([]byte("s"), "l")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(blob, []byte(base64.StdEncoding.EncodeToString(rec.PublicKeySHA256))) {
		t.Fatal("sealed blob does not carry the enrolled key's fingerprint")
	}
	// The slot now shows a certificate to PIV tools.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	yk, err := piv.Open(c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	defer yk.Close()
	if cert, err := yk.Certificate(piv.SlotKeyManagement); err != nil || !bytes.Equal(cert.Raw, parse(rec.SlotCertificate).Raw) {
		t.Fatalf("slot certificate: %v", err)
	}
}

// TestPIVEnrollAttestationRefused: enrolment refuses unless the
// attestation chains to the configured roots and attests what was asked.
func TestPIVEnrollAttestationRefused(t *testing.T) {
	stranger, err := pivemu.New(pivemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := newCard(t)
	uri := cardURI(c, "9d", pinSource(t, testPIN), "")
	for _, tc := range []struct {
		name   string
		faults pivemu.Faults
		roots  *x509.CertPool
	}{
		{"UnknownRoot", pivemu.Faults{}, stranger.Roots()},
		{"YubicoRoots", pivemu.Faults{}, nil},
		{"TamperedSignature", pivemu.Faults{CorruptAttestation: true}, c.Roots()},
		{"TouchPolicyDiffers", pivemu.Faults{AttestTouchPolicy: pivemu.TouchPolicyAlways}, c.Roots()},
		{"PINPolicyDiffers", pivemu.Faults{AttestPINPolicy: pivemu.PINPolicyNever}, c.Roots()},
		{"SerialDiffers", pivemu.Faults{AttestSerial: 99999999}, c.Roots()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.SetFaults(tc.faults)
			_, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: tc.roots, Overwrite: true})
			if !errors.Is(err, keystore.ErrPIVAttestation) {
				t.Fatalf("got %v, want ErrPIVAttestation", err)
			}
		})
	}
	// The same card, honest again, enrols.
	c.SetFaults(pivemu.Faults{})
	if _, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots(), Overwrite: true}); err != nil {
		t.Fatal(err)
	}
}

func TestPIVEnrollManagementKey(t *testing.T) {
	custom := make([]byte, 24)
	rand.Read(custom)
	keyFile := func(t *testing.T, k []byte) string {
		p := filepath.Join(t.TempDir(), "mgm")
		os.WriteFile(p, []byte(hex.EncodeToString(k)+"\n"), 0o600)
		return "file:" + p
	}
	for _, tc := range []struct {
		name    string
		cardKey []byte
		cardAlg byte
		version [3]byte
		opts    func(t *testing.T) keystore.PIVEnrollOptions
		err     error
	}{
		{"CustomAES192", custom, pivemu.AlgAES192, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{ManagementKeySource: keyFile(t, custom)}
		}, nil},
		{"Custom3DES", custom, pivemu.Alg3DES, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{ManagementKeySource: keyFile(t, custom)}
		}, nil},
		{"CustomAES128", custom[:16], pivemu.AlgAES128, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{ManagementKeySource: keyFile(t, custom[:16])}
		}, nil},
		{"Old3DESFirmware", custom, pivemu.Alg3DES, [3]byte{5, 2, 7}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{ManagementKeySource: keyFile(t, custom)}
		}, nil},
		{"WrongKey", custom, pivemu.AlgAES192, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{AllowDefaultManagementKey: true}
		}, keystore.ErrPIVManagementKey},
		{"DefaultNotAllowed", nil, 0, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{ManagementKeySource: keyFile(t, pivemu.DefaultManagementKey())}
		}, keystore.ErrConfig},
		{"NoSource", nil, 0, [3]byte{}, func(t *testing.T) keystore.PIVEnrollOptions {
			return keystore.PIVEnrollOptions{}
		}, keystore.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pivemu.Start(t, pivemu.Config{PIN: testPIN, ManagementKey: tc.cardKey, ManagementKeyAlgorithm: tc.cardAlg, Version: tc.version})[0]
			o := tc.opts(t)
			o.Roots = c.Roots()
			_, err := keystore.EnrollPIV(cardURI(c, "9d", pinSource(t, testPIN), ""), o)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if generated := c.SlotPublicKey(0x9d) != nil; generated != (tc.err == nil) {
				t.Fatalf("key generated: %v", generated)
			}
			if err != nil && strings.Contains(strings.ToLower(err.Error()), hex.EncodeToString(custom)[:12]) {
				t.Fatalf("error shows the management key: %v", err)
			}
		})
	}
}

func TestPIVEnrollSlotInUse(t *testing.T) {
	c := newCard(t)
	uri := cardURI(c, "9d", pinSource(t, testPIN), "")
	first := devEnroll(t, c, uri)
	_, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots()})
	if !errors.Is(err, keystore.ErrPIVSlotInUse) {
		t.Fatalf("got %v, want ErrPIVSlotInUse", err)
	}
	again, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots(), Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.PublicKey == first.PublicKey {
		t.Fatal("overwrite kept the key")
	}

	// A slot holding only a certificate (some other use) is in use too.
	yk, err := piv.Open(c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	att, _ := yk.AttestationCertificate()
	err = yk.SetCertificate(piv.DefaultManagementKey, piv.SlotAuthentication, att)
	yk.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = keystore.EnrollPIV(cardURI(c, "9a", pinSource(t, testPIN), ""), keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots()})
	if !errors.Is(err, keystore.ErrPIVSlotInUse) || c.SlotPublicKey(0x9a) != nil {
		t.Fatalf("slot with a certificate: %v", err)
	}
}

// TestPIVWrongPIN: a wrong PIN is a clear *PIVPINError, the card's tries
// go down, the PIN never shows in errors, and the last try is never spent.
func TestPIVWrongPIN(t *testing.T) {
	c := newCard(t)
	good := cardURI(c, "9d", pinSource(t, testPIN), "")
	devEnroll(t, c, good)
	b := open(t, good)
	blob, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()

	const wrong = "99887766"
	bad := open(t, cardURI(c, "9d", pinSource(t, wrong), ""))
	for _, want := range []keystore.PIVPINError{{Retries: 2}, {Retries: 1}, {Retries: 1, NotTried: true}} {
		_, err := bad.Unseal(blob, "signer-1")
		var pe *keystore.PIVPINError
		if !errors.As(err, &pe) || *pe != want || !errors.Is(err, keystore.ErrPIVPIN) {
			t.Fatalf("got %v, want %+v", err, want)
		}
		if errors.Is(err, keystore.ErrUnseal) {
			t.Fatalf("a refused PIN is not a bad blob: %v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), testPIN) {
			t.Fatalf("error shows a PIN: %v", err)
		}
		if got := c.PINRetries(); got != want.Retries {
			t.Fatalf("card has %d tries left, want %d", got, want.Retries)
		}
	}
	bad.Close()

	// Enrolment checks the PIN before it changes anything, under the same
	// rule.
	_, err = keystore.EnrollPIV(cardURI(c, "9a", pinSource(t, wrong), ""), keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots()})
	var pe *keystore.PIVPINError
	if !errors.As(err, &pe) || !pe.NotTried || c.SlotPublicKey(0x9a) != nil {
		t.Fatalf("enrolment with a wrong PIN: %v", err)
	}

	// Even the right PIN is not tried with one try left: a person checks
	// it by hand first, which restores the tries.
	b = open(t, good)
	var pe2 *keystore.PIVPINError
	if _, err := b.Unseal(blob, "signer-1"); !errors.As(err, &pe2) || !pe2.NotTried {
		t.Fatalf("last try spent: %v", err)
	}
	b.Close()
	yk, err := piv.Open(c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if err := yk.VerifyPIN(testPIN); err != nil {
		t.Fatal(err)
	}
	yk.Close()
	if c.PINRetries() != 3 {
		t.Fatalf("tries not restored: %d", c.PINRetries())
	}
	if _, err := open(t, good).Unseal(blob, "signer-1"); err != nil {
		t.Fatal(err)
	}
}

func TestPIVEnrollWrongPINFirstTry(t *testing.T) {
	c := newCard(t)
	_, err := keystore.EnrollPIV(cardURI(c, "9d", pinSource(t, "11112222"), ""), keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots()})
	var pe *keystore.PIVPINError
	if !errors.As(err, &pe) || pe.Retries != 2 || pe.NotTried {
		t.Fatalf("got %v, want a wrong PIN with 2 tries left", err)
	}
	if c.SlotPublicKey(0x9d) != nil {
		t.Fatal("a key was generated despite the wrong PIN")
	}
}

// TestPIVPolicies enrols each PIN and touch policy and checks the card
// is asked for the PIN as the policy says: once per session, before every
// operation, or never.
func TestPIVPolicies(t *testing.T) {
	c := newCard(t) // one card, a slot per case
	src := pinSource(t, testPIN)
	for _, tc := range []struct {
		slot           string
		pin, touch     string
		verifiesPerOp  int // VERIFY with a PIN per Unseal, after the first
		verifiesAtOpen int
	}{
		{"9d", "once", "never", 0, 1},
		{"9a", "always", "never", 1, 1},
		{"9e", "never", "never", 0, 0},
		{"82", "once", "always", 0, 1},
		{"83", "always", "cached", 1, 1},
	} {
		t.Run(tc.pin+"/"+tc.touch, func(t *testing.T) {
			uri := cardURI(c, tc.slot, src, "pin-policy="+tc.pin+"&touch="+tc.touch)
			rec := devEnroll(t, c, uri)
			if rec.PINPolicy != tc.pin || rec.TouchPolicy != tc.touch {
				t.Fatalf("attested %s/%s", rec.PINPolicy, rec.TouchPolicy)
			}
			b := open(t, uri)
			blob, err := b.Seal([]byte("share"), "l")
			if err != nil {
				t.Fatal(err)
			}
			v0, _ := c.PINVerifications()
			ops0 := c.Operations()
			for i := range 3 {
				if _, err := b.Unseal(blob, "l"); err != nil {
					t.Fatal(err)
				}
				v, _ := c.PINVerifications()
				want := tc.verifiesAtOpen + i*tc.verifiesPerOp
				if v-v0 != want {
					t.Fatalf("after %d unseals the card verified the PIN %d times, want %d", i+1, v-v0, want)
				}
			}
			if c.Operations()-ops0 != 3 {
				t.Fatalf("%d card operations for 3 unseals", c.Operations()-ops0)
			}
			b.Close()
		})
	}
	t.Run("NeverNeedsNoSource", func(t *testing.T) {
		uri := fmt.Sprintf("piv:?serial=%d&slot=9c&pin-policy=never", c.Serial())
		devEnroll(t, c, uri)
		b := open(t, uri)
		blob, _ := b.Seal([]byte("s"), "l")
		if _, err := b.Unseal(blob, "l"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPIVOpenErrors(t *testing.T) {
	cs := pivemu.Start(t, pivemu.Config{PIN: testPIN}, pivemu.Config{PIN: testPIN})
	src := pinSource(t, testPIN)
	devEnroll(t, cs[0], cardURI(cs[0], "9d", src, "pin-policy=always"))
	for _, tc := range []struct {
		name string
		uri  string
		err  error
	}{
		{"EmptySlot", cardURI(cs[0], "9a", src, ""), keystore.ErrPIVNoKey},
		{"PolicyDiffers", cardURI(cs[0], "9d", src, ""), keystore.ErrConfig},
		{"TouchDiffers", cardURI(cs[0], "9d", src, "pin-policy=always&touch=always"), keystore.ErrConfig},
		{"NoSuchSerial", fmt.Sprintf("piv:?serial=%d&pin-source=%s", 4242, src), keystore.ErrPIVNoCard},
		{"TwoCardsNoSerial", "piv:?pin-source=" + src, keystore.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := keystore.Open(tc.uri, keystore.Options{})
			if !errors.Is(err, tc.err) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
	// A failed Open releases the cards it looked at.
	for _, c := range cs {
		yk, err := piv.Open(c.Reader())
		if err != nil {
			t.Fatalf("card %d still held: %v", c.Serial(), err)
		}
		yk.Close()
	}
}

func TestPIVOpenOnlyCard(t *testing.T) {
	c := newCard(t)
	devEnroll(t, c, cardURI(c, "9d", pinSource(t, testPIN), ""))
	b := open(t, "piv:?pin-source="+pinSource(t, testPIN))
	blob, err := b.Seal([]byte("share"), "l")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(blob, []byte(fmt.Sprintf(`"serial": %d`, c.Serial()))) {
		t.Fatalf("blob names another card: %s", blob)
	}
}

// TestPIVBlobForOtherSlot: a blob sealed to one slot is refused by a
// backend on another (or on the slot after it was enrolled again) with
// ErrUnseal, before the card is asked: no PIN is spent on it.
func TestPIVBlobForOtherSlot(t *testing.T) {
	c := newCard(t)
	src := pinSource(t, testPIN)
	u9d, u9a := cardURI(c, "9d", src, ""), cardURI(c, "9a", src, "")
	devEnroll(t, c, u9d)
	devEnroll(t, c, u9a)
	secret := []byte("0123456789abcdef-frost-share")
	b := open(t, u9d)
	blob, err := b.Seal(secret, "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret) || bytes.Contains(blob, []byte(base64.StdEncoding.EncodeToString(secret))) ||
		bytes.Contains(blob, []byte(hex.EncodeToString(secret))) {
		t.Fatal("the sealed blob contains the secret")
	}
	b.Close()

	ops, verifies := c.Operations(), func() int { v, _ := c.PINVerifications(); return v }()
	b = open(t, u9a)
	if _, err := b.Unseal(blob, "signer-1"); !errors.Is(err, keystore.ErrUnseal) {
		t.Fatalf("other slot: got %v, want ErrUnseal", err)
	}
	b.Close()
	if v, _ := c.PINVerifications(); c.Operations() != ops || v != verifies {
		t.Fatal("the card was used for a blob of another slot")
	}

	if _, err := keystore.EnrollPIV(u9d, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: c.Roots(), Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, u9d).Unseal(blob, "signer-1"); !errors.Is(err, keystore.ErrUnseal) {
		t.Fatalf("re-enrolled slot: got %v, want ErrUnseal", err)
	}
}

// TestPIVConcurrentAndClose: one backend serves concurrent callers (one
// card operation at a time), and Close releases the card.
func TestPIVConcurrentAndClose(t *testing.T) {
	c := newCard(t)
	uri := cardURI(c, "9d", pinSource(t, testPIN), "")
	devEnroll(t, c, uri)
	b := open(t, uri)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret := []byte(fmt.Sprintf("share-%d", i))
			blob, err := b.Seal(secret, "l")
			if err == nil {
				var got []byte
				if got, err = b.Unseal(blob, "l"); err == nil && !bytes.Equal(got, secret) {
					err = errors.New("wrong secret")
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Held: nobody else can open the card.
	if yk, err := piv.Open(c.Reader()); err == nil {
		yk.Close()
		t.Fatal("the card was not held by the open backend")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	yk, err := piv.Open(c.Reader())
	if err != nil {
		t.Fatalf("card not released by Close: %v", err)
	}
	yk.Close()
	if _, err := b.Seal([]byte("x"), "l"); err == nil {
		t.Fatal("Seal after Close succeeded")
	}
}

// BenchmarkPIVUnseal measures Unseal through piv-go, pcscd and vpcd
// against the emulator (PIN policy once: one ECDH APDU plus a PIN status
// check per call). A real YubiKey's P-256 ECDH adds tens of milliseconds.
func BenchmarkPIVUnseal(b *testing.B) {
	c := newCard(b)
	uri := cardURI(c, "9d", pinSource(b, testPIN), "")
	devEnroll(b, c, uri)
	s := open(b, uri)
	blob, err := s.Seal(make([]byte, 64), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out, err := s.Unseal(blob, "bench")
		if err != nil {
			b.Fatal(err)
		}
		keystore.Wipe(out)
	}
}
