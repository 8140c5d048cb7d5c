//go:build cgo

package keystore_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/signer/keystore/keystoretest"
	"github.com/frostmint/frostmint/signer/keystore/softhsmtest"
)

// enrol creates the AES key labelled object on tk and returns its URI.
func enrol(tb testing.TB, tk *softhsmtest.Token, object string) string {
	tb.Helper()
	uri := tk.URI(object)
	if err := keystore.InitPKCS11Key(uri); err != nil {
		tb.Fatal(err)
	}
	return uri
}

// openP11 opens a backend that the test closes when it ends, checking the
// close succeeds.
func openP11(tb testing.TB, uri string) keystore.Backend {
	tb.Helper()
	b, err := keystore.Open(uri, keystore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return b
}

// openErr opens uri expecting a failure and returns the error; a backend
// opened by mistake is closed, so the module is not left initialized for
// the next test.
func openErr(tb testing.TB, uri string) error {
	tb.Helper()
	b, err := keystore.Open(uri, keystore.Options{})
	if err == nil {
		b.Close()
		return errors.New("opened")
	}
	return err
}

func TestPKCS11Suite(t *testing.T) {
	h := softhsmtest.NewHSM(t)
	tk, tk2 := h.NewToken(t), h.NewToken(t)
	a := openP11(t, enrol(t, tk, "share-key"))
	t.Run("OtherKeyOnToken", func(t *testing.T) {
		keystoretest.Run(t, a, openP11(t, enrol(t, tk, "other-key")))
	})
	// Same key label, another token: only the key material differs, so
	// the token itself must refuse the ciphertext.
	t.Run("SameLabelOtherToken", func(t *testing.T) {
		keystoretest.Run(t, a, openP11(t, enrol(t, tk2, "share-key")))
	})
}

func TestPKCS11OpenErrors(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := enrol(t, tk, "share-key")
	dir := t.TempDir()
	wrongPIN := filepath.Join(dir, "wrong.pin")
	if err := os.WriteFile(wrongPIN, []byte("00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notALibrary := filepath.Join(dir, "lib.so")
	if err := os.WriteFile(notALibrary, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := *tk
	unknown.Label = "fm-no-such-token"
	otherModule := func(path string) string {
		return strings.Replace(uri, "module-path="+tk.HSM.Module, "module-path="+path, 1)
	}

	for _, tc := range []struct {
		name string
		uri  string
		want error
	}{
		{"wrong PIN", tk.URIWithPIN("share-key", "file:"+wrongPIN), keystore.ErrPKCS11Login},
		{"unknown token", unknown.URI("share-key"), keystore.ErrPKCS11TokenNotFound},
		{"other serial", withSerial(uri, "0000000000000000"), keystore.ErrPKCS11TokenNotFound},
		{"missing key", tk.URI("no-such-key"), keystore.ErrPKCS11KeyNotFound},
		{"missing PIN file", tk.URIWithPIN("share-key", "file:"+filepath.Join(dir, "missing")), keystore.ErrConfig},
		{"unset PIN variable", tk.URIWithPIN("share-key", "env:FM_TEST_UNSET_PIN_XYZ"), keystore.ErrConfig},
		{"missing module", otherModule(filepath.Join(dir, "missing.so")), keystore.ErrConfig},
		{"not a module", otherModule(notALibrary), keystore.ErrConfig},
		{"pin-value", strings.Replace(uri, "pin-source=file:", "pin-value="+tk.PIN+"&x=", 1), keystore.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openErr(t, tc.uri)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
			if strings.Contains(err.Error(), tk.PIN) {
				t.Fatalf("error carries the PIN: %v", err)
			}
		})
	}
	t.Run("right serial", func(t *testing.T) {
		openP11(t, withSerial(uri, tk.Serial))
	})
	t.Run("PIN from environment", func(t *testing.T) {
		t.Setenv("FM_TEST_P11_PIN", tk.PIN)
		openP11(t, tk.URIWithPIN("share-key", "env:FM_TEST_P11_PIN"))
	})
}

// withSerial adds serial= to a token URI.
func withSerial(uri, serial string) string {
	return strings.Replace(uri, "?", ";serial="+serial+"?", 1)
}

// TestPKCS11SerialTellsTokensApart: two tokens with one label are refused
// unless the URI names the serial.
func TestPKCS11SerialTellsTokensApart(t *testing.T) {
	h := softhsmtest.NewHSM(t)
	a, b := h.NewTokenLabelled(t, "fm-twin"), h.NewTokenLabelled(t, "fm-twin")
	if err := keystore.InitPKCS11Key(a.URI("share-key")); !errors.Is(err, keystore.ErrConfig) {
		t.Fatalf("InitPKCS11Key without serial: got %v, want ErrConfig", err)
	}
	uriA := withSerial(a.URI("share-key"), a.Serial)
	if err := keystore.InitPKCS11Key(uriA); err != nil {
		t.Fatal(err)
	}
	openP11(t, uriA)
	if err := openErr(t, a.URI("share-key")); !errors.Is(err, keystore.ErrConfig) {
		t.Fatalf("Open without serial: got %v, want ErrConfig", err)
	}
	if err := openErr(t, withSerial(b.URI("share-key"), b.Serial)); !errors.Is(err, keystore.ErrPKCS11KeyNotFound) {
		t.Fatalf("Open of the other twin: got %v, want ErrPKCS11KeyNotFound", err)
	}
}

// TestPKCS11SharedLogin: the login of a token is shared by the process's
// sessions, so closing one backend must not log out another, and a second
// backend with a wrong PIN must not ride on the first one's login.
func TestPKCS11SharedLogin(t *testing.T) {
	tk := softhsmtest.New(t)
	uriA, uriB := enrol(t, tk, "key-a"), enrol(t, tk, "key-b")
	a, err := keystore.Open(uriA, keystore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := openP11(t, uriB)

	wrong := filepath.Join(t.TempDir(), "wrong.pin")
	os.WriteFile(wrong, []byte("00000000"), 0o600)
	if err := openErr(t, tk.URIWithPIN("key-a", "file:"+wrong)); !errors.Is(err, keystore.ErrPKCS11Login) {
		t.Fatalf("wrong PIN beside a logged-in backend: got %v, want ErrPKCS11Login", err)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	sealed, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatalf("after closing another backend: %v", err)
	}
	if _, err := b.Unseal(sealed, "signer-1"); err != nil {
		t.Fatalf("after closing another backend: %v", err)
	}
}

// TestPKCS11Reopen: closing the last backend finalizes the module, and a
// later Open initializes it again.
func TestPKCS11Reopen(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := enrol(t, tk, "share-key")
	var sealed []byte
	for i := range 3 {
		b, err := keystore.Open(uri, keystore.Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if sealed == nil {
			if sealed, err = b.Seal([]byte("share"), "signer-1"); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := b.Unseal(sealed, "signer-1"); err != nil || string(got) != "share" {
			t.Fatalf("open %d: %q, %v", i, got, err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second close %d: %v", i, err)
		}
		if _, err := b.Seal([]byte("share"), "signer-1"); err == nil {
			t.Fatal("sealed after Close")
		}
		if _, err := b.Unseal(sealed, "signer-1"); err == nil {
			t.Fatal("unsealed after Close")
		}
	}
}

func TestPKCS11InitRefusesOverwrite(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := enrol(t, tk, "share-key")
	b := openP11(t, uri)
	sealed, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := keystore.InitPKCS11Key(uri); !errors.Is(err, keystore.ErrPKCS11KeyExists) {
		t.Fatalf("second InitPKCS11Key: got %v, want ErrPKCS11KeyExists", err)
	}
	// The key is the same: the share sealed before still opens, from a
	// new backend too.
	if _, err := openP11(t, uri).Unseal(sealed, "signer-1"); err != nil {
		t.Fatalf("after the refused InitPKCS11Key: %v", err)
	}
	wrongPIN := filepath.Join(t.TempDir(), "wrong.pin")
	if err := os.WriteFile(wrongPIN, []byte("00000000"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		uri  string
		want error
	}{
		{"wrong PIN", tk.URIWithPIN("k2", "file:"+wrongPIN), keystore.ErrPKCS11Login},
		{"unset PIN variable", tk.URIWithPIN("k2", "env:FM_TEST_UNSET_PIN_XYZ"), keystore.ErrConfig},
		{"unknown token", strings.Replace(uri, tk.Label, "fm-no-such-token", 1), keystore.ErrPKCS11TokenNotFound},
		{"not a URI", "pkcs11:token=%zz", keystore.ErrConfig},
	} {
		if err := keystore.InitPKCS11Key(tc.uri); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// tamper rewrites one field of a sealed envelope.
func tamper(t *testing.T, sealed []byte, field string, f func(json.RawMessage) json.RawMessage) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(sealed, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m[field]; !ok {
		t.Fatalf("no field %q in the envelope", field)
	}
	m[field] = f(m[field])
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flipByte decodes a base64 JSON string, flips a bit of byte i (from the end
// when negative) and encodes it again.
func flipByte(i int) func(json.RawMessage) json.RawMessage {
	return func(raw json.RawMessage) json.RawMessage {
		var b []byte
		if err := json.Unmarshal(raw, &b); err != nil {
			panic(err)
		}
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		out, _ := json.Marshal(b)
		return out
	}
}

func TestPKCS11Tampered(t *testing.T) {
	tk := softhsmtest.New(t)
	b := openP11(t, enrol(t, tk, "share-key"))
	sealed, err := b.Seal([]byte("0123456789abcdef0123456789abcdef"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		blob  []byte
		label string
		want  error
	}{
		{"IV", tamper(t, sealed, "iv", flipByte(0)), "signer-1", keystore.ErrUnseal},
		{"ciphertext first byte", tamper(t, sealed, "ciphertext", flipByte(0)), "signer-1", keystore.ErrUnseal},
		{"tag last byte", tamper(t, sealed, "ciphertext", flipByte(-1)), "signer-1", keystore.ErrUnseal},
		{"label", sealed, "signer-2", keystore.ErrUnseal},
		{"empty label", sealed, "", keystore.ErrUnseal},
		{"key label", tamper(t, sealed, "key", func(json.RawMessage) json.RawMessage { return json.RawMessage(`"other-key"`) }), "signer-1", keystore.ErrUnseal},
		{"truncated ciphertext", tamper(t, sealed, "ciphertext", func(raw json.RawMessage) json.RawMessage {
			var c []byte
			json.Unmarshal(raw, &c)
			out, _ := json.Marshal(c[:len(c)-1])
			return out
		}), "signer-1", keystore.ErrUnseal},
		{"version", tamper(t, sealed, "v", func(json.RawMessage) json.RawMessage { return json.RawMessage(`2`) }), "signer-1", keystore.ErrFormat},
		{"kind", tamper(t, sealed, "kind", func(json.RawMessage) json.RawMessage { return json.RawMessage(`"piv"`) }), "signer-1", keystore.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Unseal(tc.blob, tc.label)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
	// A failed decryption leaves the session usable.
	if got, err := b.Unseal(sealed, "signer-1"); err != nil || string(got) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("after tampered blobs: %q, %v", got, err)
	}
}

func TestPKCS11BlobHoldsNoSecret(t *testing.T) {
	tk := softhsmtest.New(t)
	b := openP11(t, enrol(t, tk, "share-key"))
	secret := make([]byte, 32)
	rand.Read(secret)
	sealed, err := b.Seal(secret, "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range [][]byte{
		secret,
		[]byte(hex.EncodeToString(secret)),
		[]byte(base64.StdEncoding.EncodeToString(secret)[:40]),
	} {
		if bytes.Contains(sealed, enc) {
			t.Fatalf("sealed blob contains the secret (%q)", enc)
		}
	}
	if bytes.Contains(sealed, []byte(tk.PIN)) {
		t.Fatal("sealed blob contains the PIN")
	}
}

// TestPKCS11ForeignBlobs: blobs of the passphrase backend are a format
// error here, and the other way round.
func TestPKCS11ForeignBlobs(t *testing.T) {
	tk := softhsmtest.New(t)
	b := openP11(t, enrol(t, tk, "share-key"))
	p, err := keystore.NewPassphrase([]byte("correct horse"), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	fromPass, err := p.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(fromPass, "signer-1"); !errors.Is(err, keystore.ErrFormat) {
		t.Fatalf("passphrase blob into pkcs11: got %v, want ErrFormat", err)
	}
	fromP11, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Unseal(fromP11, "signer-1"); !errors.Is(err, keystore.ErrFormat) {
		t.Fatalf("pkcs11 blob into passphrase: got %v, want ErrFormat", err)
	}
}

// TestPKCS11Concurrent seals and unseals from several goroutines, on one
// backend and on two backends sharing the module and the token (run under
// -race).
func TestPKCS11Concurrent(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := enrol(t, tk, "share-key")
	backends := []keystore.Backend{openP11(t, uri), openP11(t, uri), openP11(t, enrol(t, tk, "other-key"))}
	const goroutines, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			b := backends[g%len(backends)]
			for r := range rounds {
				secret := []byte(fmt.Sprintf("share %d/%d", g, r))
				label := fmt.Sprintf("signer-%d", g)
				sealed, err := b.Seal(secret, label)
				if err != nil {
					errs <- err
					return
				}
				got, err := b.Unseal(sealed, label)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, secret) {
					errs <- fmt.Errorf("goroutine %d round %d: wrong secret", g, r)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPKCS11SecretTooLarge(t *testing.T) {
	tk := softhsmtest.New(t)
	b := openP11(t, enrol(t, tk, "share-key"))
	if _, err := b.Seal(make([]byte, 64<<10+1), "signer-1"); err == nil {
		t.Fatal("sealed a secret larger than the envelope allows")
	}
	big := make([]byte, 64<<10)
	sealed, err := b.Seal(big, "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Unseal(sealed, "signer-1"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("largest secret: %v", err)
	}
}

// BenchmarkPKCS11Unseal measures unsealing a 32-byte share with SoftHSM2
// (C_DecryptInit + C_Decrypt on a non-extractable AES-256 key, plus the
// envelope parse).
func BenchmarkPKCS11Unseal(b *testing.B) {
	tk := softhsmtest.New(b)
	s := openP11(b, enrol(b, tk, "share-key"))
	sealed, err := s.Seal(make([]byte, 32), "signer-1")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Unseal(sealed, "signer-1"); err != nil {
			b.Fatal(err)
		}
	}
}
