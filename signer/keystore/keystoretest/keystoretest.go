// Package keystoretest is the test suite every keystore backend runs.
package keystoretest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
)

// Run checks the [keystore.Sealer] contract on s; other is a differently
// keyed instance of the same backend (a different passphrase, token key or
// card key).
func Run(t *testing.T, s, other keystore.Sealer) {
	secret := []byte("0123456789abcdef0123456789abcdef-share")
	t.Run("RoundTrip", func(t *testing.T) {
		b, err := s.Seal(secret, "signer-1")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			t.Fatal("sealed blob contains the secret in plain text")
		}
		got, err := s.Unseal(b, "signer-1")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatal("unsealed secret differs")
		}
	})
	t.Run("Randomised", func(t *testing.T) {
		a, _ := s.Seal(secret, "x")
		b, _ := s.Seal(secret, "x")
		if bytes.Equal(a, b) {
			t.Fatal("two seals of one secret are identical")
		}
	})
	t.Run("WrongLabel", func(t *testing.T) {
		b, _ := s.Seal(secret, "signer-1")
		if _, err := s.Unseal(b, "signer-2"); !errors.Is(err, keystore.ErrUnseal) {
			t.Fatalf("got %v, want ErrUnseal", err)
		}
	})
	t.Run("WrongKey", func(t *testing.T) {
		b, _ := s.Seal(secret, "signer-1")
		if _, err := other.Unseal(b, "signer-1"); !errors.Is(err, keystore.ErrUnseal) {
			t.Fatalf("got %v, want ErrUnseal", err)
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		b, _ := s.Seal(secret, "signer-1")
		for _, i := range []int{len(b) / 2, len(b) - 5} {
			c := append([]byte(nil), b...)
			c[i] ^= 0x01
			if _, err := s.Unseal(c, "signer-1"); !errors.Is(err, keystore.ErrUnseal) && !errors.Is(err, keystore.ErrFormat) {
				t.Fatalf("tampered byte %d: got %v", i, err)
			}
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		for _, g := range [][]byte{nil, []byte("{}"), []byte("not sealed")} {
			if _, err := s.Unseal(g, "signer-1"); err == nil {
				t.Fatalf("unsealed %q", g)
			}
		}
	})
}

// NoPlaintext fails t if any file under dir holds one of the secrets, raw,
// hex, or base64 (standard or URL alphabet, padded or not): the check that a
// cluster wrote no share in plain text anywhere. It fails too when it read
// fewer than minFiles files, so that a wrong dir cannot pass.
func NoPlaintext(t testing.TB, dir string, minFiles int, secrets ...[]byte) {
	t.Helper()
	var needles [][]byte
	for _, s := range secrets {
		needles = append(needles, s, []byte(hex.EncodeToString(s)),
			[]byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawStdEncoding.EncodeToString(s)),
			[]byte(base64.URLEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s)))
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds a secret in plain text", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < minFiles {
		t.Fatalf("scanned only %d files under %s, want at least %d", files, dir, minFiles)
	}
	t.Logf("scanned %d files under %s: no plain-text secret", files, dir)
}
