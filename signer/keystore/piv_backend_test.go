package keystore

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePIVURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want pivConfig
		err  error
	}{
		{"piv:?pin-source=env:PIN", pivConfig{slot: 0x9d, pinSource: "env:PIN", pinPolicy: "once", touch: "never"}, nil},
		{"piv:?serial=12345678&slot=9a&pin-source=file:/run/pin&touch=always&pin-policy=always",
			pivConfig{serial: 12345678, slot: 0x9a, pinSource: "file:/run/pin", pinPolicy: "always", touch: "always"}, nil},
		{"piv:?slot=9D&pin-source=env:P&touch=cached", pivConfig{slot: 0x9d, pinSource: "env:P", pinPolicy: "once", touch: "cached"}, nil},
		{"piv:?slot=82&pin-policy=never", pivConfig{slot: 0x82, pinPolicy: "never", touch: "never"}, nil},
		{"piv:?slot=95&pin-policy=never&pin-source=env:P", pivConfig{slot: 0x95, pinSource: "env:P", pinPolicy: "never", touch: "never"}, nil},

		{"piv:?pin=123456", pivConfig{}, ErrConfig},
		{"piv:?pin-value=123456&pin-source=env:P", pivConfig{}, ErrConfig},
		{"piv:?pin-source=123456", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:", pivConfig{}, ErrConfig},
		{"piv:", pivConfig{}, ErrConfig}, // pin-source required
		{"piv:?pin-source=env:P&colour=blue", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&PIN-SOURCE=env:Q", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=9d&slot=9a", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=9b", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=f9", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=96", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=9", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&slot=0x9d", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&serial=0", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&serial=-1", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&serial=+5", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&serial=4294967296", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&serial=abc", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&touch=sometimes", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&pin-policy=Once", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P&pin-policy=match-once", pivConfig{}, ErrConfig},
		{"piv://host?pin-source=env:P", pivConfig{}, ErrConfig},
		{"piv:opaque?pin-source=env:P", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P#frag", pivConfig{}, ErrConfig},
		{"piv:?pin-source=env:P;slot=9a", pivConfig{}, ErrConfig},
		{"pkcs11:?pin-source=env:P", pivConfig{}, ErrConfig},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := parsePIVURIString(tc.uri)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "123456") {
				t.Fatalf("error repeats a PIN: %v", err)
			}
		})
	}
}

// sealOne returns a valid envelope, as JSON and decoded into a map.
func sealOne(t testing.TB, curve ecdh.Curve) (*pivBackend, []byte) {
	t.Helper()
	b, _, err := newPIVSoft(12345678, 0x9d, curve)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	return b, blob
}

// mutate decodes a blob to a map, applies f and encodes it again.
func mutate(t *testing.T, blob []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(blob, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPIVEnvelopeStrict(t *testing.T) {
	b, blob := sealOne(t, ecdh.P256())
	if _, err := parsePIVEnvelope(blob); err != nil {
		t.Fatalf("valid envelope refused: %v", err)
	}
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, tc := range []struct {
		name string
		blob []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("sealed")},
		{"array", []byte("[1]")},
		{"empty object", []byte("{}")},
		{"trailing data", append(append([]byte(nil), blob...), []byte(" {}")...)},
		{"trailing garbage", append(append([]byte(nil), blob...), 'x')},
		{"unknown field", mutate(t, blob, func(m map[string]any) { m["extra"] = "x" })},
		{"missing field", mutate(t, blob, func(m map[string]any) { delete(m, "salt") })},
		{"version 2", mutate(t, blob, func(m map[string]any) { m["v"] = 2 })},
		{"version as string", mutate(t, blob, func(m map[string]any) { m["v"] = "1" })},
		{"version 1.0", []byte(strings.Replace(string(blob), `"v": 1,`, `"v": 1.0,`, 1))},
		{"kind", mutate(t, blob, func(m map[string]any) { m["kind"] = "piv-rsa" })},
		{"serial 0", mutate(t, blob, func(m map[string]any) { m["serial"] = 0 })},
		{"serial negative", mutate(t, blob, func(m map[string]any) { m["serial"] = -3 })},
		{"serial huge", mutate(t, blob, func(m map[string]any) { m["serial"] = 1 << 40 })},
		{"serial string", mutate(t, blob, func(m map[string]any) { m["serial"] = "12345678" })},
		{"slot 9b", mutate(t, blob, func(m map[string]any) { m["slot"] = "9b" })},
		{"slot upper", mutate(t, blob, func(m map[string]any) { m["slot"] = "9D" })},
		{"slot number", mutate(t, blob, func(m map[string]any) { m["slot"] = 157 })},
		{"fingerprint size", mutate(t, blob, func(m map[string]any) { m["slot_key_sha256"] = b64(20) })},
		{"ephemeral not a point", mutate(t, blob, func(m map[string]any) { m["ephemeral"] = b64(65) })},
		{"ephemeral compressed", mutate(t, blob, func(m map[string]any) { m["ephemeral"] = b64(33) })},
		{"salt size", mutate(t, blob, func(m map[string]any) { m["salt"] = b64(16) })},
		{"nonce size", mutate(t, blob, func(m map[string]any) { m["nonce"] = b64(12) })},
		{"ciphertext short", mutate(t, blob, func(m map[string]any) { m["ciphertext"] = b64(15) })},
		{"null value", mutate(t, blob, func(m map[string]any) { m["nonce"] = nil })},
		{"nested value", mutate(t, blob, func(m map[string]any) { m["nonce"] = map[string]any{} })},
		{"not base64", mutate(t, blob, func(m map[string]any) { m["salt"] = "***" })},
		{"base64 with newline", mutate(t, blob, func(m map[string]any) {
			s := m["salt"].(string)
			m["salt"] = s[:4] + "\n" + s[4:]
		})},
		{"base64 unpadded", mutate(t, blob, func(m map[string]any) { m["salt"] = strings.TrimRight(m["salt"].(string), "=") })},
		{"base64url", []byte(strings.NewReplacer("+", "-", "/", "_").Replace(string(blob)))},
		{"repeated field", []byte(strings.Replace(string(blob), `"v": 1,`, `"v": 1, "v": 1,`, 1))},
		{"field case", []byte(strings.Replace(string(blob), `"kind"`, `"Kind"`, 1))},
		{"too large", bytes.Repeat([]byte(" "), pivMaxEnvelope+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.blob, blob) {
				t.Skip("the mutation happens to change nothing in this blob")
			}
			_, err := parsePIVEnvelope(tc.blob)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("parse: %v, want ErrFormat", err)
			}
			if _, err := b.Unseal(tc.blob, "signer-1"); !errors.Is(err, ErrFormat) {
				t.Fatalf("Unseal: %v, want ErrFormat", err)
			}
		})
	}
}

// TestPIVEnvelopeBinding changes each header field to another valid
// value: Unseal must refuse with ErrUnseal, without asking the card when
// the header names another card, slot or key.
func TestPIVEnvelopeBinding(t *testing.T) {
	b, card, err := newPIVSoft(12345678, 0x9d, ecdh.P256())
	if err != nil {
		t.Fatal(err)
	}
	blob, err := b.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := newPIVSoft(12345678, 0x9d, ecdh.P256())
	otherBlob, _ := other.Seal([]byte("share"), "signer-1")
	var o map[string]any
	json.Unmarshal(otherBlob, &o)
	x, _, _ := newPIVSoft(12345678, 0x9d, ecdh.X25519())
	xBlob, _ := x.Seal([]byte("share"), "signer-1")
	var xm map[string]any
	json.Unmarshal(xBlob, &xm)

	for _, tc := range []struct {
		name     string
		f        func(m map[string]any)
		cardUsed bool
	}{
		{"serial", func(m map[string]any) { m["serial"] = 87654321 }, false},
		{"slot", func(m map[string]any) { m["slot"] = "9a" }, false},
		{"slot key", func(m map[string]any) { m["slot_key_sha256"] = o["slot_key_sha256"] }, false},
		{"kind", func(m map[string]any) { m["kind"] = xm["kind"]; m["ephemeral"] = xm["ephemeral"] }, false},
		{"ephemeral", func(m map[string]any) { m["ephemeral"] = o["ephemeral"] }, true},
		{"salt", func(m map[string]any) { m["salt"] = o["salt"] }, true},
		{"nonce", func(m map[string]any) { m["nonce"] = o["nonce"] }, true},
		{"ciphertext", func(m map[string]any) { m["ciphertext"] = o["ciphertext"] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := card.ops
			_, err := b.Unseal(mutate(t, blob, tc.f), "signer-1")
			if !errors.Is(err, ErrUnseal) {
				t.Fatalf("got %v, want ErrUnseal", err)
			}
			if used := card.ops > before; used != tc.cardUsed {
				t.Fatalf("card used: %v, want %v", used, tc.cardUsed)
			}
		})
	}
}

func TestPIVBackendCardErrors(t *testing.T) {
	b, card, err := newPIVSoft(1, 0x9d, ecdh.P256())
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := b.Seal([]byte("share"), "l")
	card.err = &PIVPINError{Retries: 2}
	_, err = b.Unseal(blob, "l")
	var pe *PIVPINError
	if !errors.As(err, &pe) || pe.Retries != 2 || !errors.Is(err, ErrPIVPIN) || errors.Is(err, ErrUnseal) {
		t.Fatalf("got %v, want the card's PIN error", err)
	}
	card.err = nil
	if err := b.Close(); err != nil || !card.closed {
		t.Fatalf("Close: %v, closed %v", err, card.closed)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Seal([]byte("x"), "l"); !errors.Is(err, errPIVClosed) {
		t.Fatalf("Seal after Close: %v", err)
	}
	if _, err := b.Unseal(blob, "l"); !errors.Is(err, errPIVClosed) {
		t.Fatalf("Unseal after Close: %v", err)
	}
}

func TestPIVPINErrorText(t *testing.T) {
	for _, e := range []*PIVPINError{{Retries: 2}, {Retries: 1, NotTried: true}, {}, {NotTried: true}} {
		if !errors.Is(e, ErrPIVPIN) || e.Error() == "" {
			t.Fatalf("%#v", e)
		}
	}
}

func TestPIVManagementKeySource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	}
	custom := "00112233445566778899aabbccddeeff0011223344556677"
	for _, tc := range []struct {
		name string
		o    PIVEnrollOptions
		want []byte
		err  error
	}{
		{"none", PIVEnrollOptions{}, nil, ErrConfig},
		{"default allowed", PIVEnrollOptions{AllowDefaultManagementKey: true}, pivDefaultManagementKey(), nil},
		{"custom", PIVEnrollOptions{ManagementKeySource: write("k1", custom+"\n")}, []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}, nil},
		{"aes128", PIVEnrollOptions{ManagementKeySource: write("k2", strings.ToUpper(custom[:32]))}, []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, nil},
		{"default from source", PIVEnrollOptions{ManagementKeySource: write("k3", "010203040506070801020304050607080102030405060708")}, nil, ErrConfig},
		{"default from source allowed", PIVEnrollOptions{ManagementKeySource: write("k4", "010203040506070801020304050607080102030405060708"), AllowDefaultManagementKey: true}, pivDefaultManagementKey(), nil},
		{"odd length", PIVEnrollOptions{ManagementKeySource: write("k5", custom[:47])}, nil, ErrConfig},
		{"wrong length", PIVEnrollOptions{ManagementKeySource: write("k6", custom[:40])}, nil, ErrConfig},
		{"not hex", PIVEnrollOptions{ManagementKeySource: write("k7", strings.Replace(custom, "00", "zz", 1))}, nil, ErrConfig},
		{"literal", PIVEnrollOptions{ManagementKeySource: custom}, nil, ErrConfig},
		{"missing file", PIVEnrollOptions{ManagementKeySource: "file:" + filepath.Join(dir, "nope")}, nil, ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pivManagementKey(tc.o)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %x, %v; want %x, %v", got, err, tc.want, tc.err)
			}
			if err != nil && strings.Contains(strings.ToLower(err.Error()), custom[8:24]) {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
}

// FuzzPIVEnvelope feeds arbitrary blobs to the envelope parser and to
// Unseal: they must refuse with ErrFormat or ErrUnseal, never panic, and
// whatever parses must encode back to something that parses the same.
func FuzzPIVEnvelope(f *testing.F) {
	b, blob := sealOne(f, ecdh.P256())
	xb, xblob := sealOne(f, ecdh.X25519())
	f.Add(blob)
	f.Add(xblob)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte("not sealed"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parsePIVEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("parse error %v does not wrap ErrFormat", err)
			}
		} else {
			again, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			e2, err := parsePIVEnvelope(again)
			if err != nil {
				t.Fatalf("re-encoded envelope refused: %v", err)
			}
			if a, _ := json.Marshal(e2); !bytes.Equal(a, again) {
				t.Fatalf("round trip changed the envelope")
			}
		}
		for _, s := range []*pivBackend{b, xb} {
			out, err := s.Unseal(data, "signer-1")
			switch {
			case err == nil && !bytes.Equal(out, []byte("share")):
				t.Fatalf("unsealed something else: %q", out)
			case err != nil && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnseal):
				t.Fatalf("Unseal error %v is neither ErrFormat nor ErrUnseal", err)
			}
		}
	})
}

// TestPIVOpenBadURI makes sure the URI is checked before the card is
// looked for, in any build.
func TestPIVOpenBadURI(t *testing.T) {
	u, _ := url.Parse("piv:?pin=1234")
	if _, err := openPIV(u); !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
	if _, err := EnrollPIV("piv:?pin-source=env:P&algorithm=rsa", PIVEnrollOptions{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
	if _, err := EnrollPIV("piv:?pin-source=env:P", PIVEnrollOptions{Algorithm: "rsa2048"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
}
