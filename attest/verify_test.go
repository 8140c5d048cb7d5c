package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func binding(t testing.TB, k *ecdsa.PrivateKey, id uint16, policy string) [64]byte {
	t.Helper()
	rd, err := attest.ReportData(k.Public(), id, policy)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

func mustVerifier(t testing.TB, cfg attest.Config) *attest.Verifier {
	t.Helper()
	v, err := attest.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	fake := attesttest.New(t)
	key, other := newKey(t), newKey(t)
	good := binding(t, key, 2, "policy-hash")
	ctx := context.Background()

	evidence := func(t *testing.T, rd [64]byte) *attest.Evidence {
		ev, err := fake.Evidence(rd)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	t.Run("valid", func(t *testing.T) {
		res, err := mustVerifier(t, fake.Config()).Verify(ctx, evidence(t, good), good)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		m := attesttest.Measurement(1)
		if !res.Attested || res.Measurement != hex.EncodeToString(m[:]) || !res.Policy.Debug {
			t.Fatalf("Result = %+v", res)
		}
		in := res.PolicyInput()
		if in["attested"] != true || in["measurement"] != res.Measurement {
			t.Fatalf("PolicyInput = %v", in)
		}
		if _, err := json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	})

	// Each refusal names its reason.
	for _, tc := range []struct {
		name     string
		cfg      func(*attest.Config)
		evidence func(t *testing.T) *attest.Evidence
		expected [64]byte
		want     error
	}{
		{name: "tampered report data", evidence: func(t *testing.T) *attest.Evidence {
			ev := evidence(t, good)
			ev.Report[0x50] ^= 1
			return ev
		}, expected: good, want: attest.ErrSignature},
		{name: "tampered measurement", evidence: func(t *testing.T) *attest.Evidence {
			ev := evidence(t, good)
			ev.Report[0x90] ^= 1
			return ev
		}, expected: good, want: attest.ErrSignature},
		{name: "wrong TLS key", evidence: func(t *testing.T) *attest.Evidence { return evidence(t, binding(t, other, 2, "policy-hash")) },
			expected: good, want: attest.ErrReportData},
		{name: "wrong signer id", evidence: func(t *testing.T) *attest.Evidence { return evidence(t, binding(t, key, 3, "policy-hash")) },
			expected: good, want: attest.ErrReportData},
		{name: "wrong policy hash", evidence: func(t *testing.T) *attest.Evidence { return evidence(t, binding(t, key, 2, "other")) },
			expected: good, want: attest.ErrReportData},
		{name: "wrong measurement", cfg: func(c *attest.Config) {
			m := attesttest.Measurement(7)
			c.Measurements = []string{hex.EncodeToString(m[:])}
		}, evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrMeasurement},
		{name: "debug forbidden", cfg: func(c *attest.Config) { c.AllowDebug = false },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrDebug},
		{name: "unknown root (AMD's built-in roots)", cfg: func(c *attest.Config) { c.Roots = nil },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrChain},
		{name: "unknown root (another fake chain)", cfg: func(c *attest.Config) {
			c.Roots = []attest.Root{{ProductLine: attesttest.ProductLine(), File: otherRoots(t)}}
		}, evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrChain},
		{name: "no VCEK and no fetching", evidence: func(t *testing.T) *attest.Evidence {
			ev := evidence(t, good)
			ev.CertTable = nil
			return ev
		}, expected: good, want: attest.ErrChain},
		{name: "TCB below minimum", cfg: func(c *attest.Config) { c.MinTCB.SNP = 8 },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrTCB},
		{name: "guest SVN below minimum", cfg: func(c *attest.Config) { c.MinGuestSVN = 1 },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrTCB},
		{name: "ABI below minimum", cfg: func(c *attest.Config) { c.MinABI = "1.51" },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrPolicy},
		{name: "SMT forbidden", cfg: func(c *attest.Config) { c.RequireNoSMT = true },
			evidence: func(t *testing.T) *attest.Evidence { return evidence(t, good) }, expected: good, want: attest.ErrPolicy},
		{name: "truncated report", evidence: func(t *testing.T) *attest.Evidence {
			ev := evidence(t, good)
			ev.Report = ev.Report[:100]
			return ev
		}, expected: good, want: attest.ErrEvidence},
		{name: "garbage certificate table", evidence: func(t *testing.T) *attest.Evidence {
			ev := evidence(t, good)
			ev.CertTable = []byte("not a table at all, really not")
			return ev
		}, expected: good, want: attest.ErrEvidence},
		{name: "no evidence", evidence: func(*testing.T) *attest.Evidence { return nil }, expected: good, want: attest.ErrNoAttestation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fake.Config()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			res, err := mustVerifier(t, cfg).Verify(ctx, tc.evidence(t), tc.expected)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", res, err, tc.want)
			}
			if res.Attested {
				t.Fatal("a refusal came with an attested Result")
			}
			t.Logf("%s: %v", attest.Reason(err), err)
		})
	}

	t.Run("debug allowed, then a non-debug guest", func(t *testing.T) {
		cfg := fake.Config()
		cfg.AllowDebug = false
		f2 := attesttest.New(t)
		f2.SetPolicy(abi.SnpPolicy{SMT: true})
		cfg.Roots = []attest.Root{{ProductLine: attesttest.ProductLine(), File: f2.RootsFile}}
		ev, err := f2.Evidence(good)
		if err != nil {
			t.Fatal(err)
		}
		res, err := mustVerifier(t, cfg).Verify(ctx, ev, good)
		if err != nil || res.Policy.Debug {
			t.Fatalf("Verify = %+v, %v", res, err)
		}
	})
}

// otherRoots writes the roots of another (fake) AMD: a chain with other
// ARK and ASK keys.
func otherRoots(t *testing.T) string {
	t.Helper()
	return attesttest.OtherRoots(t)
}

func TestZeroResultPolicyInput(t *testing.T) {
	var r *attest.Result
	in := r.PolicyInput()
	if in["attested"] != false || in["measurement"] != "" {
		t.Fatalf("PolicyInput of nil = %v", in)
	}
}

func TestConfig(t *testing.T) {
	var c attest.Config
	err := json.Unmarshal([]byte(`{"measurements": ["abcd"], "bogus": 1}`), &c)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	c = attest.DefaultConfig()
	if err := json.Unmarshal([]byte(`{"roots": [{"product_line": "Venice", "file": ""}], "measurements": ["abcd"], "allow_any_measurement": true, "kds": {"timeout": "1h"}, "min_abi": "x"}`), &c); err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{"product_line", "file is required", "cache_dir", "kds.timeout", "48 bytes", "exclusive", "min_abi"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want a problem about %q", err, want)
		}
	}
	if err := attest.DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "measurements") {
		t.Errorf("default config without measurements: %v", err)
	}
}

// BenchmarkVerify is one full check of a report (chain, signature,
// binding, measurement, TCB, policy): what the coordinator spends per
// signer connection or key change, never per mint.
func BenchmarkVerify(b *testing.B) {
	fake := attesttest.New(b)
	key := newKey(b)
	rd := binding(b, key, 1, "policy-hash")
	ev, err := fake.Evidence(rd)
	if err != nil {
		b.Fatal(err)
	}
	v := mustVerifier(b, fake.Config())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, ev, rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReportData is the binding's hash.
func BenchmarkReportData(b *testing.B) {
	key := newKey(b)
	for b.Loop() {
		if _, err := attest.ReportData(key.Public(), 1, "policy-hash"); err != nil {
			b.Fatal(err)
		}
	}
}

// failingTransport is a network on which AMD's KDS cannot be reached.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network unreachable")
}

// TestKDSUnreachable: evidence without its VCEK, checked by a verifier
// that must fetch it and cannot, is ErrFetch (this side's trouble), not
// ErrChain (the evidence's).
func TestKDSUnreachable(t *testing.T) {
	fake := attesttest.New(t)
	key := newKey(t)
	rd := binding(t, key, 1, "policy-hash")
	ev, err := fake.Evidence(rd)
	if err != nil {
		t.Fatal(err)
	}
	ev.CertTable = nil
	cfg := fake.Config()
	cfg.KDS = &attest.KDSConfig{CacheDir: t.TempDir()}
	v, err := attest.NewVerifier(cfg, attest.WithKDSClient(&http.Client{Transport: failingTransport{}}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), ev, rd)
	if !errors.Is(err, attest.ErrFetch) || errors.Is(err, attest.ErrChain) || attest.Reason(err) != "fetch" {
		t.Fatalf("got %v (reason %s), want ErrFetch only", err, attest.Reason(err))
	}
}
