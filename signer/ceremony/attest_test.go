package ceremony_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	attestv1 "github.com/frostmint/frostmint/proto/frostmint/attest/v1"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
)

// vectorParams are the parameters of the binding vector.
func vectorParams() ceremony.Params {
	return ceremony.Params{CeremonyID: "0123456789abcdef0123456789abcdef", Threshold: 2, MaxSigners: 3,
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Roster:    ceremony.Roster{1: "spiffe://vector.test/signer/1", 2: "spiffe://vector.test/signer/2", 3: "spiffe://vector.test/signer/3"}}
}

// The ceremony binding and REPORT_DATA, byte for byte as documented
// (computed independently of this code), for the Ed25519 key of
// attest/testdata/reportdata_v1.json as participant 2.
func TestAttestationBindingVector(t *testing.T) {
	const (
		binding    = "ceremony:35d61aedbbf7a688479a412454c26890fef95fabc701b0a6c285732fcfd1528f"
		reportData = "87cee232302a059bc49f57caecdf948a644395647d5254441066fb650bbb543f0811718cb4eaf06774105ade2ade4bc5ee0f75dafbd1cbf2750d1df9576c08fe"
	)
	p := vectorParams()
	if got := ceremony.AttestationBinding(p); got != binding {
		t.Fatalf("AttestationBinding = %s, want %s", got, binding)
	}
	seed, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	spki, err := x509.MarshalPKIXPublicKey(ed25519.NewKeyFromSeed(seed).Public())
	if err != nil {
		t.Fatal(err)
	}
	if got := ceremony.ReportData(spki, 2, p); hex.EncodeToString(got[:]) != reportData {
		t.Fatalf("ReportData = %x, want %s", got, reportData)
	}
}

// Every ceremony parameter changes the binding, and no binding can be
// taken for a policy hash (lowercase hex).
func TestAttestationBindingSeparates(t *testing.T) {
	base := ceremony.AttestationBinding(vectorParams())
	for name, edit := range map[string]func(*ceremony.Params){
		"ceremony id": func(p *ceremony.Params) { p.CeremonyID = "other" },
		"threshold":   func(p *ceremony.Params) { p.Threshold = 3 },
		"max signers": func(p *ceremony.Params) { p.MaxSigners = 4; p.Roster[4] = "spiffe://vector.test/signer/4" },
		"time":        func(p *ceremony.Params) { p.StartedAt = p.StartedAt.Add(time.Second) },
		"roster":      func(p *ceremony.Params) { p.Roster[1], p.Roster[2] = p.Roster[2], p.Roster[1] },
	} {
		p := vectorParams()
		edit(&p)
		if got := ceremony.AttestationBinding(p); got == base {
			t.Errorf("%s: same binding", name)
		}
	}
	if strings.Trim(base, "0123456789abcdef") == "" || len(base) != 73 {
		t.Fatalf("binding %q could pass for a policy hash", base)
	}
}

// recording is a provider that keeps every evidence it made, and can be
// told to return another one instead (a replay).
type recording struct {
	attest.Provider
	mu     sync.Mutex
	made   []*attest.Evidence
	replay func(ctx context.Context) (*attest.Evidence, error)
}

func (r *recording) Report(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r.mu.Lock()
	replay := r.replay
	r.mu.Unlock()
	if replay != nil {
		return replay(ctx)
	}
	ev, err := r.Provider.Report(ctx, rd)
	if err == nil {
		r.mu.Lock()
		r.made = append(r.made, ev)
		r.mu.Unlock()
	}
	return ev, err
}

// attestedCluster starts 3 participants attesting through fake; provider
// overrides participant id's provider (nil: none); verify and required
// set every participant's check of its peers.
func attestedCluster(t *testing.T, fake *attesttest.Fake, provider map[uint16]attest.Provider, verify, required bool) *ceremonytest.Cluster {
	t.Helper()
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	return ceremonytest.Start(t, ceremonytest.Options{N: 3, Configure: func(id uint16, cfg *ceremony.ParticipantConfig) {
		cfg.Attestation.Provider = fake.Provider()
		if p, ok := provider[id]; ok {
			cfg.Attestation.Provider = p
		}
		if verify {
			cfg.Attestation.Verifier = v
		}
		cfg.Attestation.Required = required
	}})
}

func run(t *testing.T, c *ceremonytest.Cluster) (*relay.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.Relay(t, 20*time.Second).Run(ctx, c.Participants(t), 2, nil)
}

// nothingHeld checks that no participant wrote or holds anything.
func nothingHeld(t *testing.T, c *ceremonytest.Cluster) {
	t.Helper()
	for id, m := range c.Members {
		if es, err := os.ReadDir(m.KeysDir); err != nil || len(es) != 0 {
			t.Fatalf("participant %d wrote %v (%v)", id, es, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for id, m := range c.Members {
		for m.Participant.InProgress() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("participant %d still holds the aborted ceremony", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// All participants attested and requiring attested peers: the ceremony
// completes, and its transcript keeps every participant's evidence, bound
// to the key that signed its round 1, its id and the ceremony.
func TestAttestedCeremony(t *testing.T) {
	fake := attesttest.New(t)
	c := attestedCluster(t, fake, nil, true, true)
	res, err := run(t, c)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ceremony.VerifyTranscript(res.Transcript, c.Roots)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	p := ceremony.Params{CeremonyID: tr.CeremonyID, Threshold: tr.Threshold, MaxSigners: tr.MaxSigners, StartedAt: tr.Time, Roster: ceremony.Roster{}}
	for _, r := range tr.Roster {
		p.Roster[r.ID] = r.Identity
	}
	m := attesttest.Measurement(1)
	for _, rec := range tr.Round1 {
		r1, err := ceremony.VerifyRound1(&ceremonyv1.Round1Package{Body: rec.Body, Signature: rec.Signature,
			CertificateChain: rec.CertificateChain}, rec.ID, p, c.Roots, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ceremony.VerifyAttestation(context.Background(), r1, p, v, true)
		if err != nil || got == nil || got.Measurement != hex.EncodeToString(m[:]) {
			t.Fatalf("participant %d's recorded attestation: %+v, %v", rec.ID, got, err)
		}
	}
}

// Participant 3's attestation is refused by its peers: the ceremony aborts
// naming participant 3 (reported by a peer, not the relay, which checks
// nothing here), FAULT_ATTESTATION, and nothing is written anywhere.
func TestAttestationRefused(t *testing.T) {
	fake := attesttest.New(t)
	tests := []struct {
		name             string
		provider         func(t *testing.T, others *recording) attest.Provider
		verify, required bool
	}{
		{"no evidence", func(*testing.T, *recording) attest.Provider { return nil }, true, true},
		{"no guest device", func(*testing.T, *recording) attest.Provider {
			return attest.ProviderFunc(func(context.Context, [64]byte) (*attest.Evidence, error) { return nil, attest.ErrUnavailable })
		}, true, true},
		{"measurement not allowed", func(*testing.T, *recording) attest.Provider {
			return fake.MeasuredProvider(attesttest.Measurement(2))
		}, true, true},
		{"measurement not allowed, peers not required", func(*testing.T, *recording) attest.Provider {
			return fake.MeasuredProvider(attesttest.Measurement(2))
		}, true, false},
		{"replayed from participant 1", func(t *testing.T, p1 *recording) attest.Provider {
			return attest.ProviderFunc(func(ctx context.Context, _ [64]byte) (*attest.Evidence, error) {
				for {
					p1.mu.Lock()
					made := p1.made
					p1.mu.Unlock()
					if len(made) > 0 {
						return made[0], nil
					}
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-time.After(5 * time.Millisecond):
					}
				}
			})
		}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p1 := &recording{Provider: fake.Provider()}
			c := attestedCluster(t, fake, map[uint16]attest.Provider{1: p1, 3: tc.provider(t, p1)}, tc.verify, tc.required)
			_, err := run(t, c)
			var ce *ceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != 3 || ce.Fault != ceremonyv1.Fault_FAULT_ATTESTATION ||
				ce.Reporter == ceremony.Relay || ce.Reporter == 3 {
				t.Fatalf("got %v, want participant 3 blamed by a peer for its attestation", err)
			}
			nothingHeld(t, c)
		})
	}
}

// A report made for an earlier ceremony is refused: the binding names the
// ceremony, so a report is fresh to within the start time's clock skew.
func TestAttestationFromEarlierCeremony(t *testing.T) {
	fake := attesttest.New(t)
	p3 := &recording{Provider: fake.Provider()}
	c := attestedCluster(t, fake, map[uint16]attest.Provider{3: p3}, true, true)
	if _, err := run(t, c); err != nil {
		t.Fatal(err)
	}
	p3.mu.Lock()
	old := p3.made[0]
	p3.replay = func(context.Context) (*attest.Evidence, error) { return old, nil }
	p3.mu.Unlock()
	_, err := run(t, c)
	var ce *ceremony.CheatError
	if !errors.As(err, &ce) || ce.Culprit != 3 || ce.Fault != ceremonyv1.Fault_FAULT_ATTESTATION {
		t.Fatalf("got %v, want participant 3 blamed for its stale attestation", err)
	}
}

// Without a verifier, evidence is not judged: a participant whose image is
// not allowed anywhere, or that has no evidence, takes part as before.
func TestAttestationNotChecked(t *testing.T) {
	fake := attesttest.New(t)
	c := attestedCluster(t, fake, map[uint16]attest.Provider{2: nil, 3: fake.MeasuredProvider(attesttest.Measurement(9))}, false, false)
	if _, err := run(t, c); err != nil {
		t.Fatal(err)
	}
	// With a verifier but not required, absent evidence is fine too.
	c = attestedCluster(t, fake, map[uint16]attest.Provider{2: nil}, true, false)
	if _, err := run(t, c); err != nil {
		t.Fatal(err)
	}
}

// VerifyAttestation's refusals wrap the attest sentinel of their reason.
func TestVerifyAttestationReasons(t *testing.T) {
	fake := attesttest.New(t)
	p3 := &recording{Provider: fake.Provider()}
	c := attestedCluster(t, fake, map[uint16]attest.Provider{3: p3}, false, false)
	res, err := run(t, c)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ceremony.VerifyTranscript(res.Transcript, c.Roots)
	if err != nil {
		t.Fatal(err)
	}
	p := ceremony.Params{CeremonyID: tr.CeremonyID, Threshold: tr.Threshold, MaxSigners: tr.MaxSigners, StartedAt: tr.Time, Roster: ceremony.Roster{}}
	for _, r := range tr.Roster {
		p.Roster[r.ID] = r.Identity
	}
	round1 := func(id uint16) *ceremony.Round1 {
		rec := tr.Round1[id-1]
		r, err := ceremony.VerifyRound1(&ceremonyv1.Round1Package{Body: rec.Body, Signature: rec.Signature,
			CertificateChain: rec.CertificateChain}, id, p, c.Roots, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		t.Fatal(err)
	}
	other := fake.Config()
	other.Measurements = []string{strings.Repeat("22", attest.MeasurementSize)}
	vOther, err := attest.NewVerifier(other)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := fake.Config()
	untrusted.Roots[0].File = attesttest.OtherRoots(t)
	vUntrusted, err := attest.NewVerifier(untrusted)
	if err != nil {
		t.Fatal(err)
	}
	bare := round1(3)
	bare.Attestation = nil
	moved := round1(3)
	moved.ID = 2 // participant 3's evidence presented as participant 2's
	moved.Chain = round1(2).Chain
	truncated := round1(3)
	truncated.Attestation = proto.Clone(truncated.Attestation).(*attestv1.Evidence)
	truncated.Attestation.Report = truncated.Attestation.Report[:100]
	otherCeremony := p
	otherCeremony.CeremonyID = "another"
	for _, tc := range []struct {
		name string
		r    *ceremony.Round1
		p    ceremony.Params
		v    ceremony.EvidenceVerifier
		want error
	}{
		{"absent", bare, p, v, attest.ErrNoAttestation},
		{"measurement", round1(3), p, vOther, attest.ErrMeasurement},
		{"untrusted chain", round1(3), p, vUntrusted, attest.ErrChain},
		{"another participant's", moved, p, v, attest.ErrReportData},
		{"another ceremony's", round1(3), otherCeremony, v, attest.ErrReportData},
		{"malformed", truncated, p, v, attest.ErrEvidence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ceremony.VerifyAttestation(context.Background(), tc.r, tc.p, tc.v, true)
			var ce *ceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != tc.r.ID || ce.Fault != ceremonyv1.Fault_FAULT_ATTESTATION || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want FAULT_ATTESTATION wrapping %v", err, tc.want)
			}
		})
	}
	if got, err := ceremony.VerifyAttestation(context.Background(), round1(3), p, v, true); err != nil || got == nil {
		t.Fatalf("valid evidence: %v", err)
	}
	// A verifier that must fetch the VCEK from AMD's KDS and cannot reach
	// it blames no one: the trouble is its own.
	noTable := round1(3)
	noTable.Attestation = proto.Clone(noTable.Attestation).(*attestv1.Evidence)
	noTable.Attestation.CertTable = nil
	kds := fake.Config()
	kds.KDS = &attest.KDSConfig{CacheDir: t.TempDir()}
	vKDS, err := attest.NewVerifier(kds, attest.WithKDSClient(&http.Client{Transport: unreachable{}}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ceremony.VerifyAttestation(context.Background(), noTable, p, vKDS, true)
	if ce := (*ceremony.CheatError)(nil); errors.As(err, &ce) || !errors.Is(err, attest.ErrFetch) {
		t.Fatalf("KDS unreachable: got %v, want a plain error wrapping attest.ErrFetch", err)
	}
	if got, err := ceremony.VerifyAttestation(context.Background(), bare, p, v, false); err != nil || got != nil {
		t.Fatalf("absent, not required: %v, %v", got, err)
	}
}

func TestAttestationConfigRefused(t *testing.T) {
	cfg := ceremony.ParticipantConfig{Attestation: ceremony.Attestation{Required: true}}
	if _, err := ceremony.NewParticipant(cfg); err == nil {
		t.Fatal("required without a verifier accepted")
	}
}

// unreachable is a network on which AMD's KDS cannot be reached.
type unreachable struct{}

func (unreachable) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network unreachable")
}
