// Package keystore seals a signer's FROST key share at rest. A share is
// never written in plain text: a backend encrypts it and only the running
// signer unseals it, into memory.
//
// Backends implement [Sealer]. This package has the file backend, sealed by
// a passphrase (scrypt → XChaCha20-Poly1305); hardware backends (PKCS#11,
// YubiKey PIV) plug in behind the same interface and run the same test suite
// ([keystoretest]).
package keystore

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Errors of the package. Returned errors wrap one of them and never carry
// secret material.
var (
	// ErrUnseal means the sealed blob could not be opened: wrong key or
	// passphrase, a different label, or tampering.
	ErrUnseal = errors.New("keystore: cannot unseal")
	// ErrFormat means the sealed blob is not one this backend wrote.
	ErrFormat = errors.New("keystore: unrecognised sealed format")
)

// Sealer encrypts and decrypts one secret.
type Sealer interface {
	// Seal encrypts secret, bound to label (for example "signer-2"), so a
	// sealed blob cannot be passed off as another's. It fails only when the
	// backend cannot work (randomness, device errors).
	Seal(secret []byte, label string) ([]byte, error)
	// Unseal returns the secret sealed with the same label. It fails with an
	// error wrapping ErrUnseal when the key is wrong, the label differs or
	// the blob was altered, and ErrFormat when the blob is not this
	// backend's.
	Unseal(sealed []byte, label string) ([]byte, error)
}

// ScryptParams are the scrypt cost parameters of the passphrase backend.
type ScryptParams struct{ N, R, P int }

// DefaultScrypt is the production cost (about 100 ms and 32 MiB).
var DefaultScrypt = ScryptParams{N: 1 << 15, R: 8, P: 1}

// Passphrase is the file backend: a key derived from a passphrase with
// scrypt seals the secret with XChaCha20-Poly1305. Meant for development
// and tests; production signers use a hardware backend.
type Passphrase struct {
	pass   []byte
	params ScryptParams
}

// NewPassphrase returns the passphrase backend. An empty passphrase is
// refused. Tests may lower the scrypt cost with params; the cost used is
// stored in each sealed blob.
func NewPassphrase(pass []byte, params ScryptParams) (*Passphrase, error) {
	if len(bytes.TrimSpace(pass)) == 0 {
		return nil, errors.New("keystore: empty passphrase")
	}
	if params.N == 0 {
		params = DefaultScrypt
	}
	return &Passphrase{pass: append([]byte(nil), pass...), params: params}, nil
}

type envelope struct {
	Version int    `json:"v"`
	KDF     string `json:"kdf"`
	N       int    `json:"n"`
	R       int    `json:"r"`
	P       int    `json:"p"`
	Salt    []byte `json:"salt"`
	Nonce   []byte `json:"nonce"`
	Box     []byte `json:"ciphertext"`
}

const kdfScrypt = "scrypt-xchacha20poly1305"

func (p *Passphrase) key(salt []byte, prm ScryptParams) ([]byte, error) {
	return scrypt.Key(p.pass, salt, prm.N, prm.R, prm.P, chacha20poly1305.KeySize)
}

// Seal implements [Sealer].
func (p *Passphrase) Seal(secret []byte, label string) ([]byte, error) {
	e := envelope{Version: 1, KDF: kdfScrypt, N: p.params.N, R: p.params.R, P: p.params.P,
		Salt: make([]byte, 16), Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := rand.Read(e.Salt); err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	if _, err := rand.Read(e.Nonce); err != nil {
		return nil, fmt.Errorf("keystore: randomness: %w", err)
	}
	k, err := p.key(e.Salt, p.params)
	if err != nil {
		return nil, fmt.Errorf("keystore: scrypt: %w", err)
	}
	defer wipe(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	e.Box = aead.Seal(nil, e.Nonce, secret, aad(label))
	return json.MarshalIndent(e, "", "  ")
}

// Unseal implements [Sealer].
func (p *Passphrase) Unseal(sealed []byte, label string) ([]byte, error) {
	var e envelope
	d := json.NewDecoder(bytes.NewReader(sealed))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil || e.Version != 1 || e.KDF != kdfScrypt {
		return nil, ErrFormat
	}
	if e.N < 2 || e.N > 1<<18 || e.N&(e.N-1) != 0 || e.R < 1 || e.R > 8 || e.P < 1 || e.P > 4 ||
		len(e.Salt) < 16 || len(e.Nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: parameters out of range", ErrFormat)
	}
	k, err := p.key(e.Salt, ScryptParams{e.N, e.R, e.P})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	defer wipe(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, e.Nonce, e.Box, aad(label))
	if err != nil {
		return nil, ErrUnseal
	}
	return out, nil
}

func aad(label string) []byte { return []byte("frostmint keystore v1\x00" + label) }

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// Wipe overwrites b with zeros; use it on unsealed secrets once done.
func Wipe(b []byte) { wipe(b) }

// ReadPassphrase returns the passphrase named by a source: "env:NAME" reads
// the environment variable NAME, "file:PATH" (or a bare path) reads a file,
// trimming one trailing newline. Passphrases are never taken from flags.
func ReadPassphrase(src string) ([]byte, error) {
	switch {
	case src == "":
		return nil, errors.New("keystore: no passphrase source configured")
	case strings.HasPrefix(src, "env:"):
		v, ok := os.LookupEnv(strings.TrimPrefix(src, "env:"))
		if !ok || v == "" {
			return nil, fmt.Errorf("keystore: environment variable %s is not set", strings.TrimPrefix(src, "env:"))
		}
		return []byte(v), nil
	default:
		path := strings.TrimPrefix(src, "file:")
		b, err := os.ReadFile(filepath.Clean(path))
		if err != nil {
			return nil, fmt.Errorf("keystore: reading passphrase file: %w", err)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return nil, fmt.Errorf("keystore: passphrase file %s is empty", path)
		}
		return b, nil
	}
}

// WriteSealed writes a sealed blob atomically (temp file, fsync, rename)
// with mode 0600, so a crash never leaves a half-written share.
func WriteSealed(path string, sealed []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".sealed-*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.Write(sealed); err != nil {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
