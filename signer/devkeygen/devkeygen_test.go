package devkeygen

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/frostmint/frostmint/signer/frost"
)

func TestThreeParticipants(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type res struct {
		ks  *frost.KeyShare
		err error
	}
	ch := make(chan res, 3)
	for id := uint16(1); id <= 3; id++ {
		go func(id uint16) {
			ks, err := Run(ctx, dir, id, 2, 3)
			ch <- res{ks, err}
		}(id)
	}
	var kss []*frost.KeyShare
	for i := 0; i < 3; i++ {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		kss = append(kss, r.ks)
	}
	for _, ks := range kss[1:] {
		if !bytes.Equal(ks.Public.PublicKey, kss[0].Public.PublicKey) {
			t.Fatal("participants disagree on the group key")
		}
	}
	g, err := frost.NewGroup(kss[0].Public)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Public().PublicKey) != ed25519.PublicKeySize {
		t.Fatal("bad group key")
	}
}

func TestMissingPeerTimesOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, t.TempDir(), 1, 2, 3)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}
