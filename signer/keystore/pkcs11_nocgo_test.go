//go:build !cgo

package keystore

import (
	"errors"
	"os"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore/softhsmtest"
)

func TestPKCS11NeedsCgo(t *testing.T) {
	uri := "pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:FM_PIN"
	if _, err := Open(uri, Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Open: got %v, want ErrConfig", err)
	}
	if err := InitPKCS11Key(uri); !errors.Is(err, ErrConfig) {
		t.Fatalf("InitPKCS11Key: got %v, want ErrConfig", err)
	}
}

// TestPKCS11TestsNeedCgo: without cgo the SoftHSM2 tests are not even
// compiled (Go turns cgo off when it finds no C compiler), which must not
// pass silently where emulators are required.
func TestPKCS11TestsNeedCgo(t *testing.T) {
	if os.Getenv(softhsmtest.RequireEnv) == "1" {
		t.Fatalf("%s=1 but this test binary has no cgo, so the PKCS#11 tests did not run: install a C compiler or set CGO_ENABLED=1", softhsmtest.RequireEnv)
	}
	t.Skip("no cgo: the PKCS#11 tests against SoftHSM2 are not built")
}
