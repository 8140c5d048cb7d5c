package keystore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// pkcs11Kind names the sealed format of the PKCS#11 backend; the passphrase
// backend's blobs carry "kdf" instead, so neither mistakes the other's.
const pkcs11Kind = "pkcs11-aes-gcm"

// Sizes of the PKCS#11 envelope. The bounds keep a hostile blob from making
// the parser or the token work on megabytes: a FROST share and its metadata
// are far below p11MaxSecret.
const (
	p11IVSize      = 12
	p11TagSize     = 16
	p11MaxKeyLabel = 255
	p11MaxSecret   = 64 << 10
	// p11MaxBlob allows the base64 of the largest ciphertext (4/3 of it)
	// plus the fields and indentation around it.
	p11MaxBlob = (p11MaxSecret+p11TagSize)*4/3 + 4096
)

// pkcs11Envelope is the sealed blob of the PKCS#11 backend: AES-256-GCM
// under a key that never leaves the token, with the label in the AAD.
// The key's label is recorded so that opening a share with the wrong
// keystore says which key sealed it.
type pkcs11Envelope struct {
	Version    int    `json:"v"`
	Kind       string `json:"kind"`
	Key        string `json:"key"`
	IV         []byte `json:"iv"`
	Ciphertext []byte `json:"ciphertext"`
}

func (e pkcs11Envelope) marshal() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(e, "", "  ")
}

// parsePKCS11Envelope reads a sealed blob strictly: one JSON object with
// exactly the known fields, version 1, this backend's kind and sizes in
// bounds. Anything else wraps [ErrFormat].
func parsePKCS11Envelope(b []byte) (pkcs11Envelope, error) {
	var e pkcs11Envelope
	if len(b) > p11MaxBlob {
		return e, fmt.Errorf("%w: pkcs11: blob larger than %d bytes", ErrFormat, p11MaxBlob)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return pkcs11Envelope{}, fmt.Errorf("%w: pkcs11: %w", ErrFormat, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return pkcs11Envelope{}, fmt.Errorf("%w: pkcs11: data after the envelope", ErrFormat)
	}
	if err := e.check(); err != nil {
		return pkcs11Envelope{}, err
	}
	return e, nil
}

// check holds the envelope's invariants, for both writing and reading.
func (e pkcs11Envelope) check() error {
	switch {
	case e.Version != 1:
		return fmt.Errorf("%w: pkcs11: version %d, want 1", ErrFormat, e.Version)
	case e.Kind != pkcs11Kind:
		return fmt.Errorf("%w: pkcs11: kind is not %q", ErrFormat, pkcs11Kind)
	case e.Key == "" || len(e.Key) > p11MaxKeyLabel:
		return fmt.Errorf("%w: pkcs11: key label of %d bytes, want 1 to %d", ErrFormat, len(e.Key), p11MaxKeyLabel)
	case len(e.IV) != p11IVSize:
		return fmt.Errorf("%w: pkcs11: IV of %d bytes, want %d", ErrFormat, len(e.IV), p11IVSize)
	case len(e.Ciphertext) < p11TagSize || len(e.Ciphertext) > p11MaxSecret+p11TagSize:
		return fmt.Errorf("%w: pkcs11: ciphertext of %d bytes, want %d to %d", ErrFormat, len(e.Ciphertext), p11TagSize, p11MaxSecret+p11TagSize)
	}
	return nil
}
