package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// guardianEnroll walks an engineer through enrolling a workstation as a
// guardian: the keystore that will seal its share (creating the token key
// or the card's slot key, with the card's attestation checked), its mTLS
// identity (a key and a certificate request for the cluster's CA), an
// enrolment record, and a guardian config to finish.
func (e env) guardianEnroll(ctx context.Context, args []string) int {
	fs := e.flags("guardian enroll", "guardian enroll --id N --keystore URI --trust-domain TD --coordinator ADDR --out DIR [--dev]")
	id := fs.Uint("id", 0, "this guardian's signer id in the group (required)")
	ks := fs.String("keystore", "", "keystore URI: pkcs11:…, piv:… or (with --dev) file:?passphrase=… (required)")
	td := fs.String("trust-domain", "", "the cluster's SPIFFE trust domain (required)")
	coord := fs.String("coordinator", "", "the coordinator's gRPC address host:port (required)")
	out := fs.String("out", "", "directory for the identity key, request, record and config (required)")
	dev := fs.Bool("dev", false, "allow the development-only file keystore")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *id == 0 || *id > 65535 || *ks == "" || *td == "" || *coord == "" || *out == "" || fs.NArg() > 0 {
		return e.usageErr(fs, "--id, --keystore, --trust-domain, --coordinator and --out are required")
	}
	spiffe := fmt.Sprintf("spiffe://%s/signer/%d", *td, *id)
	if err := mtls.CheckSPIFFE(spiffe); err != nil {
		return e.usageErr(fs, err.Error())
	}
	fail := func(step string, err error) int {
		fmt.Fprintf(e.stderr, "  failed: %s: %v\nenrolment stopped; nothing was sent anywhere.\n", step, err)
		return exitRejected
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fail("output directory", err)
	}
	record := map[string]any{"signer_id": *id, "identity": spiffe, "enrolled_at": time.Now().UTC().Format(time.RFC3339)}

	fmt.Fprintf(e.stdout, "[1/4] keystore %s\n", keystore.Redact(*ks))
	kind, err := prepareKeystore(*ks, *dev, record, e)
	if err != nil {
		return fail("keystore", err)
	}
	b, err := keystore.Open(*ks, keystore.Options{Dev: *dev})
	if err != nil {
		return fail("opening the keystore", err)
	}
	probe, err := b.Seal([]byte("frostmint enrolment probe"), "enrolment-probe")
	if err == nil {
		_, err = b.Unseal(probe, "enrolment-probe")
	}
	b.Close()
	if err != nil {
		return fail("a test seal and unseal", err)
	}
	fmt.Fprintf(e.stdout, "      %s keystore seals and unseals: ok\n", kind)

	fmt.Fprintf(e.stdout, "[2/4] identity %s\n", spiffe)
	keyPath, csrPath := filepath.Join(*out, "guardian.key"), filepath.Join(*out, "guardian.csr")
	if err := writeIdentity(spiffe, keyPath, csrPath); err != nil {
		return fail("identity", err)
	}
	fmt.Fprintf(e.stdout, "      private key %s (0600, stays here)\n      certificate request %s (send it to the cluster operator)\n", keyPath, csrPath)

	fmt.Fprintf(e.stdout, "[3/4] enrolment record\n")
	recPath := filepath.Join(*out, "enrollment.json")
	rb, _ := json.MarshalIndent(record, "", "  ")
	if err := os.WriteFile(recPath, append(rb, '\n'), 0o600); err != nil {
		return fail("enrolment record", err)
	}
	fmt.Fprintf(e.stdout, "      %s\n", recPath)

	fmt.Fprintf(e.stdout, "[4/4] guardian config\n")
	cfg := signer.Default()
	cfg.ID = uint16(*id)
	cfg.TLS = mtls.Files{Cert: filepath.Join(*out, "guardian.crt"), Key: keyPath, CA: filepath.Join(*out, "ca.crt")}
	cfg.Coordinators = []string{fmt.Sprintf("spiffe://%s/coordinator", *td)}
	cfg.KeysDir = filepath.Join(*out, "keys")
	cfg.Keystore = *ks
	cfg.Dev = *dev
	cfg.AuditLog = filepath.Join(*out, "audit.ndjson")
	cfg.Guardian = &signer.GuardianConfig{Coordinator: *coord, Prompt: "tty", Notify: true}
	cfgPath := filepath.Join(*out, "guardian.json")
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, append(cb, '\n'), 0o600); err != nil {
		return fail("guardian config", err)
	}
	fmt.Fprintf(e.stdout, "      %s\n", cfgPath)
	fmt.Fprintf(e.stdout, `
Next:
  1. Send %s and %s to the cluster operator. They sign the request with the
     cluster CA, add {"id": %d, "identity": %q, "guardian": true} to the
     coordinator's signers and your identity to every signer's approvers.
  2. Put the certificate at %s and the CA at %s; fill in issuer and callers
     (the same as the other signers') in %s.
  3. Start the guardian: frostmint guardian run --config %s
  4. Take part in the next key ceremony: your share is sealed by this keystore.
`, csrPath, recPath, *id, spiffe, cfg.TLS.Cert, cfg.TLS.CA, cfgPath, cfgPath)
	return exitOK
}

// prepareKeystore creates the keystore's key where enrolment must: the
// token's AES key for PKCS#11, the attested slot key for PIV.
func prepareKeystore(uri string, dev bool, record map[string]any, e env) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("%w: the URI does not parse", keystore.ErrConfig)
	}
	record["keystore"] = u.Scheme
	switch u.Scheme {
	case "pkcs11":
		fmt.Fprintf(e.stdout, "      creating the non-extractable AES-256 sealing key in the token…\n")
		err := keystore.InitPKCS11Key(uri)
		if err != nil {
			return "", err
		}
		return "PKCS#11", nil
	case "piv":
		fmt.Fprintf(e.stdout, "      generating the slot key on the card and checking its attestation…\n")
		return "PIV", enrollPIV(uri, record, e)
	case "file":
		if !dev {
			return "", fmt.Errorf("%w: the file keystore is for development only (--dev)", keystore.ErrConfig)
		}
		fmt.Fprintf(e.stdout, "      development keystore: the share will be sealed by a passphrase\n")
		return "passphrase (dev)", nil
	}
	return "", fmt.Errorf("%w: unknown scheme %q", keystore.ErrConfig, u.Scheme)
}

// writeIdentity makes the guardian's mTLS key (P-256) and a certificate
// request for its SPIFFE ID.
func writeIdentity(spiffe, keyPath, csrPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	u, err := url.Parse(spiffe)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: strings.TrimPrefix(spiffe, "spiffe://")},
		URIs:    []*url.URL{u},
	}, key)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(csrPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644)
}
