package coordinator_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

// attestedCluster starts a 2-of-3 cluster whose coordinator requires
// attestation by the fake AMD's roots, with each signer's provider from
// providers (none when absent).
func attestedCluster(t *testing.T, fake *attesttest.Fake, providers map[uint16]attest.Provider, adjust func(*coordinator.AttestationConfig)) *coordinatortest.Cluster {
	t.Helper()
	return coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		SignerOptionsFor: func(id uint16) []signer.Option {
			return []signer.Option{signer.WithAttestationProvider(providers[id])}
		},
		Config: func(cc *coordinator.Config) {
			cc.Attestation = &coordinator.AttestationConfig{Required: true, Verifier: fake.Config()}
			if adjust != nil {
				adjust(cc.Attestation)
			}
		},
	})
}

// waitAdmitted waits until the coordinator could mint; it returns the last
// not-ready detail on timeout.
func waitAdmitted(t *testing.T, c *coordinatortest.Cluster, d time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := c.Coordinator.Ready(context.Background())
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attestations returns frostmint_signer_attestations_total{signer, outcome}.
func attestations(t *testing.T, c *coordinatortest.Cluster, id uint16, outcome string) float64 {
	t.Helper()
	v, _ := telemetrytest.Scrape(t, c.Issuer+"/metrics").Value("frostmint_signer_attestations_total", "signer", fmt.Sprint(id), "outcome", outcome)
	return v
}

func TestAttestationRequiredAllAttested(t *testing.T) {
	fake := attesttest.New(t)
	p := fake.Provider()
	c := attestedCluster(t, fake, map[uint16]attest.Provider{1: p, 2: p, 3: p}, nil)
	if err := waitAdmitted(t, c, 20*time.Second); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	cl := c.Client(t)
	for range 3 {
		if _, err := cl.Mint(ctx(t), "https://api.example.com", []string{"read"}, time.Minute); err != nil {
			t.Fatalf("Mint: %v", err)
		}
	}
	for id := uint16(1); id <= 3; id++ {
		if v := attestations(t, c, id, "admitted"); v < 1 {
			t.Errorf("signer %d: attestations_total{admitted} = %v", id, v)
		}
	}
	if v, _ := telemetrytest.Scrape(t, c.Issuer+"/metrics").Value("frostmint_signer_admitted"); v != 3 {
		t.Errorf("signer_admitted sums to %v, want 3", v)
	}
}

// Signers without attestation are left out; too few left fails the mint
// with a clear no-quorum error naming why.
func TestAttestationRequiredAbsent(t *testing.T) {
	fake := attesttest.New(t)
	c := attestedCluster(t, fake, map[uint16]attest.Provider{1: fake.Provider()}, nil)
	cl := c.Client(t)
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, err = cl.Mint(ctx(t), "https://api.example.com", []string{"read"}, time.Minute)
		// Checks run signer by signer: wait until both were judged.
		if msg := status.Convert(err).Message(); strings.Contains(msg, "signer 2: not admitted: no_attestation") &&
			strings.Contains(msg, "signer 3: not admitted: no_attestation") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no quorum") {
		t.Fatalf("Mint = %v; want UNAVAILABLE no quorum", err)
	}
	for _, want := range []string{"signer 2: not admitted: no_attestation", "signer 3: not admitted: no_attestation"} {
		if !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("Mint error %q does not say %q", status.Convert(err).Message(), want)
		}
	}
	if v := attestations(t, c, 2, "no_attestation"); v < 1 {
		t.Errorf("attestations_total{2, no_attestation} = %v", v)
	}
	if err := c.Coordinator.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "signer 2 not admitted") {
		t.Errorf("Ready = %v; want the not-admitted signers in the detail", err)
	}
}

// One signer with an unknown measurement is refused; the two others make
// a quorum and mint.
func TestAttestationWrongMeasurement(t *testing.T) {
	fake := attesttest.New(t)
	rogue := attesttest.New(t)
	rogue.SetMeasurement(attesttest.Measurement(9))
	c := attestedCluster(t, fake, map[uint16]attest.Provider{1: rogue.Provider(), 2: fake.Provider(), 3: fake.Provider()}, nil)
	if err := waitAdmitted(t, c, 20*time.Second); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	waitFor(t, "signer 1's refusal", func() bool { return attestations(t, c, 1, "measurement") >= 1 })
	cl := c.Client(t)
	for range 4 {
		resp, err := cl.Mint(ctx(t), "https://api.example.com", []string{"read"}, time.Minute)
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		for _, id := range resp.GetSignerIds() {
			if id == 1 {
				t.Fatal("the signer with a wrong measurement signed")
			}
		}
	}
}

// A certificate rotation (new TLS key) makes the coordinator attest the
// signer again, bound to the new key; evidence still bound to the old key
// is refused.
func TestAttestationKeyRotation(t *testing.T) {
	fake := attesttest.New(t)
	var mu sync.Mutex
	stale := false // signer 1 replays its first report
	var first *attest.Evidence
	p1 := attest.ProviderFunc(func(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
		mu.Lock()
		defer mu.Unlock()
		if stale && first != nil {
			return first, nil
		}
		ev, err := fake.Evidence(rd)
		if first == nil {
			first = ev
		}
		return ev, err
	})
	c := attestedCluster(t, fake, map[uint16]attest.Provider{1: p1, 2: fake.Provider(), 3: fake.Provider()}, nil)
	if err := waitAdmitted(t, c, 20*time.Second); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	before := attestations(t, c, 1, "admitted")
	if before < 1 {
		t.Fatal("signer 1 never attested")
	}
	rotate := func() {
		c.StopSigner(1)
		s := c.Signers[1]
		files, err := c.CA.Issue(c.Dir, "signer-1", leafFor(coordinatortest.SignerIdentity(1)))
		if err != nil {
			t.Fatal(err)
		}
		s.Config.TLS = files
		c.StartSigner(t, 1)
	}
	rotate()
	waitFor(t, "signer 1 attested again", func() bool { return attestations(t, c, 1, "admitted") > before })

	mu.Lock()
	stale = true
	mu.Unlock()
	rotate()
	waitFor(t, "the replayed report refused", func() bool { return attestations(t, c, 1, "report_data") >= 1 })
	cl := c.Client(t)
	for range 3 {
		resp, err := cl.Mint(ctx(t), "https://api.example.com", []string{"read"}, time.Minute)
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		for _, id := range resp.GetSignerIds() {
			if id == 1 {
				t.Fatal("signer 1 signed with a report bound to its old key")
			}
		}
	}
}

// Not required: an unattested signer is used, unless the admission
// policy says otherwise.
func TestAttestationNotRequired(t *testing.T) {
	fake := attesttest.New(t)
	c := attestedCluster(t, fake, map[uint16]attest.Provider{1: fake.Provider()}, func(a *coordinator.AttestationConfig) {
		a.Required = false
		m := attesttest.Measurement(1)
		a.Verifier.Measurements = []string{hex.EncodeToString(m[:])}
	})
	if err := waitAdmitted(t, c, 20*time.Second); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	if _, err := c.Client(t).Mint(ctx(t), "https://api.example.com", []string{"read"}, time.Minute); err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if v := attestations(t, c, 2, "admitted_unattested"); v < 1 {
		t.Errorf("attestations_total{2, admitted_unattested} = %v", v)
	}
}

func TestAttestationConfigValidate(t *testing.T) {
	a := &coordinator.AttestationConfig{Recheck: -1}
	err := a.Validate()
	if err == nil || !strings.Contains(err.Error(), "recheck") || !strings.Contains(err.Error(), "measurements") {
		t.Fatalf("Validate = %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leafFor(id string) mtls.Leaf {
	return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour}
}

// With attestation required, the coordinator's ceremony relay checks the
// evidence in every round-1 package itself: a signer without any is named
// by the relay at round 1, before anything reaches the other signers.
func TestCeremonyRelayRequiresAttestation(t *testing.T) {
	fake := attesttest.New(t)
	p := fake.Provider()
	for _, tc := range []struct {
		name      string
		providers map[uint16]attest.Provider
		culprit   uint16 // 0: the ceremony completes
	}{
		{"all attested", map[uint16]attest.Provider{1: p, 2: p, 3: p}, 0},
		{"signer 3 not attested", map[uint16]attest.Provider{1: p, 2: p}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, NoKeys: true,
				SignerOptionsFor: func(id uint16) []signer.Option {
					return []signer.Option{signer.WithAttestationProvider(tc.providers[id])}
				},
				Config: func(cc *coordinator.Config) {
					cc.Attestation = &coordinator.AttestationConfig{Required: true, Verifier: fake.Config()}
				},
			})
			kid, err := runCeremony(t, c, 2)
			if tc.culprit == 0 {
				if err != nil || kid == "" {
					t.Fatalf("ceremony: %v", err)
				}
				return
			}
			var ce *sceremony.CheatError
			if !errors.As(sceremony.FromStatus(err), &ce) || ce.Culprit != tc.culprit || ce.Reporter != sceremony.Relay ||
				ce.Fault != ceremonyv1.Fault_FAULT_ATTESTATION {
				t.Fatalf("ceremony: %v, want signer %d blamed by the relay for its attestation", err, tc.culprit)
			}
		})
	}
}
