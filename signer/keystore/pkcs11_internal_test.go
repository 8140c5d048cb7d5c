//go:build cgo

package keystore

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/signer/keystore/softhsmtest"
	"github.com/miekg/pkcs11"
)

// p11Open opens the backend of uri; the test closes it when it ends.
func p11Open(t *testing.T, uri string) *pkcs11Backend {
	t.Helper()
	b, err := Open(uri, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b.(*pkcs11Backend)
}

// p11RWSession opens a read-write session on uri's token, as an
// administrator's tool would, to create keys InitPKCS11Key would not.
func p11RWSession(t *testing.T, uri string) *p11Session {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parsePKCS11URI(u)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openPKCS11Session(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// TestPKCS11KeyAttributes reads back the key InitPKCS11Key made: it lives
// on the token, needs a login, and its value can never be read or wrapped
// out.
func TestPKCS11KeyAttributes(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := tk.URI("share-key")
	if err := InitPKCS11Key(uri); err != nil {
		t.Fatal(err)
	}
	b := p11Open(t, uri)
	want := map[uint]bool{
		pkcs11.CKA_TOKEN:             true,
		pkcs11.CKA_PRIVATE:           true,
		pkcs11.CKA_SENSITIVE:         true,
		pkcs11.CKA_ALWAYS_SENSITIVE:  true,
		pkcs11.CKA_EXTRACTABLE:       false,
		pkcs11.CKA_NEVER_EXTRACTABLE: true,
		pkcs11.CKA_ENCRYPT:           true,
		pkcs11.CKA_DECRYPT:           true,
		pkcs11.CKA_WRAP:              false,
		pkcs11.CKA_UNWRAP:            false,
	}
	var tmpl []*pkcs11.Attribute
	for typ := range want {
		tmpl = append(tmpl, pkcs11.NewAttribute(typ, nil))
	}
	got, err := b.s.mod.ctx.GetAttributeValue(b.s.h, b.key, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d attributes, want %d", len(got), len(want))
	}
	for _, a := range got {
		if p11Bool(a.Value) != want[a.Type] {
			t.Errorf("attribute 0x%x is %v, want %v", a.Type, p11Bool(a.Value), want[a.Type])
		}
	}
	attrs, err := b.s.keyAttrs(b.key)
	if err != nil {
		t.Fatal(err)
	}
	if attrs.KeyType != pkcs11.CKK_AES || attrs.ValueLen != 32 {
		t.Fatalf("key type 0x%x of %d bytes, want AES-256", attrs.KeyType, attrs.ValueLen)
	}
	if _, err := b.s.mod.ctx.GetAttributeValue(b.s.h, b.key, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
		t.Fatal("the token let the key's value be read")
	}
}

// TestPKCS11KeyChecks: Open needs exactly one suitable key with the label.
func TestPKCS11KeyChecks(t *testing.T) {
	tk := softhsmtest.New(t)
	// set returns the sealing template with one attribute replaced.
	set := func(label string, typ uint, v any) []*pkcs11.Attribute {
		tmpl := p11KeyTemplate(label)
		for i, a := range tmpl {
			if a.Type == typ {
				tmpl[i] = pkcs11.NewAttribute(typ, v)
			}
		}
		return tmpl
	}
	for _, tc := range []struct {
		name  string
		label string
		keys  [][]*pkcs11.Attribute
		want  error
	}{
		{"two keys, one label", "twice", [][]*pkcs11.Attribute{p11KeyTemplate("twice"), p11KeyTemplate("twice")}, ErrPKCS11KeyAmbiguous},
		{"extractable", "extractable", [][]*pkcs11.Attribute{set("extractable", pkcs11.CKA_EXTRACTABLE, true)}, ErrPKCS11KeyUnsuitable},
		{"not sensitive", "readable", [][]*pkcs11.Attribute{set("readable", pkcs11.CKA_SENSITIVE, false)}, ErrPKCS11KeyUnsuitable},
		{"AES-128", "short", [][]*pkcs11.Attribute{set("short", pkcs11.CKA_VALUE_LEN, 16)}, ErrPKCS11KeyUnsuitable},
		{"encrypt only", "one-way", [][]*pkcs11.Attribute{set("one-way", pkcs11.CKA_DECRYPT, false)}, ErrPKCS11KeyUnsuitable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri := tk.URI(tc.label)
			s := p11RWSession(t, uri)
			for _, k := range tc.keys {
				if err := s.generateKey(k); err != nil {
					t.Fatal(err)
				}
			}
			b, err := Open(uri, Options{})
			if err == nil {
				b.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
			if err := InitPKCS11Key(uri); !errors.Is(err, ErrPKCS11KeyExists) {
				t.Fatalf("InitPKCS11Key: got %v, want ErrPKCS11KeyExists", err)
			}
		})
	}
}

// TestPKCS11ModuleTable: two spellings of one library (a symbolic link and
// its target) share one entry, so the module is initialized once; it is
// finalized when the last backend closes and initialized again after.
func TestPKCS11ModuleTable(t *testing.T) {
	tk := softhsmtest.New(t)
	uri := tk.URI("share-key")
	if err := InitPKCS11Key(uri); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(tk.HSM.Module)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "softhsm.so")
	if err := os.Symlink(resolved, link); err != nil {
		t.Fatal(err)
	}
	viaLink := strings.Replace(uri, "module-path="+tk.HSM.Module, "module-path="+link, 1)

	refs := func() int {
		p11Modules.mu.Lock()
		defer p11Modules.mu.Unlock()
		if m := p11Modules.mods[resolved]; m != nil {
			return m.refs
		}
		return 0
	}
	a, err := Open(uri, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(viaLink, Options{})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	if n := refs(); n != 2 {
		t.Errorf("%d sessions counted on the module, want 2", n)
	}
	sealed, err := a.Seal([]byte("share"), "signer-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(sealed, "signer-1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := refs(); n != 0 {
		t.Fatalf("%d sessions left on the module after closing all", n)
	}
	c := p11Open(t, viaLink)
	if _, err := c.Unseal(sealed, "signer-1"); err != nil {
		t.Fatalf("after finalize and initialize again: %v", err)
	}
}
