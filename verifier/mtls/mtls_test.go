package mtls

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"
)

func TestCheckSPIFFE(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"spiffe://dev.frostmint.local/dev/cli", true},
		{"spiffe://td/a", true},
		{"spiffe://td", false},
		{"spiffe://td/", false},
		{"spiffe://td/a/", false},
		{"spiffe://td//a", false},
		{"spiffe://td/a/../b", false},
		{"spiffe://TD/a", false},
		{"spiffe://td:443/a", false},
		{"spiffe://user@td/a", false},
		{"spiffe://td/a?x=1", false},
		{"spiffe://td/a#f", false},
		{"https://td/a", false},
		{"", false},
	} {
		err := CheckSPIFFE(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSPIFFE(%q) = %v", tc.id, err)
		}
		if err != nil && !errors.Is(err, ErrNoIdentity) {
			t.Errorf("CheckSPIFFE(%q): error does not wrap ErrNoIdentity", tc.id)
		}
	}
}

func TestIdentityOfNeedsExactlyOneSPIFFEURI(t *testing.T) {
	u := func(s string) *url.URL { p, _ := url.Parse(s); return p }
	for _, tc := range []struct {
		uris []*url.URL
		ok   bool
	}{
		{[]*url.URL{u("spiffe://td/a")}, true},
		{[]*url.URL{u("spiffe://td/a"), u("https://example.com")}, true},
		{nil, false},
		{[]*url.URL{u("spiffe://td/a"), u("spiffe://td/b")}, false},
		{[]*url.URL{u("https://example.com")}, false},
	} {
		_, err := IdentityOf(&x509.Certificate{URIs: tc.uris})
		if (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.uris, err)
		}
	}
}

func TestDevCAIssuesVerifiableLeaves(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewDevCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.Issue(dir, "svc", Leaf{ID: "spiffe://td/svc", DNSNames: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(f, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(f); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(f.Key)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	b, _ := os.ReadFile(f.Cert)
	blk, _ := pem.Decode(b)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(f.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if id, err := IdentityOf(leaf); err != nil || id != "spiffe://td/svc" {
		t.Fatalf("identity %q %v", id, err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := ServerConfig(Files{Cert: "/nonexistent", Key: "/nonexistent", CA: "/nonexistent"}, true); err == nil {
		t.Fatal("missing files accepted")
	}
	if err := (Files{}).Validate("x"); err == nil {
		t.Fatal("empty files accepted")
	}
}

func FuzzCheckSPIFFE(f *testing.F) {
	for _, s := range []string{"spiffe://td/a", "spiffe://td/a/../b", "spiffe://%41/a", "spiffe://td/a%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckSPIFFE(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "spiffe" || u.Host == "" {
			t.Fatalf("accepted %q", s)
		}
	})
}
