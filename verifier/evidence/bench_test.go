package evidence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

func BenchmarkVerifyCertificate(b *testing.B) {
	ca := newCA(b, "root")
	clk := newClock(base)
	v := certVerifier(b, ca, clk)
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		b.Run(typ, func(b *testing.B) {
			der, key := ca.leaf(b, leafOpts{key: typ})
			req := testRequest(base)
			ev := evidence.Evidence{CertChain: [][]byte{der}, Signature: sign(b, req, key)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), req, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyOIDC(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			clk := newClock(base)
			is := startIssuer(b, alg, clk)
			v := oidcVerifier(b, clk, is.Config("github", oidcAudience))
			tok, err := is.GitHubToken(oidcAudience, "octo/app", "refs/heads/main", "ci", "", 5*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			ev := evidence.Evidence{OIDCToken: tok}
			if _, err := v.Verify(b.Context(), oidcRequest(), ev); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), oidcRequest(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCanonical(b *testing.B) {
	req := testRequest(base)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := evidence.Canonical(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryUseStore(b *testing.B) {
	clk := newClock(base)
	s := evidence.NewMemoryUseStore(1<<20, clk.Now)
	until := base.Add(time.Minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := s.Use(b.Context(), fmt.Sprint("cert:spiffe://x/y:", i%(1<<19)), "jti", until); err != nil {
			b.Fatal(err)
		}
	}
}
