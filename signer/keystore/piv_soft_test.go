package keystore_test

import (
	"crypto/ecdh"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
)

// TestPIVSoftSuite runs the shared suite on the PIV backend's sealing
// over a software card, for both key types, in any build. The emulator
// tests (piv_emu_test.go) run it again through piv-go and pcscd.
func TestPIVSoftSuite(t *testing.T) {
	for name, curve := range map[string]ecdh.Curve{"P256": ecdh.P256(), "X25519": ecdh.X25519()} {
		t.Run(name, func(t *testing.T) {
			s, err := keystore.NewPIVSoftBackend(12345678, 0x9d, curve)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := keystore.NewPIVSoftBackend(12345678, 0x9d, curve) // same card and slot, another key
			keystoretest.Run(t, s, other)
			otherSlot, _ := keystore.NewPIVSoftBackend(12345678, 0x9a, curve)
			keystoretest.Run(t, s, otherSlot)
		})
	}
}

// TestPIVOpenURIErrors goes through keystore.Open: every bad piv: URI is
// an ErrConfig naming no secret, before any card is looked for.
func TestPIVOpenURIErrors(t *testing.T) {
	const pin = "73915562"
	t.Setenv("FM_TEST_PIV_PIN", pin)
	for _, uri := range []string{
		"piv:?pin=" + pin,
		"piv:?pin-value=" + pin + "&pin-source=env:FM_TEST_PIV_PIN",
		"piv:?pin-source=" + pin,
		"piv:?pin-source=env:FM_TEST_PIV_PIN&slot=9b",
		"piv:?pin-source=env:FM_TEST_PIV_PIN&bogus=1",
		"piv:?pin-source=env:FM_TEST_PIV_PIN&touch=maybe",
		"piv:?pin-source=env:FM_TEST_PIV_PIN&pin-policy=sometimes",
		"piv:?pin-source=env:FM_TEST_PIV_PIN&serial=twelve",
		"piv:?slot=9d",
	} {
		b, err := keystore.Open(uri, keystore.Options{})
		if !errors.Is(err, keystore.ErrConfig) {
			if b != nil {
				b.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrConfig", uri, err)
			continue
		}
		if strings.Contains(err.Error(), pin) {
			t.Errorf("Open(%q): the error shows the PIN: %v", uri, err)
		}
	}
	if os.Getenv("FM_TEST_PIV_PIN") != pin {
		t.Fatal("environment changed")
	}
}
