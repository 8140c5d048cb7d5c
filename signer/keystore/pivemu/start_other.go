//go:build !cgo || !unix

package pivemu

import (
	"os"
	"testing"
)

// EnvRequire set to 1 turns a missing emulator environment into a test
// failure instead of a skip.
const EnvRequire = "FROSTMINT_REQUIRE_EMULATORS"

// Start needs piv-go, hence cgo and libpcsclite, to see the cards through
// pcscd; this build has neither, so it skips the test (or fails it when
// FROSTMINT_REQUIRE_EMULATORS=1).
func Start(t testing.TB, cfgs ...Config) []*Card {
	t.Helper()
	const msg = "pivemu: this build has no cgo (or is not unix); the PC/SC emulator needs CGO_ENABLED=1 and libpcsclite"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}
