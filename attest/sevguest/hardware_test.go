//go:build sevsnp

package sevguest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/sevguest"
)

// TestHardwareReport gets a real report from this SNP guest and verifies
// it against AMD's built-in roots (fetching the VCEK from KDS if the host
// supplies none). Run inside an SEV-SNP guest, as root:
//
//	go test -tags sevsnp ./attest/sevguest/
func TestHardwareReport(t *testing.T) {
	p, err := sevguest.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rd, err := attest.ReportData(k.Public(), 1, "hardware-test")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Report(context.Background(), rd)
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	cfg := attest.DefaultConfig()
	cfg.AllowAnyMeasurement = true
	cfg.AllowDebug = true
	cfg.KDS = &attest.KDSConfig{CacheDir: t.TempDir()}
	v, err := attest.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), ev, rd)
	if err != nil {
		t.Fatalf("Verify: %v (%s)", err, attest.Reason(err))
	}
	t.Logf("measurement %s, TCB %+v, policy %+v", res.Measurement, res.ReportedTCB, res.Policy)
}
