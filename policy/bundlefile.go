package policy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/util"
)

// ErrSignature reports a bundle whose signature was required and could not
// be verified: no .signatures.json, a signature by another key, a file
// changed, added or removed after signing, or an unusable verification key.
var ErrSignature = errors.New("policy: bundle signature verification failed")

// Signature algorithms for bundle signing keys. Only asymmetric algorithms
// are accepted: with an HMAC algorithm the "public" key would be the
// secret.
const (
	AlgEdDSA = "EdDSA" // Ed25519
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256
)

// signaturesFileName is where an OPA bundle keeps its signatures.
const signaturesFileName = ".signatures.json"

// BundleVerification is the key a bundle's signature must verify with.
type BundleVerification struct {
	// KeyID names the key. The signature is checked with this key whatever
	// key id the signature itself names.
	KeyID string
	// Algorithm is AlgEdDSA or AlgES256.
	Algorithm string
	// PublicKeyPEM is a PEM "PUBLIC KEY" block (PKIX) of the matching type.
	PublicKeyPEM []byte
	// Scope, if set, must equal the "scope" claim of the signature. SignBundle
	// writes no scope claim; `opa sign --claims-file` can.
	Scope string
}

// WithBundle loads the policy from an OPA bundle directory instead of the
// embedded bundle: .rego modules (*_test.rego are not evaluated), data.json
// documents (a/b/data.json is mounted at data.a.b), an optional .manifest
// and, for a signed bundle, .signatures.json at its root. Other files and
// directories whose names start with "." are skipped (.git, editor swap
// files, Kubernetes' ..data when the bundle is a mounted ConfigMap); other
// files are part of the bundle (and of its signature) but not evaluated.
// Other data formats (data.yaml, patch.json, policy.wasm, plans) are
// refused rather than silently ignored.
//
// With verify set, the bundle must carry an OPA bundle signature made with
// that key, covering every file of the bundle; otherwise New fails with an
// error wrapping ErrSignature. The signature is checked by OPA's own bundle
// reader (github.com/open-policy-agent/opa/v1/bundle), over the same
// in-memory copy of the files that is then evaluated and hashed, so a file
// changed on disk in between cannot slip through. With verify nil a
// .signatures.json is ignored.
//
// The policy Hash is the same function of the content as for WithFiles on
// the directory: signing a bundle does not change it, so a signer can
// compare its Hash with the coordinator's whichever way each loaded it.
//
// WithBundle cannot be combined with WithFiles or another WithBundle.
func WithBundle(dir string, verify *BundleVerification) Option {
	if verify != nil {
		// A copy: the Option may be applied again later (Reloader).
		v := *verify
		v.PublicKeyPEM = slices.Clone(v.PublicKeyPEM)
		verify = &v
	}
	return func(o *options) {
		o.bundles = append(o.bundles, bundleOption{dir: dir, verify: verify})
	}
}

type bundleOption struct {
	dir    string
	verify *BundleVerification
}

// bundleFile is one file of a bundle directory, read into memory.
type bundleFile struct {
	rel     string // slash path relative to the bundle root
	content []byte
}

// readBundleDir reads every file of the bundle directory dir, skipping
// files and directories whose names start with "." other than .manifest and
// .signatures.json. Symbolic links to files are followed; links to
// directories are not.
func readBundleDir(dir string) ([]bundleFile, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	fsys := os.DirFS(dir)
	var files []bundleFile
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		hidden := p != "." && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden {
				return fs.SkipDir
			}
			return nil
		}
		if hidden && d.Name() != bundle.ManifestExt && !bundle.IsSignaturesFile(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() {
			fi, err := fs.Stat(fsys, p)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
		}
		content, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, bundleFile{rel: p, content: content})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// unsupportedBundleFile reports files an OPA bundle may contain that
// frostmint does not evaluate.
func unsupportedBundleFile(rel string) bool {
	switch path.Base(rel) {
	case "data.yaml", "data.yml", "patch.json", bundle.WasmFile, bundle.PlanFile, bundle.PlanProtoFile, bundle.ManifestProtoExt:
		return true
	}
	return false
}

// loadBundle reads, verifies and loads the bundle directory dir. Errors wrap
// ErrLoad, ErrCompile or ErrSignature.
func loadBundle(dir string, verify *BundleVerification) (*sources, error) {
	files, err := readBundleDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle: %w", ErrLoad, err)
	}
	src := &sources{}
	for _, f := range files {
		if unsupportedBundleFile(f.rel) {
			return nil, fmt.Errorf("%w: bundle %s: %s is not supported (only .rego modules and data.json documents)", ErrLoad, dir, f.rel)
		}
		s := source{name: filepath.Join(dir, filepath.FromSlash(f.rel)), rel: f.rel, content: f.content}
		switch {
		case path.Ext(f.rel) == ".rego":
			if !isTestModule(f.rel) {
				src.modules = append(src.modules, s)
			}
		case path.Base(f.rel) == dataFileName:
			src.data = append(src.data, s)
		}
	}

	var vc *bundle.VerificationConfig
	if verify != nil {
		if vc, err = verify.config(); err != nil {
			return nil, fmt.Errorf("%w: bundle %s: %w", ErrSignature, dir, err)
		}
	}
	reader := bundle.NewCustomReader(&memLoader{files: files}).
		WithRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities())
	if vc != nil {
		reader = reader.WithBundleVerificationConfig(vc)
	} else {
		reader = reader.WithSkipBundleVerification(true)
	}
	if _, err := reader.Read(); err != nil {
		// OPA's reader checks the signature and the content together. To
		// tell a bad signature from a bad (but authentic) policy, rerun
		// just its signature checks.
		if vc != nil {
			if sigErr := checkSignature(files, vc); sigErr != nil {
				return nil, fmt.Errorf("%w: bundle %s: %w", ErrSignature, dir, sigErr)
			}
		}
		if _, _, perr := src.parse(); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%w: bundle %s: %w", ErrLoad, dir, err)
	}
	return src, nil
}

// config checks v and converts it to OPA's verification configuration.
func (v *BundleVerification) config() (*bundle.VerificationConfig, error) {
	if v.KeyID == "" {
		return nil, errors.New("verification key id is empty")
	}
	block, rest := pem.Decode(v.PublicKeyPEM)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("verification key: want exactly one PEM PUBLIC KEY block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	if err := checkKeyType(v.Algorithm, pub); err != nil {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	keys := map[string]*bundle.KeyConfig{v.KeyID: {
		Key:       string(pem.EncodeToMemory(block)),
		Algorithm: v.Algorithm,
		Scope:     v.Scope,
	}}
	return bundle.NewVerificationConfig(keys, v.KeyID, v.Scope, nil), nil
}

// checkKeyType checks that key (public or private) suits alg.
func checkKeyType(alg string, key any) error {
	switch alg {
	case AlgEdDSA:
		switch key.(type) {
		case ed25519.PublicKey, ed25519.PrivateKey:
			return nil
		}
		return fmt.Errorf("algorithm %s needs an Ed25519 key, not %T", alg, key)
	case AlgES256:
		var curve elliptic.Curve
		switch k := key.(type) {
		case *ecdsa.PublicKey:
			curve = k.Curve
		case *ecdsa.PrivateKey:
			curve = k.Curve
		}
		if curve != elliptic.P256() {
			return fmt.Errorf("algorithm %s needs an ECDSA P-256 key, not %T", alg, key)
		}
		return nil
	default:
		return fmt.Errorf("algorithm %q is not supported (want %s or %s)", alg, AlgEdDSA, AlgES256)
	}
}

// checkSignature runs the signature checks of OPA's bundle reader, and only
// those, over files: exactly one signatures file, its JWT verified with
// vc (bundle.VerifyBundleSignature), and every other file present in the
// signed list with its digest (bundle.VerifyBundleFile), and no signed file
// missing.
func checkSignature(files []bundleFile, vc *bundle.VerificationConfig) error {
	var sigFiles []bundleFile
	for _, f := range files {
		if bundle.IsSignaturesFile(f.rel) {
			sigFiles = append(sigFiles, f)
		}
	}
	switch len(sigFiles) {
	case 0:
		return fmt.Errorf("bundle has no %s", signaturesFileName)
	case 1:
	default:
		return fmt.Errorf("bundle has %d %s files", len(sigFiles), signaturesFileName)
	}
	var sc bundle.SignaturesConfig
	if err := util.NewJSONDecoder(bytes.NewReader(sigFiles[0].content)).Decode(&sc); err != nil {
		return fmt.Errorf("%s: %w", sigFiles[0].rel, err)
	}
	signed, err := bundle.VerifyBundleSignature(sc, vc)
	if err != nil {
		return err
	}
	for _, f := range files {
		if bundle.IsSignaturesFile(f.rel) {
			continue
		}
		if err := bundle.VerifyBundleFile(f.rel, *bytes.NewBuffer(f.content), signed); err != nil {
			return err
		}
	}
	if len(signed) > 0 {
		missing := make([]string, 0, len(signed))
		for name := range signed {
			missing = append(missing, name)
		}
		slices.Sort(missing)
		return fmt.Errorf("signed files missing from the bundle: %s", strings.Join(missing, ", "))
	}
	return nil
}

// SignBundle signs the bundle directory dir as `opa sign` does from inside
// it: every file of the bundle (as WithBundle reads it) is listed with its
// SHA-256 digest (data.json and .manifest over their parsed JSON, so
// whitespace does not matter) in a JWT signed with privateKeyPEM, a PEM
// PKCS #8 "PRIVATE KEY" (or "EC PRIVATE KEY") of the type alg (AlgEdDSA or
// AlgES256) needs. The JWT carries keyID in its "kid" header and "keyid"
// claim. SignBundle writes it to dir/.signatures.json, replacing any
// previous one atomically, so a Reloader watching dir never sees half a
// file.
func SignBundle(dir string, keyID, alg string, privateKeyPEM []byte) error {
	if keyID == "" {
		return errors.New("policy: sign bundle: key id is empty")
	}
	block, _ := pem.Decode(privateKeyPEM)
	if block == nil {
		return errors.New("policy: sign bundle: no PEM block in the private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		err = fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	if err := checkKeyType(alg, key); err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}

	files, err := readBundleDir(dir)
	if err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	hasher, err := bundle.NewSignatureHasher(bundle.SHA256)
	if err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	var infos []bundle.FileInfo
	for _, f := range files {
		if bundle.IsSignaturesFile(f.rel) {
			if f.rel != signaturesFileName {
				return fmt.Errorf("policy: sign bundle: unexpected signatures file %s", f.rel)
			}
			continue
		}
		var v any = f.content
		if bundle.IsStructuredDoc(f.rel) {
			if err := util.Unmarshal(f.content, &v); err != nil {
				return fmt.Errorf("policy: sign bundle: %s: %w", f.rel, err)
			}
		}
		sum, err := hasher.HashFile(v)
		if err != nil {
			return fmt.Errorf("policy: sign bundle: %s: %w", f.rel, err)
		}
		infos = append(infos, bundle.NewFile(f.rel, hex.EncodeToString(sum), bundle.SHA256.String()))
	}

	// The signing config takes the key as PEM text; a string not starting
	// with "-----BEGIN" would be taken for a file name.
	sc := bundle.NewSigningConfig(string(pem.EncodeToMemory(block)), alg, "")
	token, err := bundle.GenerateSignedToken(infos, sc, keyID)
	if err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	out, err := json.MarshalIndent(bundle.SignaturesConfig{Signatures: []string{token}}, "", "  ")
	if err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, signaturesFileName), append(out, '\n')); err != nil {
		return fmt.Errorf("policy: sign bundle: %w", err)
	}
	return nil
}

// writeFileAtomic writes name through a temporary file in the same
// directory and a rename.
func writeFileAtomic(name string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// memLoader serves files already read into memory to OPA's bundle reader, so
// that what OPA verifies is byte for byte what New evaluates and hashes.
type memLoader struct {
	files []bundleFile
	next  int
}

var _ bundle.DirectoryLoader = (*memLoader)(nil)

func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.files) {
		return nil, io.EOF
	}
	f := l.files[l.next]
	l.next++
	p := "/" + f.rel
	return bundle.NewDescriptor(p, p, bytes.NewBuffer(slices.Clone(f.content))), nil
}

// The loader options do not apply: the files are read (and filtered) by
// readBundleDir.
func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader   { return l }
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader { return l }
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader         { return l }
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader          { return l }
