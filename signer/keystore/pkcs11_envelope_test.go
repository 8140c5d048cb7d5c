package keystore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validPKCS11Envelope() pkcs11Envelope {
	return pkcs11Envelope{Version: 1, Kind: pkcs11Kind, Key: "share-key",
		IV: bytes.Repeat([]byte{7}, p11IVSize), Ciphertext: bytes.Repeat([]byte{9}, 48)}
}

func TestPKCS11EnvelopeRoundTrip(t *testing.T) {
	e := validPKCS11Envelope()
	b, err := e.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parsePKCS11Envelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v, want %+v", got, e)
	}
}

func TestPKCS11EnvelopeRejects(t *testing.T) {
	with := func(f func(*pkcs11Envelope)) []byte {
		e := validPKCS11Envelope()
		f(&e)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid, _ := json.Marshal(validPKCS11Envelope())
	cases := []struct {
		name string
		blob []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("not sealed")},
		{"empty object", []byte("{}")},
		{"array", []byte("[]")},
		{"version 0", with(func(e *pkcs11Envelope) { e.Version = 0 })},
		{"version 2", with(func(e *pkcs11Envelope) { e.Version = 2 })},
		{"other kind", with(func(e *pkcs11Envelope) { e.Kind = "scrypt-xchacha20poly1305" })},
		{"no key label", with(func(e *pkcs11Envelope) { e.Key = "" })},
		{"key label too long", with(func(e *pkcs11Envelope) { e.Key = strings.Repeat("k", p11MaxKeyLabel+1) })},
		{"short IV", with(func(e *pkcs11Envelope) { e.IV = e.IV[:8] })},
		{"long IV", with(func(e *pkcs11Envelope) { e.IV = make([]byte, 16) })},
		{"no tag", with(func(e *pkcs11Envelope) { e.Ciphertext = e.Ciphertext[:p11TagSize-1] })},
		{"ciphertext too long", with(func(e *pkcs11Envelope) { e.Ciphertext = make([]byte, p11MaxSecret+p11TagSize+1) })},
		{"unknown field", bytes.Replace(valid, []byte(`{`), []byte(`{"kdf":"scrypt",`), 1)},
		{"trailing data", append(append([]byte(nil), valid...), []byte(` {}`)...)},
		{"bad base64", bytes.Replace(valid, []byte(`"iv":"`), []byte(`"iv":"*`), 1)},
		{"oversized", append(append([]byte(nil), valid...), bytes.Repeat([]byte(" "), p11MaxBlob)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parsePKCS11Envelope(tc.blob); !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

// TestPKCS11EnvelopeRefusesPassphraseBlob: the passphrase backend's blob
// is a format error, not an unseal failure.
func TestPKCS11EnvelopeRefusesPassphraseBlob(t *testing.T) {
	p, err := NewPassphrase([]byte("correct horse"), ScryptParams{N: 1 << 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsePKCS11Envelope(b); !errors.Is(err, ErrFormat) {
		t.Fatalf("got %v, want ErrFormat", err)
	}
}

// FuzzParsePKCS11Envelope: the parser never panics, only accepts
// envelopes within bounds, and what it accepts survives a round trip.
func FuzzParsePKCS11Envelope(f *testing.F) {
	valid, _ := validPKCS11Envelope().marshal()
	f.Add(valid)
	f.Add([]byte(`{"v":1,"kind":"pkcs11-aes-gcm","key":"k","iv":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Add([]byte(`{"v":1,"kdf":"scrypt-xchacha20poly1305","n":1024,"r":8,"p":1}`))
	f.Add([]byte(`{"v":1,"kind":"pkcs11-aes-gcm","v":2}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parsePKCS11Envelope(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if e.Version != 1 || e.Kind != pkcs11Kind || len(e.IV) != p11IVSize ||
			len(e.Ciphertext) < p11TagSize || len(e.Ciphertext) > p11MaxSecret+p11TagSize ||
			e.Key == "" || len(e.Key) > p11MaxKeyLabel {
			t.Fatalf("accepted an envelope out of bounds: %+v", e)
		}
		again, err := e.marshal()
		if err != nil {
			t.Fatalf("accepted envelope does not marshal: %v", err)
		}
		e2, err := parsePKCS11Envelope(again)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
	})
}
