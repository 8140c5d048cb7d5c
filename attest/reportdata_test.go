package attest_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/frostmint/frostmint/attest"
)

// vector is testdata/reportdata_v1.json.
type vector struct {
	Comment    string `json:"comment"`
	Ed25519Key string `json:"ed25519_seed_hex"`
	SPKI       string `json:"spki_der_hex"`
	SignerID   uint16 `json:"signer_id"`
	PolicyHash string `json:"policy_hash"`
	ReportData string `json:"report_data_hex"`
}

func TestReportDataVector(t *testing.T) {
	b, err := os.ReadFile("testdata/reportdata_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString(v.Ed25519Key)
	pub := ed25519.NewKeyFromSeed(seed).Public()
	got, err := attest.ReportData(pub, v.SignerID, v.PolicyHash)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != v.ReportData {
		t.Fatalf("ReportData = %x, want %s", got, v.ReportData)
	}
	spki, _ := hex.DecodeString(v.SPKI)
	if got2 := attest.ReportDataSPKI(spki, v.SignerID, v.PolicyHash); got2 != got {
		t.Fatalf("ReportDataSPKI = %x, want %x", got2, got)
	}
}

// Every input changes the binding.
func TestReportDataSeparates(t *testing.T) {
	k1 := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	k2 := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1)).Public()
	base, _ := attest.ReportData(k1, 1, "h")
	for name, f := range map[string]func() ([64]byte, error){
		"key":    func() ([64]byte, error) { return attest.ReportData(k2, 1, "h") },
		"id":     func() ([64]byte, error) { return attest.ReportData(k1, 2, "h") },
		"policy": func() ([64]byte, error) { return attest.ReportData(k1, 1, "i") },
		"empty":  func() ([64]byte, error) { return attest.ReportData(k1, 1, "") },
	} {
		got, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if got == base {
			t.Errorf("%s: same report data", name)
		}
	}
	if _, err := attest.ReportData(struct{}{}, 1, "h"); err == nil {
		t.Error("ReportData of a non-key: no error")
	}
}
