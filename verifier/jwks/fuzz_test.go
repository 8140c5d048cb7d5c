package jwks_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/frostmint/frostmint/verifier/jwks"
)

// FuzzParse checks that Parse never panics, that every error wraps
// ErrInvalid, and that whatever it accepts is a set of Ed25519 public keys
// named by their thumbprints, which Marshal writes back into a document that
// Parse and go-jose both read to the same keys.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := jwks.Parse(data)
		if err != nil {
			if !errors.Is(err, jwks.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			if s != nil {
				t.Fatal("Parse returned a set with an error")
			}
			return
		}
		kids := s.KeyIDs()
		if len(kids) == 0 || len(kids) > jwks.MaxKeys {
			t.Fatalf("Parse accepted %d keys", len(kids))
		}
		keys := make([]ed25519.PublicKey, len(kids))
		for i, kid := range kids {
			pub, err := s.Key(kid)
			if err != nil {
				t.Fatalf("Key(%q) = %v", kid, err)
			}
			if want, err := jwks.KeyID(pub); err != nil || want != kid {
				t.Fatalf("kid %q of key %x is not its thumbprint %q (%v)", kid, pub, want, err)
			}
			keys[i] = pub
		}
		doc, err := jwks.Marshal(keys...)
		if err != nil {
			t.Fatalf("Marshal of parsed keys = %v", err)
		}
		again, err := jwks.Parse(doc)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(x))) = %v", err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatalf("go-jose refuses %s: %v", doc, err)
		}
		for i, kid := range kids {
			a, _ := again.Key(kid)
			if !a.Equal(keys[i]) {
				t.Fatalf("round trip changed key %q", kid)
			}
			j := set.Key(kid)
			if len(j) != 1 {
				t.Fatalf("go-jose finds %d keys of kid %q", len(j), kid)
			}
			if pub, ok := j[0].Key.(ed25519.PublicKey); !ok || !bytes.Equal(pub, keys[i]) {
				t.Fatalf("go-jose reads kid %q as %v", kid, j[0].Key)
			}
		}
	})
}
