package evidence_test

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// certVerifier returns a verifier trusting ca's certificates, on clk.
func certVerifier(t testing.TB, ca *testCA, clk *clock) *evidence.Verifier {
	t.Helper()
	v, err := evidence.New(t.Context(), evidence.Config{Roots: ca.pool(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyCertificate(t *testing.T) {
	ca := newCA(t, "root")
	clk := newClock(base)
	v := certVerifier(t, ca, clk)
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			der, key := ca.leaf(t, leafOpts{key: typ})
			req := testRequest(base.Add(-30 * time.Second))
			id, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{der}, Signature: sign(t, req, key)})
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(der)
			want := evidence.Identity{
				Kind:     evidence.KindCertificate,
				Subject:  callerID,
				ClientID: callerID,
				UseKey:   "cert:" + callerID + ":" + base64.RawURLEncoding.EncodeToString(req.Nonce),
				Expiry:   req.Timestamp.Add(evidence.DefaultMaxAge),
			}
			if id.Kind != want.Kind || id.Subject != want.Subject || id.ClientID != want.ClientID ||
				id.Issuer != "" || id.UseKey != want.UseKey || !id.Expiry.Equal(want.Expiry) {
				t.Fatalf("identity %+v, want %+v", id, want)
			}
			if id.Claims["spiffe_id"] != callerID || id.Claims["serial"] != leaf.SerialNumber.Text(16) ||
				id.Claims["not_after"] != leaf.NotAfter.Unix() || len(id.Claims) != 3 {
				t.Fatalf("claims %v", id.Claims)
			}
		})
	}
	t.Run("intermediate", func(t *testing.T) {
		inter := ca.intermediate(t, "intermediate")
		der, key := inter.leaf(t, leafOpts{})
		req := testRequest(base)
		sig := sign(t, req, key)
		if _, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{der, inter.der}, Signature: sig}); err != nil {
			t.Fatal(err)
		}
		// The root may be sent along; it changes nothing.
		if _, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{der, inter.der, ca.der}, Signature: sig}); err != nil {
			t.Fatal(err)
		}
		// Without the intermediate there is no chain.
		_, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{der}, Signature: sig})
		wantErr(t, err, evidence.ErrUntrusted)
	})
}

func TestVerifyCertificateRefusals(t *testing.T) {
	ca := newCA(t, "root")
	other := newCA(t, "another root")
	clk := newClock(base)
	v := certVerifier(t, ca, clk)
	goodDER, goodKey := ca.leaf(t, leafOpts{})
	req := testRequest(base)
	goodSig := sign(t, req, goodKey)
	maxAge := evidence.DefaultMaxAge

	type proof struct {
		req   evidence.Request
		chain [][]byte
		sig   []byte
	}
	// signed returns a proof of req by a leaf issued by ca with o.
	signed := func(t *testing.T, ca *testCA, o leafOpts, req evidence.Request) proof {
		der, key := ca.leaf(t, o)
		return proof{req, [][]byte{der}, sign(t, req, key)}
	}
	for _, c := range []struct {
		name  string
		proof func(t *testing.T) proof
		want  error
	}{
		{"certificate from another CA", func(t *testing.T) proof { return signed(t, other, leafOpts{}, req) }, evidence.ErrUntrusted},
		{"signature over a different request", func(t *testing.T) proof {
			r := testRequest(base)
			r.Scopes = []string{"read", "write", "admin"}
			return proof{r, [][]byte{goodDER}, goodSig}
		}, evidence.ErrUntrusted},
		{"signature over another audience", func(t *testing.T) proof {
			r := testRequest(base)
			r.Audience = "https://evil.example.com"
			return proof{r, [][]byte{goodDER}, goodSig}
		}, evidence.ErrUntrusted},
		{"signature with another timestamp", func(t *testing.T) proof {
			return proof{testRequest(base.Add(time.Second)), [][]byte{goodDER}, goodSig}
		}, evidence.ErrUntrusted},
		{"signature by another key", func(t *testing.T) proof {
			return proof{req, [][]byte{goodDER}, sign(t, req, testKey(t, "ecdsa2"))}
		}, evidence.ErrUntrusted},
		{"mangled signature", func(t *testing.T) proof {
			sig := append([]byte(nil), goodSig...)
			sig[len(sig)-3] ^= 1
			return proof{req, [][]byte{goodDER}, sig}
		}, evidence.ErrUntrusted},
		{"Ed25519 leaf, ECDSA signature", func(t *testing.T) proof {
			der, _ := ca.leaf(t, leafOpts{key: "ed25519"})
			return proof{req, [][]byte{der}, goodSig}
		}, evidence.ErrUntrusted},
		{"P-384 leaf", func(t *testing.T) proof {
			der, _ := ca.leaf(t, leafOpts{key: "p384"})
			return proof{req, [][]byte{der}, goodSig}
		}, evidence.ErrUntrusted},
		{"expired certificate", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{notBefore: base.Add(-2 * time.Hour), notAfter: base.Add(-time.Hour)}, req)
		}, evidence.ErrExpired},
		{"certificate not yet valid", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{notBefore: base.Add(time.Hour)}, req)
		}, evidence.ErrExpired},
		{"certificate valid now but not at the proof time", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{notBefore: base.Add(-10 * time.Second)}, testRequest(base.Add(-time.Minute)))
		}, evidence.ErrExpired},
		{"certificate valid at the proof time but not now", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{notAfter: base.Add(-10 * time.Second)}, testRequest(base.Add(-time.Minute)))
		}, evidence.ErrExpired},
		{"stale timestamp", func(t *testing.T) proof {
			return proof{testRequest(base.Add(-maxAge - time.Second)), [][]byte{goodDER}, sign(t, testRequest(base.Add(-maxAge-time.Second)), goodKey)}
		}, evidence.ErrExpired},
		{"timestamp exactly MaxAge old", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{}, testRequest(base.Add(-maxAge)))
		}, evidence.ErrExpired},
		{"future timestamp", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{}, testRequest(base.Add(maxAge+time.Second)))
		}, evidence.ErrExpired},
		{"no SPIFFE ID", func(t *testing.T) proof { return signed(t, ca, leafOpts{uris: []string{}}, req) }, evidence.ErrUntrusted},
		{"two SPIFFE IDs", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{uris: []string{callerID, "spiffe://dev.frostmint.local/other"}}, req)
		}, evidence.ErrUntrusted},
		{"malformed SPIFFE ID", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{uris: []string{"spiffe://Dev.Example/x"}}, req)
		}, evidence.ErrUntrusted},
		{"https URI only", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{uris: []string{"https://dev.frostmint.local/x"}}, req)
		}, evidence.ErrUntrusted},
		{"server-only certificate", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, req)
		}, evidence.ErrUntrusted},
		{"certificate without extended key usage", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{eku: []x509.ExtKeyUsage{}}, req)
		}, evidence.ErrUntrusted},
		{"any extended key usage", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, req)
		}, evidence.ErrUntrusted},
		{"CA leaf", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{isCA: true, ku: x509.KeyUsageDigitalSignature}, req)
		}, evidence.ErrUntrusted},
		{"no digital signature usage", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{ku: x509.KeyUsageKeyEncipherment}, req)
		}, evidence.ErrUntrusted},
		{"certificate signing usage", func(t *testing.T) proof {
			return signed(t, ca, leafOpts{ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, req)
		}, evidence.ErrUntrusted},
		{"garbage certificate", func(t *testing.T) proof { return proof{req, [][]byte{[]byte("not DER")}, goodSig} }, evidence.ErrInvalid},
		{"empty certificate", func(t *testing.T) proof { return proof{req, [][]byte{{}}, goodSig} }, evidence.ErrInvalid},
		{"garbage intermediate", func(t *testing.T) proof { return proof{req, [][]byte{goodDER, {1, 2}}, goodSig} }, evidence.ErrInvalid},
		{"too many certificates", func(t *testing.T) proof {
			chain := [][]byte{goodDER}
			for range evidence.MaxChainLength {
				chain = append(chain, ca.der)
			}
			return proof{req, chain, goodSig}
		}, evidence.ErrInvalid},
		{"huge signature", func(t *testing.T) proof {
			return proof{req, [][]byte{goodDER}, make([]byte, evidence.MaxSignatureSize+1)}
		}, evidence.ErrInvalid},
		{"no signature", func(t *testing.T) proof { return proof{req, [][]byte{goodDER}, nil} }, evidence.ErrInvalid},
		{"signature without certificate", func(t *testing.T) proof { return proof{req, nil, goodSig} }, evidence.ErrInvalid},
		{"invalid request", func(t *testing.T) proof {
			r := testRequest(base)
			r.Scopes = nil
			return proof{r, [][]byte{goodDER}, goodSig}
		}, evidence.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.proof(t)
			id, err := v.Verify(t.Context(), p.req, evidence.Evidence{CertChain: p.chain, Signature: p.sig})
			wantErr(t, err, c.want)
			if id != nil {
				t.Fatalf("identity returned with an error: %+v", id)
			}
		})
	}

	t.Run("SPIFFE refusals wrap mtls.ErrNoIdentity", func(t *testing.T) {
		p := signed(t, ca, leafOpts{uris: []string{}}, req)
		_, err := v.Verify(t.Context(), p.req, evidence.Evidence{CertChain: p.chain, Signature: p.sig})
		if !errors.Is(err, mtls.ErrNoIdentity) {
			t.Fatalf("%v does not wrap mtls.ErrNoIdentity", err)
		}
	})
	t.Run("expired chain wraps the x509 error", func(t *testing.T) {
		p := signed(t, ca, leafOpts{notAfter: base.Add(-time.Hour)}, req)
		_, err := v.Verify(t.Context(), p.req, evidence.Evidence{CertChain: p.chain, Signature: p.sig})
		if ci, ok := errors.AsType[x509.CertificateInvalidError](err); !ok || ci.Reason != x509.Expired {
			t.Fatalf("%v does not wrap an x509.CertificateInvalidError (Expired)", err)
		}
	})
	t.Run("window edges", func(t *testing.T) {
		for _, c := range []struct {
			ts time.Time
			ok bool
		}{
			{base.Add(-maxAge + time.Second), true},
			{base.Add(maxAge), true}, // a caller clock ahead by MaxAge
			{base.Add(-maxAge), false},
			{base.Add(maxAge + time.Second), false},
		} {
			r := testRequest(c.ts)
			_, err := v.Verify(t.Context(), r, evidence.Evidence{CertChain: [][]byte{goodDER}, Signature: sign(t, r, goodKey)})
			if (err == nil) != c.ok {
				t.Errorf("timestamp now%+v: %v, want ok=%v", c.ts.Sub(base), err, c.ok)
			}
		}
	})
	t.Run("both forms", func(t *testing.T) {
		_, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{goodDER}, Signature: goodSig, OIDCToken: "a.b.c"})
		wantErr(t, err, evidence.ErrInvalid)
	})
	t.Run("no evidence", func(t *testing.T) {
		_, err := v.Verify(t.Context(), req, evidence.Evidence{})
		wantErr(t, err, evidence.ErrInvalid)
	})
	t.Run("no roots", func(t *testing.T) {
		oidcOnly, err := evidence.New(t.Context(), evidence.Config{
			OIDC: []evidence.OIDCIssuer{{Name: "x", Issuer: "https://issuer.example", Audience: "frostmint"}}, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		_, err = oidcOnly.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{goodDER}, Signature: goodSig})
		wantErr(t, err, evidence.ErrUntrusted)
	})
	t.Run("a custom MaxAge", func(t *testing.T) {
		v10, err := evidence.New(t.Context(), evidence.Config{Roots: ca.pool(), Now: clk.Now, MaxAge: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		r := testRequest(base.Add(-9 * time.Minute))
		id, err := v10.Verify(t.Context(), r, evidence.Evidence{CertChain: [][]byte{goodDER}, Signature: sign(t, r, goodKey)})
		if err != nil {
			t.Fatal(err)
		}
		if !id.Expiry.Equal(r.Timestamp.Add(10 * time.Minute)) {
			t.Fatalf("expiry %v", id.Expiry)
		}
	})
}

// TestVerifyDevCACertificate: the certificates of a dev cluster (mtls.DevCA)
// are valid caller evidence.
func TestVerifyDevCACertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := mtls.NewDevCA("frostmint dev", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.Issue(dir, "cli", mtls.Leaf{ID: "spiffe://dev.frostmint.local/dev/cli", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	readPEM := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("no PEM in %s", name)
		}
		return blk.Bytes
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(files.CA)
	roots.AppendCertsFromPEM(caPEM)
	k, err := x509.ParsePKCS8PrivateKey(readPEM(files.Key))
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.New(t.Context(), evidence.Config{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	req, err := evidence.NewRequest("https://api.example.com", []string{"read"}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := evidence.SignRequest(req, k.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(t.Context(), req, evidence.Evidence{CertChain: [][]byte{readPEM(files.Cert)}, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "spiffe://dev.frostmint.local/dev/cli" {
		t.Fatalf("subject %q", id.Subject)
	}
}
