package keysource_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/keysource"
	"github.com/frostmint/frostmint/verifier/token"
)

const audience = "https://api.example"

// mint signs a token of iss for audience under priv, as frostmint does.
func mint(t testing.TB, priv ed25519.PrivateKey, iss string, now time.Time) string {
	t.Helper()
	jti, err := token.NewID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kidOf(t, priv.Public().(ed25519.PublicKey))}
	c := token.Claims{
		Issuer: iss, Subject: "alice", ClientID: "client-1", Audience: audience, Scope: "read",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Unix() + 300, ID: jti,
	}
	in, err := token.SigningInput(h, c)
	if err != nil {
		t.Fatal(err)
	}
	return token.Compact(in, ed25519.Sign(priv, in))
}

func TestIssuers(t *testing.T) {
	pubA, privA := newKey(t)
	pubB, privB := newKey(t)
	pubC, privC := newKey(t)
	a, b := newIssuer(t, pubA), newIssuer(t, pubB)
	docC, err := jwks.Marshal(pubC)
	if err != nil {
		t.Fatal(err)
	}
	fileC := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(fileC, docC, 0o600); err != nil {
		t.Fatal(err)
	}
	const issC = "https://offline.example"

	clk := newClock()
	issuers, run, err := keysource.Issuers(context.Background(), []keysource.Config{
		{Issuer: a.URL, Now: clk.Now},
		{Issuer: b.URL, Now: clk.Now},
		{Issuer: issC, File: fileC},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(issuers) != 3 || issuers[0].Issuer != a.URL || issuers[1].Issuer != b.URL || issuers[2].Issuer != issC {
		t.Fatalf("Issuers = %+v", issuers)
	}
	a.wantRequests(t, 1, 1)
	b.wantRequests(t, 1, 1)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("run = %v, want context.Canceled", err)
		}
	}()

	v, err := verifier.New(verifier.Config{Issuers: issuers, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		priv ed25519.PrivateKey
		iss  string
		want verifier.Code // "": accepted
	}{
		{"issuer A", privA, a.URL, ""},
		{"issuer B", privB, b.URL, ""},
		{"offline issuer", privC, issC, ""},
		{"A's token under B's key", privB, a.URL, verifier.CodeUnknownKey},
		{"B's token under the offline key", privC, b.URL, verifier.CodeUnknownKey},
		{"untrusted issuer", privA, "https://evil.example", verifier.CodeUntrustedIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), mint(t, tc.priv, tc.iss, now), "read")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var verr *verifier.Error
			if !errors.As(err, &verr) || verr.Code != tc.want {
				t.Fatalf("Verify = %v, want code %s", err, tc.want)
			}
			if tc.want == verifier.CodeUnknownKey && !errors.Is(err, jwks.ErrUnknownKey) {
				t.Fatalf("Verify = %v, want ErrUnknownKey", err)
			}
		})
	}

	// B rotates: its new key is picked up on demand once MinInterval has
	// passed.
	pubB2, privB2 := newKey(t)
	b.setKeys(pubB, pubB2)
	clk.Advance(keysource.DefaultMinInterval)
	if _, err := v.Verify(context.Background(), mint(t, privB2, b.URL, now), "read"); err != nil {
		t.Fatalf("Verify(rotated key) = %v", err)
	}
	a.wantRequests(t, 1, 1)
	b.wantRequests(t, 2, 2)
}

func TestIssuersRefused(t *testing.T) {
	k := newPub(t)
	is := newIssuer(t, k)
	missing := filepath.Join(t.TempDir(), "missing.json")
	for _, tc := range []struct {
		name string
		cfgs []keysource.Config
		want error
	}{
		{"none", nil, keysource.ErrConfig},
		{"duplicate", []keysource.Config{{Issuer: is.URL}, {Issuer: is.URL, JWKSURL: is.URL + "/.well-known/jwks.json"}}, keysource.ErrConfig},
		{"invalid", []keysource.Config{{Issuer: is.URL}, {Issuer: "http://remote.example"}}, keysource.ErrConfig},
		{"missing file", []keysource.Config{{Issuer: is.URL}, {Issuer: "i", File: missing}}, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issuers, run, err := keysource.Issuers(context.Background(), tc.cfgs)
			if !errors.Is(err, tc.want) || issuers != nil || run != nil {
				t.Fatalf("Issuers = %v, %v, %v; want %v", issuers, run != nil, err, tc.want)
			}
		})
	}
	// Config problems are found before anything is fetched.
	is.wantRequests(t, 1, 1)
}
