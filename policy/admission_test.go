package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdmitSignerDefaultBundle(t *testing.T) {
	e, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, att := range []map[string]any{nil, {"attested": true, "measurement": "ab"}} {
		a, err := e.AdmitSigner(context.Background(), AdmissionInput{SignerID: 1, Identity: "spiffe://x/y", Attestation: att})
		if err != nil || !a.Admit {
			t.Fatalf("AdmitSigner(%v) = %+v, %v; the default bundle admits every signer", att, a, err)
		}
	}
}

func TestAdmitSignerCustom(t *testing.T) {
	dir := t.TempDir()
	mint, err := os.ReadFile("bundle/mint.rego")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mint = mint[:strings.Index(string(mint), "# Signer admission")]
	write("mint.rego", string(mint))
	write("data.json", `{"frostmint": {"config": {"trust_domains": ["dev.frostmint.local"]}, "allowed": ["aa"]}}`)
	write("admission.rego", `package frostmint.mint
import rego.v1
default admit_signer := {"admit": false, "reasons": ["not attested with an allowed measurement"]}
admit_signer := {"admit": true, "reasons": []} if {
	input.attestation.attested
	input.attestation.measurement in data.frostmint.allowed
}`)
	e, err := New(context.Background(), WithFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a, err := e.AdmitSigner(ctx, AdmissionInput{SignerID: 1, Attestation: map[string]any{"attested": true, "measurement": "aa"}}); err != nil || !a.Admit {
		t.Fatalf("allowed measurement: %+v, %v", a, err)
	}
	if a, err := e.AdmitSigner(ctx, AdmissionInput{SignerID: 1, Attestation: map[string]any{"attested": true, "measurement": "bb"}}); err != nil || a.Admit || len(a.Reasons) != 1 {
		t.Fatalf("other measurement: %+v, %v", a, err)
	}
	if a, err := e.AdmitSigner(ctx, AdmissionInput{SignerID: 1}); err != nil || a.Admit {
		t.Fatalf("unattested: %+v, %v", a, err)
	}

	// A malformed decision fails closed.
	write("admission.rego", `package frostmint.mint
import rego.v1
admit_signer := {"admit": "yes"}`)
	e, err = New(ctx, WithFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := e.AdmitSigner(ctx, AdmissionInput{SignerID: 1}); !errors.Is(err, ErrEvaluation) || a.Admit {
		t.Fatalf("malformed decision: %+v, %v", a, err)
	}
}
