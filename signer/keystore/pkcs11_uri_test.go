package keystore

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	const q = "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:FM_PIN"
	ok := []struct {
		uri  string
		want pkcs11Config
	}{
		{"pkcs11:token=signers;object=share-key" + q,
			pkcs11Config{Token: "signers", Object: "share-key", Module: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "env:FM_PIN"}},
		{"pkcs11:object=k;serial=0b19ee24c0634146;token=My%20Token" + q,
			pkcs11Config{Token: "My Token", Serial: "0b19ee24c0634146", Object: "k", Module: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "env:FM_PIN"}},
		// "+" stays a plus (RFC 7512, unlike form encoding); %3B is a
		// semicolon inside a value.
		{"pkcs11:token=a+b;object=x%3By?module-path=/opt/c++/lib%20x.so&pin-source=file:/run/secrets/pin",
			pkcs11Config{Token: "a+b", Object: "x;y", Module: "/opt/c++/lib x.so", PINSource: "file:/run/secrets/pin"}},
	}
	for _, tc := range ok {
		u, err := url.Parse(tc.uri)
		if err != nil {
			t.Fatalf("%s: %v", tc.uri, err)
		}
		got, err := parsePKCS11URI(u)
		if err != nil {
			t.Errorf("%s: %v", tc.uri, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.uri, got, tc.want)
		}
	}

	bad := []struct{ name, uri string }{
		{"no token", "pkcs11:object=k" + q},
		{"no object", "pkcs11:token=t" + q},
		{"no query", "pkcs11:token=t;object=k"},
		{"no module", "pkcs11:token=t;object=k?pin-source=env:FM_PIN"},
		{"relative module", "pkcs11:token=t;object=k?module-path=libsofthsm2.so&pin-source=env:FM_PIN"},
		{"no pin source", "pkcs11:token=t;object=k?module-path=/lib/x.so"},
		{"pin source is the PIN", "pkcs11:token=t;object=k?module-path=/lib/x.so&pin-source=1234"},
		{"pin-value", "pkcs11:token=t;object=k?module-path=/lib/x.so&pin-value=1234"},
		{"pin-value beside pin-source", "pkcs11:token=t;object=k?module-path=/lib/x.so&pin-source=env:P&pin-value=1234"},
		{"unknown path attribute", "pkcs11:token=t;object=k;id=%01" + q},
		{"unknown query attribute", "pkcs11:token=t;object=k" + q + "&module-name=softhsm2"},
		{"repeated attribute", "pkcs11:token=t;token=u;object=k" + q},
		{"empty value", "pkcs11:token=;object=k" + q},
		{"empty component", "pkcs11:token=t;;object=k" + q},
		{"no equals", "pkcs11:token;object=k" + q},
		{"bad escape", "pkcs11:token=%zz;object=k" + q},
		{"token label too long", "pkcs11:token=" + strings.Repeat("t", 33) + ";object=k" + q},
		{"serial too long", "pkcs11:token=t;object=k;serial=" + strings.Repeat("1", 17) + q},
		{"object label too long", "pkcs11:token=t;object=" + strings.Repeat("k", p11MaxKeyLabel+1) + q},
		{"authority", "pkcs11://host/token=t;object=k" + q},
		{"absolute path", "pkcs11:/token=t;object=k" + q},
		{"fragment", "pkcs11:token=t;object=k" + q + "#x"},
		{"other scheme", "file:token=t;object=k" + q},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parsePKCS11URI(u)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
			// The value 1234 stands for a PIN put where it must not be.
			if strings.Contains(err.Error(), "1234") {
				t.Fatalf("error repeats a secret: %v", err)
			}
		})
	}
}

// TestOpenPKCS11RefusesPINValue goes through the public entry points: a PIN
// in the URI is refused before anything is loaded.
func TestOpenPKCS11RefusesPINValue(t *testing.T) {
	uri := "pkcs11:token=t;object=k?module-path=/nonexistent/lib.so&pin-value=s3cr3t-pin"
	_, err := Open(uri, Options{})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Open: got %v, want ErrConfig", err)
	}
	if err2 := InitPKCS11Key(uri); !errors.Is(err2, ErrConfig) {
		t.Fatalf("InitPKCS11Key: got %v, want ErrConfig", err2)
	}
	if strings.Contains(err.Error(), "s3cr3t-pin") {
		t.Fatalf("error repeats the PIN: %v", err)
	}
}
