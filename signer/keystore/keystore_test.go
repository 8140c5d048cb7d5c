package keystore_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
)

// cheap lowers the scrypt cost for tests only.
var cheap = keystore.ScryptParams{N: 1 << 10, R: 8, P: 1}

func TestPassphraseSuite(t *testing.T) {
	a, err := keystore.NewPassphrase([]byte("correct horse"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keystore.NewPassphrase([]byte("battery staple"), cheap)
	keystoretest.Run(t, a, b)
}

func TestEmptyPassphraseRefused(t *testing.T) {
	if _, err := keystore.NewPassphrase([]byte("  \n"), cheap); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func TestReadPassphrase(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	t.Setenv("FM_TEST_PASS", "fromenv")
	for _, tc := range []struct {
		src, want string
		ok        bool
	}{
		{"env:FM_TEST_PASS", "fromenv", true},
		{"env:FM_TEST_UNSET_XYZ", "", false},
		{"file:" + f, "s3cret", true},
		{f, "s3cret", true},
		{filepath.Join(dir, "missing"), "", false},
		{"", "", false},
	} {
		got, err := keystore.ReadPassphrase(tc.src)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("ReadPassphrase(%q) = %q, %v", tc.src, got, err)
		}
	}
}

func TestWriteSealedAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "share.sealed")
	if err := keystore.WriteSealed(p, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := keystore.WriteSealed(filepath.Join(dir, "nodir", "x"), []byte("b")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func FuzzUnseal(f *testing.F) {
	s, _ := keystore.NewPassphrase([]byte("pw"), cheap)
	good, _ := s.Seal([]byte("secret"), "l")
	f.Add(good)
	f.Add([]byte(`{"v":1,"kdf":"scrypt-xchacha20poly1305","n":4194304,"r":32,"p":16}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := s.Unseal(b, "l")
		if err == nil && string(out) != "secret" {
			t.Fatalf("unsealed something else: %q", out)
		}
		if err != nil && !errors.Is(err, keystore.ErrUnseal) && !errors.Is(err, keystore.ErrFormat) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
