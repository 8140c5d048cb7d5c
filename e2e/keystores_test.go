package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/pivemu"
	"github.com/frostmint/frostmint/signer/keystore/softhsmtest"
)

// hardwareKeystores returns the keystore URI of each signer of the
// hardware cluster, with the devices' keys created as enrolment does:
// signers 1 and 3 (the guardian) seal with an AES key in a SoftHSM2 token;
// signer 2 with the P-256 slot key of an emulated YubiKey PIV card,
// generated on the card and its attestation checked.
func hardwareKeystores(t *testing.T) map[uint16]string {
	t.Helper()
	hsm := softhsmtest.NewHSM(t)
	out := map[uint16]string{}
	for _, id := range []uint16{1, 3} {
		uri := hsm.NewToken(t).URI("frostmint-share-key")
		if err := keystore.InitPKCS11Key(uri); err != nil {
			t.Fatal(err)
		}
		out[id] = uri
	}
	const pin = "271828"
	card := pivemu.Start(t, pivemu.Config{PIN: pin})[0]
	pinFile := filepath.Join(t.TempDir(), "piv-pin")
	if err := os.WriteFile(pinFile, []byte(pin), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := fmt.Sprintf("piv:?serial=%d&slot=9d&pin-source=file:%s", card.Serial(), pinFile)
	rec, err := keystore.EnrollPIV(uri, keystore.PIVEnrollOptions{AllowDefaultManagementKey: true, Roots: card.Roots()})
	if err != nil {
		t.Fatalf("enrolling the PIV card: %v", err)
	}
	t.Logf("PIV card %d enrolled: slot %s, attested on firmware %s", card.Serial(), rec.Slot, rec.Firmware)
	out[2] = uri
	return out
}
