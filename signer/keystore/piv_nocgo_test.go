//go:build !cgo

package keystore_test

import (
	"errors"
	"os"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
)

// TestPIVWithoutCgo: a build without cgo has no card access; it says so
// with ErrConfig, after checking the URI. The emulator tests
// (piv_emu_test.go) are not even compiled then, so with
// FROSTMINT_REQUIRE_EMULATORS=1 (CI) this test fails instead of letting
// the PIV backend go untested.
func TestPIVWithoutCgo(t *testing.T) {
	if _, err := keystore.Open("piv:?pin-source=env:FM_PIN", keystore.Options{}); !errors.Is(err, keystore.ErrConfig) {
		t.Fatalf("Open: %v, want ErrConfig", err)
	}
	if _, err := keystore.EnrollPIV("piv:?pin-source=env:FM_PIN", keystore.PIVEnrollOptions{}); !errors.Is(err, keystore.ErrConfig) {
		t.Fatalf("EnrollPIV: %v, want ErrConfig", err)
	}
	if os.Getenv("FROSTMINT_REQUIRE_EMULATORS") == "1" {
		t.Fatal("this build has no cgo: the PIV backend's emulator tests cannot run (FROSTMINT_REQUIRE_EMULATORS=1)")
	}
}
