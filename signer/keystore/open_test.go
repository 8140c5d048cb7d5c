package keystore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
)

func TestOpen(t *testing.T) {
	t.Setenv("FROSTMINT_TEST_PASS", "correct horse")
	for _, tc := range []struct {
		uri  string
		dev  bool
		want error // nil: opens
	}{
		{"file:?passphrase=env:FROSTMINT_TEST_PASS", true, nil},
		{"file:?passphrase=env:FROSTMINT_TEST_PASS", false, keystore.ErrConfig},
		{"file:?passphrase=hunter2", true, keystore.ErrConfig},
		{"file:?passphrase=env:FROSTMINT_TEST_PASS&pin=1", true, keystore.ErrConfig},
		{"file:", true, keystore.ErrConfig},
		{"", false, keystore.ErrConfig},
		{"tpm:?handle=1", false, keystore.ErrConfig},
		{"://", false, keystore.ErrConfig},
	} {
		b, err := keystore.Open(tc.uri, keystore.Options{Dev: tc.dev})
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%q: %v", tc.uri, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%q: %v, want %v", tc.uri, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%q: the error shows the secret: %v", tc.uri, err)
		}
		if b != nil {
			sealed, err := b.Seal([]byte("s"), "l")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := b.Unseal(sealed, "l"); err != nil || string(got) != "s" {
				t.Fatalf("round trip: %v", err)
			}
			b.Close()
		}
	}
}
