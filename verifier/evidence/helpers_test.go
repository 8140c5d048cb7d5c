package evidence_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// base is the fixed "now" of most tests.
var base = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// keys are made once per test binary: RSA key generation is slow under -race.
var (
	keyOnce sync.Once
	keyMap  map[string]crypto.Signer
)

// testKey returns a fixed key of the type: "ed25519", "ecdsa" (P-256),
// "ecdsa2" (another P-256 key), "p384", "rsa" (2048), "rsa2".
func testKey(t testing.TB, typ string) crypto.Signer {
	t.Helper()
	keyOnce.Do(func() {
		keyMap = map[string]crypto.Signer{}
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		keyMap["ed25519"] = ed
		keyMap["ecdsa"], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keyMap["ecdsa2"], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keyMap["p384"], _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		keyMap["rsa"], _ = rsa.GenerateKey(rand.Reader, 2048)
		keyMap["rsa2"], _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	k, ok := keyMap[typ]
	if !ok || k == nil {
		t.Fatalf("no test key %q", typ)
	}
	return k
}

// testCA is a certificate authority made with crypto/x509.
type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newCA makes a root valid a year around base.
func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             base.Add(-365 * 24 * time.Hour),
		NotAfter:              base.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, der: der, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// intermediate makes a CA signed by ca.
func (ca *testCA) intermediate(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             base.Add(-30 * 24 * time.Hour),
		NotAfter:              base.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, der: der, key: key}
}

// leafOpts describes a leaf; the zero value is a good X509-SVID for
// callerID, valid a day around base, with an ECDSA key.
type leafOpts struct {
	key       string   // testKey type; "" = "ecdsa"
	uris      []string // nil = {callerID}; use []string{} for none
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
	eku       []x509.ExtKeyUsage // nil = {ClientAuth, ServerAuth}
	ku        x509.KeyUsage      // 0 = DigitalSignature
}

const callerID = "spiffe://dev.frostmint.local/team/payments/api"

// leaf issues a leaf and returns its DER and private key.
func (ca *testCA) leaf(t testing.TB, o leafOpts) ([]byte, crypto.Signer) {
	t.Helper()
	if o.key == "" {
		o.key = "ecdsa"
	}
	if o.uris == nil {
		o.uris = []string{callerID}
	}
	if o.notBefore.IsZero() {
		o.notBefore = base.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = base.Add(24 * time.Hour)
	}
	if o.eku == nil {
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	if o.ku == 0 {
		o.ku = x509.KeyUsageDigitalSignature
	}
	var uris []*url.URL
	for _, s := range o.uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, u)
	}
	key := testKey(t, o.key)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "caller"},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              o.ku,
		ExtKeyUsage:           o.eku,
		URIs:                  uris,
		IsCA:                  o.isCA,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// testRequest is a valid request made at ts.
func testRequest(ts time.Time) evidence.Request {
	nonce := make([]byte, 32)
	for i := range nonce {
		nonce[i] = byte(i)
	}
	return evidence.Request{
		Audience:   "https://api.example.com",
		Scopes:     []string{"read", "write"},
		TTLSeconds: 300,
		Nonce:      nonce,
		Timestamp:  ts,
	}
}

// sign signs req with key or fails the test.
func sign(t testing.TB, req evidence.Request, key crypto.Signer) []byte {
	t.Helper()
	sig, err := evidence.SignRequest(req, key)
	if err != nil {
		t.Fatalf("SignRequest: %v", err)
	}
	return sig
}

// sentinels are the errors every refusal must wrap exactly one of.
var sentinels = []error{
	evidence.ErrInvalid, evidence.ErrUntrusted, evidence.ErrExpired, evidence.ErrReused,
	evidence.ErrStoreFull, evidence.ErrConfig, evidence.ErrUnavailable,
}

// wantErr checks that err wraps want and no other sentinel.
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("%v wraps %v as well as %v", err, s, want)
		}
	}
}
