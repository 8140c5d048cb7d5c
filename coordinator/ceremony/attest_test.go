package ceremony_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
)

// attestedCluster starts n participants whose round-1 packages carry
// evidence from fake (participant id's from providers[id] instead when
// listed; nil: none), each requiring attested peers when peers is set.
func attestedCluster(t *testing.T, n int, fake *attesttest.Fake, providers map[uint16]attest.Provider, peers bool) *ceremonytest.Cluster {
	t.Helper()
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	return ceremonytest.Start(t, ceremonytest.Options{N: n, Configure: func(id uint16, cfg *sceremony.ParticipantConfig) {
		cfg.Attestation.Provider = fake.Provider()
		if p, ok := providers[id]; ok {
			cfg.Attestation.Provider = p
		}
		if peers {
			cfg.Attestation.Verifier, cfg.Attestation.Required = v, true
		}
	}})
}

// attestingRelay is a relay that checks evidence with fake's config.
func attestingRelay(t *testing.T, c *ceremonytest.Cluster, fake *attesttest.Fake, required bool) *relay.Relay {
	t.Helper()
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.NewRelay(relay.Config{Roots: func() *x509.CertPool { return c.Roots }, RoundTimeout: 20 * time.Second, Attestation: v, RequireAttestation: required})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A relay that requires attestation checks every round-1 package before
// forwarding it: a participant without acceptable evidence is named at
// round 1 by the relay itself, and nothing is written.
func TestRelayRequiresAttestation(t *testing.T) {
	fake := attesttest.New(t)
	t.Run("all attested", func(t *testing.T) {
		c := attestedCluster(t, 3, fake, nil, false)
		if _, err := attestingRelay(t, c, fake, true).Run(context.Background(), c.Participants(t), 2, nil); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name     string
		provider attest.Provider
		required bool
		want     error
	}{
		{"no evidence", nil, true, attest.ErrNoAttestation},
		{"measurement not allowed", fake.MeasuredProvider(attesttest.Measurement(3)), true, attest.ErrMeasurement},
		{"measurement not allowed, not required", fake.MeasuredProvider(attesttest.Measurement(3)), false, attest.ErrMeasurement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := attestedCluster(t, 3, fake, map[uint16]attest.Provider{2: tc.provider}, false)
			var rec recorder
			_, err := attestingRelay(t, c, fake, tc.required).Run(context.Background(), c.Participants(t), 2, rec.add)
			var ce *sceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != 2 || ce.Reporter != sceremony.Relay || ce.Fault != ceremonyv1.Fault_FAULT_ATTESTATION {
				t.Fatalf("got %v, want participant 2 blamed by the relay for its attestation", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want it to wrap %v", err, tc.want)
			}
			var ae *relay.AbortError
			if !errors.As(err, &ae) || ae.Stage != "begin" || ae.Participant != 2 {
				t.Fatalf("got %v, want an abort at begin over participant 2", err)
			}
			if rec.count(ceremonyv1.EventKind_EVENT_KIND_ABORTED) != 1 {
				t.Fatal("no ABORTED event")
			}
			if w := keysWritten(t, c); len(w) != 0 {
				t.Fatalf("written: %v", w)
			}
			waitIdle(t, c)
		})
	}
	t.Run("no evidence, not required", func(t *testing.T) {
		c := attestedCluster(t, 3, fake, map[uint16]attest.Provider{2: nil}, false)
		if _, err := attestingRelay(t, c, fake, false).Run(context.Background(), c.Participants(t), 2, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("required without a verifier", func(t *testing.T) {
		if _, err := relay.NewRelay(relay.Config{Roots: x509.NewCertPool, RequireAttestation: true}); err == nil {
			t.Fatal("accepted")
		}
	})
}

// The evidence is inside the signed round-1 body: a relay that alters it
// (or strips it, which re-encodes the body) on the way to participant 2
// breaks the sender's signature, and participant 2 blames the relay.
func TestRelayTampersWithAttestation(t *testing.T) {
	fake := attesttest.New(t)
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, pkg *ceremonyv1.Round1Package)
	}{
		{"report byte flipped", func(t *testing.T, pkg *ceremonyv1.Round1Package) {
			var body ceremonyv1.Round1Body
			if err := proto.Unmarshal(pkg.Body, &body); err != nil {
				t.Error(err)
				return
			}
			report := body.GetAttestation().GetReport()
			i := bytes.Index(pkg.Body, report[0x90:0xC0]) // the measurement
			if len(report) == 0 || i < 0 {
				t.Error("no evidence in the round-1 body")
				return
			}
			pkg.Body[i] ^= 1
		}},
		{"evidence stripped", func(t *testing.T, pkg *ceremonyv1.Round1Package) {
			var body ceremonyv1.Round1Body
			if err := proto.Unmarshal(pkg.Body, &body); err != nil {
				t.Error(err)
				return
			}
			body.Attestation = nil
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&body)
			if err != nil {
				t.Error(err)
			}
			pkg.Body = b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := attestedCluster(t, 3, fake, nil, true)
			parts := c.Participants(t)
			parts[2] = &tamper{Participant: parts[2], exchange: func(r *ceremonyv1.ExchangeRequest) { tc.edit(t, r.Packages[0]) }}
			_, err := attestingRelay(t, c, fake, true).Run(context.Background(), parts, 2, nil)
			var ce *sceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != sceremony.Relay || ce.Reporter != 2 || ce.Fault != ceremonyv1.Fault_FAULT_BAD_SIGNATURE {
				t.Fatalf("got %v, want the relay blamed by participant 2 for a bad signature", err)
			}
			if w := keysWritten(t, c); len(w) != 0 {
				t.Fatalf("written: %v", w)
			}
			waitIdle(t, c)
		})
	}
}
