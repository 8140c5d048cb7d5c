package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// testKey is a bundle signing key generated for one test.
type testKey struct {
	alg     string
	private []byte // PEM PKCS #8
	public  []byte // PEM PKIX
}

func newTestKey(t testing.TB, alg string) testKey {
	t.Helper()
	var priv, pub any
	switch alg {
	case AlgEdDSA:
		p, s, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = s, p
	case AlgES256:
		s, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = s, &s.PublicKey
	default:
		t.Fatalf("no test key for %s", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{
		alg:     alg,
		private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
	}
}

func (k testKey) verification() *BundleVerification {
	return &BundleVerification{KeyID: "policy-key", Algorithm: k.alg, PublicKeyPEM: k.public}
}

func (k testKey) sign(t testing.TB, dir string) {
	t.Helper()
	if err := SignBundle(dir, "policy-key", k.alg, k.private); err != nil {
		t.Fatalf("SignBundle: %v", err)
	}
}

// signedBundle is a signed copy of the default bundle.
func signedBundle(t testing.TB, k testKey) string {
	t.Helper()
	dir := copyDefaultBundle(t)
	k.sign(t, dir)
	return dir
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, dir, name, content string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, name, string(b)+content)
}

func TestSignedBundleAccepted(t *testing.T) {
	def := newEngine(t).Hash()
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			dir := signedBundle(t, k)
			e := newEngine(t, WithBundle(dir, k.verification()))

			// Signing does not change what the policy is.
			if e.Hash() != def {
				t.Fatalf("signed bundle Hash = %s, want the default bundle's %s", e.Hash(), def)
			}
			if got := newEngine(t, WithFiles(dir)).Hash(); got != def {
				t.Fatalf("WithFiles(signed bundle).Hash() = %s, want %s", got, def)
			}
			d, err := e.Evaluate(context.Background(), mintInput(devCLI, apiAud, 0, "read", "write"))
			if err != nil || !d.Allow {
				t.Fatalf("Evaluate = %+v, %v; want allowed", d, err)
			}
		})
	}
}

// TestSignedBundleOPACompatible checks SignBundle against OPA's own bundle
// reader on the directory, as `opa run --bundle --verification-key` reads
// it.
func TestSignedBundleOPACompatible(t *testing.T) {
	k := newTestKey(t, AlgEdDSA)
	dir := signedBundle(t, k)
	vc, err := k.verification().config()
	if err != nil {
		t.Fatal(err)
	}
	read := func() error {
		_, err := bundle.NewCustomReader(bundle.NewDirectoryLoader(dir)).
			WithRegoVersion(ast.RegoV1).
			WithBundleVerificationConfig(vc).
			Read()
		return err
	}
	if err := read(); err != nil {
		t.Fatalf("OPA reader refuses the signed bundle: %v", err)
	}
	appendFile(t, dir, "mint.rego", "\nextra := 1\n")
	if err := read(); err == nil {
		t.Fatal("OPA reader accepts a tampered bundle")
	}
}

func TestSignedBundleRejected(t *testing.T) {
	k := newTestKey(t, AlgEdDSA)
	other := newTestKey(t, AlgEdDSA)
	es := newTestKey(t, AlgES256)

	tests := []struct {
		name   string
		change func(t *testing.T, dir string) // after signing with k
		verify *BundleVerification
	}{
		{"tampered rego", func(t *testing.T, dir string) {
			appendFile(t, dir, "mint.rego", "\nextra := 1\n")
		}, k.verification()},
		{"tampered rego comment", func(t *testing.T, dir string) {
			appendFile(t, dir, "mint.rego", "# harmless?\n")
		}, k.verification()},
		{"tampered data", func(t *testing.T, dir string) {
			writeFile(t, dir, "data.json", `{"frostmint": {"config": {"trust_domains": ["evil.example"]}}}`)
		}, k.verification()},
		{"tampered test module", func(t *testing.T, dir string) {
			appendFile(t, dir, "mint_test.rego", "\ntest_more if true\n")
		}, k.verification()},
		{"added module", func(t *testing.T, dir string) {
			writeFile(t, dir, "extra.rego", "package frostmint.extra\n\nx := 1\n")
		}, k.verification()},
		{"added data", func(t *testing.T, dir string) {
			writeFile(t, dir, "frostmint/data.json", `{"extra": 1}`)
		}, k.verification()},
		{"removed file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "mint_test.rego")); err != nil {
				t.Fatal(err)
			}
		}, k.verification()},
		{"signed by another key", func(t *testing.T, dir string) {
			other.sign(t, dir)
		}, k.verification()},
		{"verified with another key", nil, other.verification()},
		{"missing signatures", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, signaturesFileName)); err != nil {
				t.Fatal(err)
			}
		}, k.verification()},
		{"garbage signatures", func(t *testing.T, dir string) {
			writeFile(t, dir, signaturesFileName, "{")
		}, k.verification()},
		{"no signature in signatures file", func(t *testing.T, dir string) {
			writeFile(t, dir, signaturesFileName, `{"signatures": []}`)
		}, k.verification()},
		{"second signatures file", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, signaturesFileName))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "sub/"+signaturesFileName, string(b))
		}, k.verification()},
		{"scope mismatch", nil, &BundleVerification{KeyID: "policy-key", Algorithm: AlgEdDSA, PublicKeyPEM: k.public, Scope: "prod"}},
		{"algorithm does not match key", nil, &BundleVerification{KeyID: "policy-key", Algorithm: AlgES256, PublicKeyPEM: k.public}},
		{"ES256 key for an EdDSA signature", nil, es.verification()},
		{"HMAC algorithm", nil, &BundleVerification{KeyID: "policy-key", Algorithm: "HS256", PublicKeyPEM: k.public}},
		{"RSA algorithm", nil, &BundleVerification{KeyID: "policy-key", Algorithm: "RS256", PublicKeyPEM: k.public}},
		{"empty key id", nil, &BundleVerification{Algorithm: AlgEdDSA, PublicKeyPEM: k.public}},
		{"no PEM", nil, &BundleVerification{KeyID: "policy-key", Algorithm: AlgEdDSA, PublicKeyPEM: []byte("not a key")}},
		{"private key as public key", nil, &BundleVerification{KeyID: "policy-key", Algorithm: AlgEdDSA, PublicKeyPEM: k.private}},
		{"two PEM blocks", nil, &BundleVerification{KeyID: "policy-key", Algorithm: AlgEdDSA, PublicKeyPEM: append(append([]byte{}, k.public...), other.public...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := signedBundle(t, k)
			if tt.change != nil {
				tt.change(t, dir)
			}
			e, err := New(context.Background(), WithBundle(dir, tt.verify))
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("New = %v, %v; want ErrSignature", e, err)
			}
		})
	}
}

// TestSignedBundleContentErrors: an authentic bundle with a broken policy
// is a policy error, not a signature error; a broken and tampered one is a
// signature error.
func TestSignedBundleContentErrors(t *testing.T) {
	k := newTestKey(t, AlgEdDSA)
	tests := []struct {
		name  string
		files map[string]string
		want  error
	}{
		{"syntax error", map[string]string{"p.rego": "package frostmint.mint\n\ndecision := {\n"}, ErrCompile},
		{"bad data", map[string]string{"p.rego": defaultModuleText, "data.json": "[1]"}, ErrLoad},
		{"decision undefined", map[string]string{"p.rego": "package frostmint.mint\n\nallow := true\n"}, ErrEvaluation},
		{"data outside manifest roots", map[string]string{
			"p.rego":    defaultModuleText,
			"data.json": `{"other": {"x": 1}}`,
			".manifest": `{"roots": ["frostmint"]}`,
		}, ErrLoad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			k.sign(t, dir)
			_, err := New(context.Background(), WithBundle(dir, k.verification()))
			if !errors.Is(err, tt.want) || errors.Is(err, ErrSignature) {
				t.Fatalf("New = %v, want %v", err, tt.want)
			}

			appendFile(t, dir, "p.rego", "\n# tampered\n")
			_, err = New(context.Background(), WithBundle(dir, k.verification()))
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("tampered: New = %v, want ErrSignature", err)
			}
		})
	}
}

func TestSignedBundleWithManifest(t *testing.T) {
	k := newTestKey(t, AlgES256)
	dir := copyDefaultBundle(t)
	writeFile(t, dir, ".manifest", `{"revision": "r1", "roots": ["frostmint"]}`)
	k.sign(t, dir)
	e := newEngine(t, WithBundle(dir, k.verification()))
	if e.Hash() != newEngine(t).Hash() {
		t.Fatal("the manifest changed the hash")
	}

	writeFile(t, dir, ".manifest", `{"revision": "r2", "roots": ["frostmint"]}`)
	if _, err := New(context.Background(), WithBundle(dir, k.verification())); !errors.Is(err, ErrSignature) {
		t.Fatalf("changed manifest: err = %v, want ErrSignature", err)
	}
}

// TestSignedBundleIgnores: what is not part of a bundle does not break its
// signature.
func TestSignedBundleIgnores(t *testing.T) {
	k := newTestKey(t, AlgEdDSA)
	dir := signedBundle(t, k)
	want := newEngine(t, WithBundle(dir, k.verification())).Hash()

	writeFile(t, dir, ".mint.rego.swp", "editor state")
	writeFile(t, dir, ".git/HEAD", "ref: refs/heads/main\n")
	writeFile(t, dir, "..2026_01_02/mint.rego", "package broken\n\nx :=\n")
	if got := newEngine(t, WithBundle(dir, k.verification())).Hash(); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
	if got := newEngine(t, WithFiles(dir)).Hash(); got != want {
		t.Fatalf("WithFiles Hash = %s, want %s", got, want)
	}

	// Data is signed by its JSON value, as OPA does: re-indenting it keeps
	// the signature valid. It is a different file, so a different Hash.
	appendFile(t, dir, "data.json", "\n\n")
	e, err := New(context.Background(), WithBundle(dir, k.verification()))
	if err != nil {
		t.Fatalf("re-indented data: %v", err)
	}
	if e.Hash() == want {
		t.Fatal("changed data.json bytes, same Hash")
	}
}

func TestUnsignedBundle(t *testing.T) {
	def := newEngine(t).Hash()
	dir := copyDefaultBundle(t)
	if got := newEngine(t, WithBundle(dir, nil)).Hash(); got != def {
		t.Fatalf("Hash = %s, want %s", got, def)
	}

	// Without verification a signature is not looked at.
	writeFile(t, dir, signaturesFileName, `{"signatures": ["not.a.jwt"]}`)
	if got := newEngine(t, WithBundle(dir, nil)).Hash(); got != def {
		t.Fatalf("Hash = %s, want %s", got, def)
	}
}

func TestWithBundleErrors(t *testing.T) {
	dir := copyDefaultBundle(t)
	yaml := copyDefaultBundle(t)
	writeFile(t, yaml, "extra/data.yaml", "x: 1\n")
	wasm := copyDefaultBundle(t)
	writeFile(t, wasm, "policy.wasm", "\x00asm")
	file := filepath.Join(dir, "mint.rego")

	tests := []struct {
		name string
		opts []Option
		want []error
	}{
		{"missing dir", []Option{WithBundle(filepath.Join(dir, "nope"), nil)}, []error{ErrLoad, fs.ErrNotExist}},
		{"file not dir", []Option{WithBundle(file, nil)}, []error{ErrLoad}},
		{"yaml data", []Option{WithBundle(yaml, nil)}, []error{ErrLoad}},
		{"wasm", []Option{WithBundle(wasm, nil)}, []error{ErrLoad}},
		{"with files", []Option{WithBundle(dir, nil), WithFiles(dir)}, []error{ErrLoad}},
		{"two bundles", []Option{WithBundle(dir, nil), WithBundle(dir, nil)}, []error{ErrLoad}},
		{"no modules", []Option{WithBundle(writeFiles(t, map[string]string{"data.json": "{}"}), nil)}, []error{ErrLoad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.opts...)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestSignBundleErrors(t *testing.T) {
	ed := newTestKey(t, AlgEdDSA)
	es := newTestKey(t, AlgES256)
	dir := copyDefaultBundle(t)
	tests := []struct {
		name   string
		dir    string
		keyID  string
		alg    string
		key    []byte
		wantIs error
	}{
		{"empty key id", dir, "", AlgEdDSA, ed.private, nil},
		{"no PEM", dir, "k", AlgEdDSA, []byte("/etc/passwd"), nil},
		{"public key", dir, "k", AlgEdDSA, ed.public, nil},
		{"algorithm does not match key", dir, "k", AlgES256, ed.private, nil},
		{"EdDSA with ECDSA key", dir, "k", AlgEdDSA, es.private, nil},
		{"HMAC", dir, "k", "HS256", ed.private, nil},
		{"missing dir", filepath.Join(dir, "nope"), "k", AlgEdDSA, ed.private, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SignBundle(tt.dir, tt.keyID, tt.alg, tt.key)
			if err == nil {
				t.Fatal("SignBundle succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			if _, statErr := os.Stat(filepath.Join(dir, signaturesFileName)); !errors.Is(statErr, fs.ErrNotExist) {
				t.Fatalf("a failed SignBundle left %s: %v", signaturesFileName, statErr)
			}
		})
	}
}

// TestSignBundleResigns: signing again replaces the signature, and accepts
// a key in SEC 1 ("EC PRIVATE KEY") form.
func TestSignBundleResigns(t *testing.T) {
	k := newTestKey(t, AlgES256)
	dir := signedBundle(t, newTestKey(t, AlgEdDSA))

	block, _ := pem.Decode(k.private)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(priv.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := SignBundle(dir, "policy-key", AlgES256, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err != nil {
		t.Fatal(err)
	}
	newEngine(t, WithBundle(dir, k.verification()))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != signaturesFileName && filepath.Ext(e.Name()) != ".rego" && e.Name() != "data.json" {
			t.Fatalf("SignBundle left %s behind", e.Name())
		}
	}
}
