package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/devcluster"
)

// TestAttestationAbsentHere runs the real daemons on this machine, which
// is not an SEV-SNP guest: the signers (provider "auto") have no
// attestation — none is faked — so a coordinator that requires it mints
// nothing, says why, and is not ready; the same cluster without the
// requirement mints.
func TestAttestationAbsentHere(t *testing.T) {
	f := prepareFaultCluster(t)
	f.coord.Attestation = &coordinator.AttestationConfig{Required: true,
		Verifier: attest.Config{AllowAnyMeasurement: true}}
	for _, s := range f.info.Signers {
		f.startSigner(s.ID)
	}
	f.startCoordinator()
	c := f.client()

	// Give the coordinator time to ask every signer (its checks run on
	// its maintenance tick).
	var err error
	f.waitUntil(30*time.Second, "every signer checked", func() bool {
		return metric(t, "http://"+f.coord.HTTPListen+"/metrics", `frostmint_signer_attestations_total{outcome="no_attestation",signer="3"}`) > 0 &&
			metric(t, "http://"+f.coord.HTTPListen+"/metrics", `frostmint_signer_attestations_total{outcome="no_attestation",signer="1"}`) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Mint(ctx, devcluster.DemoAudience, []string{"read"}, 0)
	if st, _ := status.FromError(err); err == nil || st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "not admitted") {
		t.Fatalf("mint with required attestation on a non-SNP machine: %v; want UNAVAILABLE naming the signers not admitted", err)
	}
	if code := httpStatus(t, "http://"+f.coord.HTTPListen+"/readyz"); code == http.StatusOK {
		t.Error("the coordinator is ready without a quorum of attested signers")
	}

	// Not required: the same signers mint.
	f.stop("coordinator")
	f.coord.Attestation.Required = false
	f.startCoordinator()
	f.waitUntil(30*time.Second, "a mint without required attestation", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Mint(ctx, devcluster.DemoAudience, []string{"read"}, 0)
		return err == nil
	})
}

// metric returns the value of the sample line that starts with name (0
// when absent).
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v
			}
		}
	}
	return 0
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
