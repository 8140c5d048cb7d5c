package jwks_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/frostmint/frostmint/verifier/jwks"
)

// RFC 8037, Appendix A.
const (
	rfcD          = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	// A.4: the JWS of "Example of Ed25519 signing" under {"alg":"EdDSA"}.
	rfcJWS = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc." +
		"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rfcKey(t testing.TB) ed25519.PublicKey {
	return ed25519.PublicKey(b64(t, rfcX))
}

func newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestRFC8037Vector checks the test vector itself (the private key of A.1
// derives the public key of A.2 and the signature of A.4 verifies under it),
// so that the thumbprint test below is about the right key.
func TestRFC8037Vector(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(b64(t, rfcD))
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), rfcKey(t)) {
		t.Fatal("RFC 8037 A.1 d does not derive A.2 x")
	}
	parts := strings.Split(rfcJWS, ".")
	if !ed25519.Verify(rfcKey(t), []byte(parts[0]+"."+parts[1]), b64(t, parts[2])) {
		t.Fatal("RFC 8037 A.4 signature does not verify")
	}
}

func TestKeyIDRFC8037(t *testing.T) {
	kid, err := jwks.KeyID(rfcKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if kid != rfcThumbprint {
		t.Fatalf("KeyID = %s, want %s (RFC 8037 A.3)", kid, rfcThumbprint)
	}
}

func TestKeyIDRefuses(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1 // the neutral element, of order 1
	for name, pub := range map[string]ed25519.PublicKey{
		"nil":       nil,
		"short":     rfcKey(t)[:31],
		"long":      append(rfcKey(t), 0),
		"private":   ed25519.PublicKey(ed25519.NewKeyFromSeed(b64(t, rfcD))),
		"low order": identity,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := jwks.KeyID(pub); !errors.Is(err, jwks.ErrInvalid) {
				t.Fatalf("KeyID = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	keys := []ed25519.PublicKey{rfcKey(t), newKey(t), newKey(t)}
	doc, err := jwks.Marshal(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwks.Parse(doc)
	if err != nil {
		t.Fatalf("Parse(Marshal) = %v\n%s", err, doc)
	}
	kids := s.KeyIDs()
	if len(kids) != len(keys) {
		t.Fatalf("%d kids, want %d", len(kids), len(keys))
	}
	for i, pub := range keys {
		kid, _ := jwks.KeyID(pub)
		if kids[i] != kid {
			t.Errorf("kid %d = %s, want %s", i, kids[i], kid)
		}
		got, err := s.Key(kid)
		if err != nil || !got.Equal(pub) {
			t.Errorf("Key(%s) = %x, %v; want %x", kid, got, err, pub)
		}
	}
	again, err := s.Marshal()
	if err != nil || !bytes.Equal(again, doc) {
		t.Errorf("Static.Marshal = %s, %v; want %s", again, err, doc)
	}

	// The exact shape of one key.
	var got struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kty": "OKP", "crv": "Ed25519", "x": rfcX, "kid": rfcThumbprint, "alg": "EdDSA", "use": "sig",
	}
	if len(got.Keys[0]) != len(want) {
		t.Errorf("key 0 = %v, want %v", got.Keys[0], want)
	}
	for k, v := range want {
		if got.Keys[0][k] != v {
			t.Errorf("key 0 %s = %q, want %q", k, got.Keys[0][k], v)
		}
	}
}

// TestMarshalGoJOSE checks that an independent JOSE implementation reads our
// documents and agrees on the thumbprints.
func TestMarshalGoJOSE(t *testing.T) {
	keys := []ed25519.PublicKey{rfcKey(t), newKey(t)}
	doc, err := jwks.Marshal(keys...)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	for i, pub := range keys {
		kid, _ := jwks.KeyID(pub)
		found := set.Key(kid)
		if len(found) != 1 {
			t.Fatalf("go-jose finds %d keys of kid %s", len(found), kid)
		}
		k := found[0]
		if got, ok := k.Key.(ed25519.PublicKey); !ok || !got.Equal(pub) || k.Algorithm != "EdDSA" || k.Use != "sig" || !k.IsPublic() {
			t.Errorf("key %d read by go-jose as %+v", i, k)
		}
	}
}

func TestMarshalRefuses(t *testing.T) {
	k := newKey(t)
	many := make([]ed25519.PublicKey, jwks.MaxKeys+1)
	for i := range many {
		many[i] = newKey(t)
	}
	for name, keys := range map[string][]ed25519.PublicKey{
		"none":      nil,
		"duplicate": {k, newKey(t), k},
		"bad key":   {k, k[:16]},
		"too many":  many,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := jwks.Marshal(keys...); !errors.Is(err, jwks.ErrInvalid) {
				t.Errorf("Marshal = %v, want ErrInvalid", err)
			}
			if _, err := jwks.NewStatic(keys...); !errors.Is(err, jwks.ErrInvalid) {
				t.Errorf("NewStatic = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestParseTestdata(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no testdata in %s: %v", dir, err)
		}
		for _, f := range files {
			t.Run(dir+"/"+filepath.Base(f), func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				s, err := jwks.Parse(data)
				if dir == "invalid" {
					if !errors.Is(err, jwks.ErrInvalid) {
						t.Fatalf("Parse = %v, want ErrInvalid", err)
					}
					if s != nil {
						t.Fatal("Parse returned a set with an error")
					}
					return
				}
				if err != nil {
					t.Fatalf("Parse = %v", err)
				}
				pub, err := s.Key(rfcThumbprint)
				if err != nil || !pub.Equal(rfcKey(t)) {
					t.Fatalf("Key = %x, %v", pub, err)
				}
			})
		}
	}
}

func TestParseRefusesLargeDocuments(t *testing.T) {
	doc, err := jwks.Marshal(rfcKey(t))
	if err != nil {
		t.Fatal(err)
	}
	big := append(doc, bytes.Repeat([]byte(" "), jwks.MaxSize)...)
	if _, err := jwks.Parse(big); !errors.Is(err, jwks.ErrInvalid) {
		t.Fatalf("Parse = %v, want ErrInvalid", err)
	}
	many := make([]string, jwks.MaxKeys+1)
	for i := range many {
		pub := newKey(t)
		kid, _ := jwks.KeyID(pub)
		many[i] = `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `","kid":"` + kid + `"}`
	}
	if _, err := jwks.Parse([]byte(`{"keys":[` + strings.Join(many, ",") + `]}`)); !errors.Is(err, jwks.ErrInvalid) {
		t.Fatalf("Parse(%d keys) = %v, want ErrInvalid", len(many), err)
	}
}

func TestStaticUnknownKey(t *testing.T) {
	s, err := jwks.NewStatic(rfcKey(t))
	if err != nil {
		t.Fatal(err)
	}
	var nilSet *jwks.Static
	for name, ks := range map[string]jwks.KeySet{"static": s, "nil": nilSet, "zero": &jwks.Static{}} {
		for _, kid := range []string{"", "nope", strings.ToLower(rfcThumbprint), rfcThumbprint + "="} {
			if _, err := ks.Key(kid); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Errorf("%s: Key(%q) = %v, want ErrUnknownKey", name, kid, err)
			}
		}
	}
}

// TestStaticKeyIsACopy checks that a caller cannot change the set through a
// key it was handed.
func TestStaticKeyIsACopy(t *testing.T) {
	in := rfcKey(t)
	s, err := jwks.NewStatic(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0] ^= 1
	got, _ := s.Key(rfcThumbprint)
	got[1] ^= 1
	again, _ := s.Key(rfcThumbprint)
	if !again.Equal(rfcKey(t)) {
		t.Fatal("the set's key was modified through a returned or given slice")
	}
}
