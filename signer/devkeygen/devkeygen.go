// Package devkeygen runs a FROST distributed key generation among the
// signer processes of a local development cluster, with a shared directory
// as the message board. There is no trusted dealer, even in development:
// each signer process draws its own polynomial and ends up with a share
// that no other process ever sees.
//
// Round-1 messages are public and posted as files; the directory (mode 0700,
// owned by the developer) is what authenticates them, which is acceptable on
// one workstation and nowhere else — production uses the networked key
// ceremony. Round-2 messages carry secret shares: each is encrypted to its
// recipient under an ephemeral X25519 key that the recipient posted with its
// round-1 message (ECDH → HKDF-SHA-256 → ChaCha20-Poly1305), so the files on
// disk are useless once the processes have finished.
package devkeygen

import (
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/frostmint/frostmint/signer/frost"
)

type round1File struct {
	ID     uint16 `json:"id"`
	Round1 []byte `json:"round1"`
	BoxKey []byte `json:"box_key"`
}

type round2File struct {
	From  uint16 `json:"from"`
	To    uint16 `json:"to"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

// Run is participant id of a t-of-n key generation whose messages go
// through dir. It returns when the participant has its key share, or fails
// when ctx ends first (for example because a peer never showed up) or a
// peer's message is invalid (the error names the peer).
func Run(ctx context.Context, dir string, id, t, n uint16) (*frost.KeyShare, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d, err := frost.NewDKG(id, t, n)
	if err != nil {
		return nil, err
	}
	box, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	r1, err := d.Round1()
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, fmt.Sprintf("r1-%d.json", id)), round1File{ID: id, Round1: r1, BoxKey: box.PublicKey().Bytes()}); err != nil {
		return nil, err
	}
	all := make([][]byte, n)
	keys := make(map[uint16]*ecdh.PublicKey, n)
	for p := uint16(1); p <= n; p++ {
		var f round1File
		if err := waitJSON(ctx, filepath.Join(dir, fmt.Sprintf("r1-%d.json", p)), &f); err != nil {
			return nil, fmt.Errorf("devkeygen: waiting for participant %d's round 1: %w", p, err)
		}
		if f.ID != p {
			return nil, fmt.Errorf("devkeygen: round-1 file of participant %d claims id %d", p, f.ID)
		}
		k, err := ecdh.X25519().NewPublicKey(f.BoxKey)
		if err != nil {
			return nil, fmt.Errorf("devkeygen: participant %d's box key: %w", p, err)
		}
		all[p-1], keys[p] = f.Round1, k
	}
	out, err := d.Round2(all)
	if err != nil {
		return nil, err
	}
	for to, msg := range out {
		aead, err := channel(box, keys[to], id, to)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		f := round2File{From: id, To: to, Nonce: nonce, Box: aead.Seal(nil, nonce, msg, nil)}
		if err := writeJSON(filepath.Join(dir, fmt.Sprintf("r2-%d-%d.json", id, to)), f); err != nil {
			return nil, err
		}
	}
	var mine [][]byte
	for p := uint16(1); p <= n; p++ {
		if p == id {
			continue
		}
		var f round2File
		if err := waitJSON(ctx, filepath.Join(dir, fmt.Sprintf("r2-%d-%d.json", p, id)), &f); err != nil {
			return nil, fmt.Errorf("devkeygen: waiting for participant %d's round 2: %w", p, err)
		}
		aead, err := channel(box, keys[p], p, id)
		if err != nil {
			return nil, err
		}
		if f.From != p || f.To != id {
			return nil, fmt.Errorf("devkeygen: round-2 file from %d is mislabelled", p)
		}
		msg, err := aead.Open(nil, f.Nonce, f.Box, nil)
		if err != nil {
			return nil, fmt.Errorf("devkeygen: round-2 message from participant %d does not decrypt", p)
		}
		mine = append(mine, msg)
	}
	return d.Finalize(mine)
}

// channel derives the AEAD for messages from → to.
func channel(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, from, to uint16) (interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, shared, nil, fmt.Sprintf("frostmint dev dkg v1 %d->%d", from, to), chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(key)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func waitJSON(ctx context.Context, path string, v any) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return json.Unmarshal(b, v)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
