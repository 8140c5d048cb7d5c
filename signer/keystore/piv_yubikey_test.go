//go:build yubikey && cgo

package keystore_test

// TestYubiKey is the manual test of the PIV backend against a physical
// YubiKey (firmware 4.3 or later; 5.7 or later for X25519). CI never runs
// it: it needs the build tag and a card.
//
// Read-only run, on a slot enrolled before (by EnrollPIV or by this test):
//
//	export YK_PIN=…   # the card's PIN
//	export FROSTMINT_YUBIKEY_URI='piv:?serial=12345678&slot=82&pin-source=env:YK_PIN'
//	go test -tags yubikey -count=1 -v ./signer/keystore -run TestYubiKey
//
// It opens the slot, checks the key is there with the URI's policies,
// and runs the shared suite (seal, unseal, wrong label, tampering): each
// Unseal is an ECDH on the card (touch the key when it blinks if the
// slot's touch policy asks). It changes nothing on the card, beyond
// spending PIN tries if YK_PIN is wrong (never the last one).
//
// To enrol the slot first (generates a new key in it, verified against
// Yubico's attestation roots), add:
//
//	export YK_MGMT=…  # the management key, hex (ykman piv access change-management-key)
//	export FROSTMINT_YUBIKEY_ENROLL=1 FROSTMINT_YUBIKEY_MGMT=env:YK_MGMT
//
// Enrolment refuses a slot that already holds a key or certificate unless
// FROSTMINT_YUBIKEY_OVERWRITE=1 is also set; whatever that key sealed is
// then lost. Prefer a retired slot (82 to 95), leaving 9a, 9c, 9d and 9e
// to their usual uses. FROSTMINT_YUBIKEY_ALGORITHM=x25519 enrols an
// X25519 key. The test never resets the card and never changes its PIN,
// PUK or management key.

import (
	"crypto/ecdh"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
)

func TestYubiKey(t *testing.T) {
	uri := os.Getenv("FROSTMINT_YUBIKEY_URI")
	if uri == "" {
		t.Skip("set FROSTMINT_YUBIKEY_URI (see the comment of TestYubiKey in piv_yubikey_test.go)")
	}
	if os.Getenv("FROSTMINT_YUBIKEY_ENROLL") == "1" {
		rec, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{
			ManagementKeySource: os.Getenv("FROSTMINT_YUBIKEY_MGMT"),
			Overwrite:           os.Getenv("FROSTMINT_YUBIKEY_OVERWRITE") == "1",
			Algorithm:           os.Getenv("FROSTMINT_YUBIKEY_ALGORITHM"),
		})
		if err != nil {
			t.Fatalf("EnrollPIV: %v", err)
		}
		j, _ := json.MarshalIndent(rec, "", "  ")
		t.Logf("enrolment record:\n%s", j)
	}
	b, err := keystore.Open(uri, keystore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()

	start := time.Now()
	sealed, err := b.Seal([]byte("manual test share"), "yubikey")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Seal: %v (no card operation)", time.Since(start))
	for range 3 {
		start = time.Now()
		if _, err := b.Unseal(sealed, "yubikey"); err != nil {
			t.Fatal(err)
		}
		t.Logf("Unseal: %v", time.Since(start))
	}

	// The other sealer is a software one: a second backend cannot open
	// the card while this one holds it.
	other, err := keystore.NewPIVSoftBackend(1, 0x9d, ecdh.P256())
	if err != nil {
		t.Fatal(err)
	}
	keystoretest.Run(t, b, other)
}
