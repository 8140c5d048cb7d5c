package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/frostmint/frostmint/signer/keystore"
)

// enrollPIV generates the slot key on the card, checks its attestation
// (against Yubico's roots, or FROSTMINT_PIV_ATTESTATION_ROOTS, a PEM file,
// for test cards), and records the result. The management key comes from
// FROSTMINT_PIV_MANAGEMENT_KEY (a source: env:NAME or file:PATH); the
// factory key is refused unless FROSTMINT_PIV_ALLOW_DEFAULT_KEY=1.
func enrollPIV(uri string, record map[string]any, e env) error {
	o := keystore.PIVEnrollOptions{
		ManagementKeySource:       os.Getenv("FROSTMINT_PIV_MANAGEMENT_KEY"),
		AllowDefaultManagementKey: os.Getenv("FROSTMINT_PIV_ALLOW_DEFAULT_KEY") == "1",
	}
	if f := os.Getenv("FROSTMINT_PIV_ATTESTATION_ROOTS"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("attestation roots: %w", err)
		}
		o.Roots = x509.NewCertPool()
		if !o.Roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("attestation roots: %s holds no certificate", f)
		}
	}
	rec, err := keystore.EnrollPIV(uri, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "      card %d, firmware %s, slot %s, %s key generated on the card\n", rec.Serial, rec.Firmware, rec.Slot, rec.Algorithm)
	fmt.Fprintf(e.stdout, "      attestation verified: PIN policy %s, touch policy %s\n", rec.PINPolicy, rec.TouchPolicy)
	record["piv"] = rec
	return nil
}
