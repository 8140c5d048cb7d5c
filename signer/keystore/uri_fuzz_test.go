package keystore

import (
	"errors"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzKeystoreURI feeds arbitrary keystore URIs to the pkcs11: and piv:
// parsers (and to Open for any other scheme, which opens nothing), without
// touching a device. Nothing may panic; every refusal wraps ErrConfig and
// never repeats a PIN that was put in the URI (as pin= or pin-value=);
// and what is accepted is a usable configuration: pkcs11 with a token
// label, a key label and an absolute module path within bounds, piv with
// a key slot, known policies, and a PIN named by a source (never a PIN),
// required unless the PIN policy is never.
func FuzzKeystoreURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=signers;object=share-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:FM_PIN",
		"pkcs11:object=k;serial=0b19ee24c0634146;token=My%20Token?module-path=/opt/c++/lib%20x.so&pin-source=file:/run/pin",
		"pkcs11:token=t;object=k?module-path=/lib/x.so&pin-value=123456",
		"pkcs11://host/token=t;object=k?module-path=/lib/x.so&pin-source=env:P",
		"piv:?serial=12345678&slot=9d&pin-source=env:PIN&touch=always&pin-policy=once",
		"piv:?slot=82&pin-policy=never",
		"piv:?pin=123456",
		"piv:?slot=9b&pin-source=env:P",
		"file:?passphrase=env:P",
		"file:?passphrase=s3cr3t-passphrase",
		"http://x", "", ":", "pkcs11:%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		u, perr := url.Parse(uri)
		var err error
		switch {
		case perr != nil || u.Scheme != "pkcs11" && u.Scheme != "piv":
			// Open parses, and refuses without opening anything for any
			// scheme but pkcs11 and piv (file: needs dev mode).
			var b Backend
			b, err = Open(uri, Options{})
			if err == nil {
				b.Close()
				t.Fatalf("Open(%q) opened a backend outside dev mode", uri)
			}
		case u.Scheme == "pkcs11":
			var c pkcs11Config
			if c, err = parsePKCS11URI(u); err == nil {
				if c.Token == "" || len(c.Token) > p11MaxTokenLabel || len(c.Serial) > p11MaxSerial || c.Object == "" ||
					len(c.Object) > p11MaxKeyLabel || !filepath.IsAbs(c.Module) || SecretSource("pin", c.PINSource) != nil {
					t.Fatalf("parsePKCS11URI(%q) = %+v", uri, c)
				}
			}
		default:
			var c pivConfig
			if c, err = parsePIVURI(u); err == nil {
				_, slotErr := parsePIVSlot(strings.ToLower(hexByte(c.slot)))
				switch {
				case slotErr != nil,
					c.pinPolicy != pivPolicyOnce && c.pinPolicy != pivPolicyAlways && c.pinPolicy != pivPolicyNever,
					c.touch != pivPolicyNever && c.touch != pivPolicyAlways && c.touch != pivPolicyCached,
					c.pinSource == "" && c.pinPolicy != pivPolicyNever,
					c.pinSource != "" && SecretSource("pin", c.pinSource) != nil:
					t.Fatalf("parsePIVURI(%q) = %+v", uri, c)
				}
			}
		}
		if err == nil {
			return
		}
		if !errors.Is(err, ErrConfig) && perr == nil && (u.Scheme == "pkcs11" || u.Scheme == "piv") {
			t.Fatalf("%q refused with %v, want ErrConfig", uri, err)
		}
		if !errors.Is(err, ErrConfig) && (perr != nil || u.Scheme != "file") {
			t.Fatalf("Open(%q) = %v, want ErrConfig", uri, err)
		}
		// A PIN-like secret (digits: a word could be part of the message
		// itself) in the query must not show; what precedes the query may
		// be quoted.
		before, query, _ := strings.Cut(uri, "?")
		quoted := strconv.Quote(before)
		msg := strings.ReplaceAll(err.Error(), quoted[1:len(quoted)-1], "")
		if q, qerr := url.ParseQuery(query); qerr == nil {
			for _, name := range []string{"pin", "pin-value", "passphrase"} {
				for _, v := range q[name] {
					if len(v) >= 4 && isDigits(v) && !strings.Contains(before, v) && strings.Contains(msg, v) {
						t.Fatalf("the error for %q shows the secret %q: %v", uri, v, err)
					}
				}
			}
		}
	})
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}
