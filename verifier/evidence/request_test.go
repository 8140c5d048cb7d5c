package evidence_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// vector is testdata/canonical-v1.json: a request in a neutral form.
type vector struct {
	Audience   string   `json:"audience"`
	Scopes     []string `json:"scopes"`
	TTLSeconds int64    `json:"ttl_seconds"`
	Nonce      string   `json:"nonce"`     // base64url
	Timestamp  int64    `json:"timestamp"` // Unix seconds
}

func loadVector(t testing.TB) (evidence.Request, []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/canonical-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	nonce, err := base64.RawURLEncoding.DecodeString(v.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/canonical-v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	return evidence.Request{Audience: v.Audience, Scopes: v.Scopes, TTLSeconds: v.TTLSeconds,
		Nonce: nonce, Timestamp: time.Unix(v.Timestamp, 0)}, want
}

func TestCanonicalVector(t *testing.T) {
	req, want := loadVector(t)
	got, err := evidence.Canonical(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Canonical:\n%q\nwant (testdata/canonical-v1.txt):\n%q", got, want)
	}
	// The vector is also what the documentation says, spelled out.
	spelled := "frostmint mint request v1\n" +
		"audience https://api.example.com/v1\n" +
		"scopes read write payments:refund\n" +
		"ttl 300\n" +
		"nonce AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n" +
		"timestamp 1767323045\n"
	if string(want) != spelled {
		t.Fatalf("testdata/canonical-v1.txt = %q, want %q", want, spelled)
	}
	// Location and monotonic readings do not matter, only the instant.
	req.Timestamp = req.Timestamp.In(time.FixedZone("X", 5*3600))
	if got, _ := evidence.Canonical(req); !bytes.Equal(got, want) {
		t.Fatalf("Canonical depends on the time zone: %q", got)
	}
}

func TestCanonicalRefusals(t *testing.T) {
	ok := testRequest(base)
	for _, c := range []struct {
		name string
		edit func(r *evidence.Request)
	}{
		{"empty audience", func(r *evidence.Request) { r.Audience = "" }},
		{"audience with space", func(r *evidence.Request) { r.Audience = "https://a b" }},
		{"audience with newline", func(r *evidence.Request) { r.Audience = "https://a\nscopes admin" }},
		{"audience with tab", func(r *evidence.Request) { r.Audience = "a\tb" }},
		{"audience with NUL", func(r *evidence.Request) { r.Audience = "a\x00" }},
		{"audience with DEL", func(r *evidence.Request) { r.Audience = "a\x7f" }},
		{"audience with NBSP", func(r *evidence.Request) { r.Audience = "a\u00a0b" }},
		{"audience with line separator", func(r *evidence.Request) { r.Audience = "a\u2028b" }},
		{"audience with zero-width space", func(r *evidence.Request) { r.Audience = "a\u200bb" }},
		{"audience with bidi override", func(r *evidence.Request) { r.Audience = "a\u202eb" }},
		{"audience with U+FFFD", func(r *evidence.Request) { r.Audience = "a\ufffdb" }},
		{"audience not UTF-8", func(r *evidence.Request) { r.Audience = "a\xffb" }},
		{"audience too long", func(r *evidence.Request) { r.Audience = strings.Repeat("a", evidence.MaxAudienceSize+1) }},
		{"no scopes", func(r *evidence.Request) { r.Scopes = nil }},
		{"empty scope list", func(r *evidence.Request) { r.Scopes = []string{} }},
		{"empty scope", func(r *evidence.Request) { r.Scopes = []string{"read", ""} }},
		{"scope with space", func(r *evidence.Request) { r.Scopes = []string{"read write"} }},
		{"scope with newline", func(r *evidence.Request) { r.Scopes = []string{"read\n"} }},
		{"scope with control", func(r *evidence.Request) { r.Scopes = []string{"re\x1bad"} }},
		{"repeated scope", func(r *evidence.Request) { r.Scopes = []string{"read", "write", "read"} }},
		{"scope too long", func(r *evidence.Request) { r.Scopes = []string{strings.Repeat("s", evidence.MaxScopeSize+1)} }},
		{"too many scopes", func(r *evidence.Request) {
			r.Scopes = nil
			for i := range evidence.MaxScopes + 1 {
				r.Scopes = append(r.Scopes, "s"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			}
		}},
		{"negative ttl", func(r *evidence.Request) { r.TTLSeconds = -1 }},
		{"no nonce", func(r *evidence.Request) { r.Nonce = nil }},
		{"short nonce", func(r *evidence.Request) { r.Nonce = make([]byte, evidence.MinNonceSize-1) }},
		{"long nonce", func(r *evidence.Request) { r.Nonce = make([]byte, evidence.MaxNonceSize+1) }},
		{"zero timestamp", func(r *evidence.Request) { r.Timestamp = time.Time{} }},
		{"epoch timestamp", func(r *evidence.Request) { r.Timestamp = time.Unix(0, 0) }},
		{"negative timestamp", func(r *evidence.Request) { r.Timestamp = time.Unix(-5, 0) }},
		{"year 10000", func(r *evidence.Request) { r.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"sub-second timestamp", func(r *evidence.Request) { r.Timestamp = base.Add(time.Millisecond) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			r.Scopes = append([]string(nil), ok.Scopes...)
			c.edit(&r)
			b, err := evidence.Canonical(r)
			wantErr(t, err, evidence.ErrInvalid)
			if b != nil {
				t.Fatalf("bytes returned with the error: %q", b)
			}
			// SignRequest refuses it too.
			_, err = evidence.SignRequest(r, testKey(t, "ed25519"))
			wantErr(t, err, evidence.ErrInvalid)
		})
	}
}

func TestCanonicalAccepts(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(r *evidence.Request)
	}{
		{"ttl 0", func(r *evidence.Request) { r.TTLSeconds = 0 }},
		{"min nonce", func(r *evidence.Request) { r.Nonce = make([]byte, evidence.MinNonceSize) }},
		{"max nonce", func(r *evidence.Request) { r.Nonce = make([]byte, evidence.MaxNonceSize) }},
		{"unicode scope", func(r *evidence.Request) { r.Scopes = []string{"lire:données"} }},
		{"max scopes", func(r *evidence.Request) {
			r.Scopes = nil
			for i := range evidence.MaxScopes {
				r.Scopes = append(r.Scopes, "s"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			}
		}},
		{"max audience", func(r *evidence.Request) { r.Audience = strings.Repeat("a", evidence.MaxAudienceSize) }},
		{"1 second after the epoch", func(r *evidence.Request) { r.Timestamp = time.Unix(1, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := testRequest(base)
			c.edit(&r)
			b, err := evidence.Canonical(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte(evidence.CanonicalPrefix)) || bytes.Count(b, []byte("\n")) != 6 {
				t.Fatalf("Canonical = %q", b)
			}
		})
	}
}

func TestCanonicalDistinguishes(t *testing.T) {
	r := testRequest(base)
	want, _ := evidence.Canonical(r)
	for _, c := range []struct {
		name string
		edit func(r *evidence.Request)
	}{
		{"audience", func(r *evidence.Request) { r.Audience += "x" }},
		{"scope order", func(r *evidence.Request) { r.Scopes = []string{"write", "read"} }},
		{"scope split", func(r *evidence.Request) { r.Scopes = []string{"re", "ad", "write"} }},
		{"scope dropped", func(r *evidence.Request) { r.Scopes = []string{"read"} }},
		{"ttl", func(r *evidence.Request) { r.TTLSeconds = 301 }},
		{"nonce", func(r *evidence.Request) { r.Nonce = append([]byte{1}, r.Nonce[1:]...) }},
		{"nonce length", func(r *evidence.Request) { r.Nonce = r.Nonce[:31] }},
		{"timestamp", func(r *evidence.Request) { r.Timestamp = r.Timestamp.Add(time.Second) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r2 := testRequest(base)
			c.edit(&r2)
			got, err := evidence.Canonical(r2)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, want) {
				t.Fatalf("a different request encodes alike: %q", got)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	now := base.Add(789 * time.Millisecond)
	r, err := evidence.NewRequest("https://api.example.com", []string{"read"}, 60, now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Timestamp.Equal(base) || len(r.Nonce) != 32 || r.TTLSeconds != 60 {
		t.Fatalf("NewRequest = %+v", r)
	}
	r2, _ := evidence.NewRequest("https://api.example.com", []string{"read"}, 60, now)
	if bytes.Equal(r.Nonce, r2.Nonce) {
		t.Fatal("two requests share a nonce")
	}
	if _, err := evidence.NewRequest("", []string{"read"}, 60, now); err == nil {
		t.Fatal("NewRequest accepted an empty audience")
	} else {
		wantErr(t, err, evidence.ErrInvalid)
	}
}

func TestSignRequest(t *testing.T) {
	req := testRequest(base)
	msg, _ := evidence.Canonical(req)
	h := sha256.Sum256(msg)
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			key := testKey(t, typ)
			sig := sign(t, req, key)
			// Check with the standard library directly: the encoding is what
			// the documentation says.
			switch pub := key.Public().(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, msg, sig) {
					t.Fatal("not a pure Ed25519 signature of the canonical bytes")
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, h[:], sig) {
					t.Fatal("not an ASN.1 ECDSA P-256 SHA-256 signature")
				}
			case *rsa.PublicKey:
				opts := &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}
				if err := rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, opts); err != nil {
					t.Fatalf("not RSA-PSS SHA-256 with a 32-byte salt: %v", err)
				}
			}
		})
	}
}

// badSigner signs with the wrong key.
type badSigner struct{ crypto.Signer }

func (b badSigner) Public() crypto.PublicKey { return b.Signer.Public() }
func (b badSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return k.Sign(r, d, o)
}

func TestSignRequestRefusals(t *testing.T) {
	req := testRequest(base)
	for _, c := range []struct {
		name string
		key  crypto.Signer
		want error
	}{
		{"P-384", testKey(t, "p384"), evidence.ErrInvalid},
		{"nil key", nil, evidence.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := evidence.SignRequest(req, c.key)
			wantErr(t, err, c.want)
		})
	}
	t.Run("faulty signer", func(t *testing.T) {
		_, err := evidence.SignRequest(req, badSigner{testKey(t, "ecdsa")})
		if err == nil {
			t.Fatal("a signature by another key was returned")
		}
	})
}
