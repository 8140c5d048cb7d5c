package keystore

import (
	"crypto/ecdh"
	"crypto/rand"
)

// pivSoftCard is a software card: the slot key is in memory. It lets
// tests check the sealing, envelope and error paths of the PIV backend
// without pcscd, down to the pivCard interface.
type pivSoftCard struct {
	key    *ecdh.PrivateKey
	ops    int
	err    error // returned by ecdh when set
	closed bool
}

func (c *pivSoftCard) ecdh(peer *ecdh.PublicKey) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	c.ops++
	return c.key.ECDH(peer)
}

func (c *pivSoftCard) Close() error { c.closed = true; return nil }

// NewPIVSoftBackend returns the PIV backend over a software card holding a
// fresh key of curve in slot of card serial. For tests only.
func NewPIVSoftBackend(serial uint32, slot byte, curve ecdh.Curve) (Backend, error) {
	b, _, err := newPIVSoft(serial, slot, curve)
	return b, err
}

func newPIVSoft(serial uint32, slot byte, curve ecdh.Curve) (*pivBackend, *pivSoftCard, error) {
	k, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	card := &pivSoftCard{key: k}
	b, err := newPIVBackend(card, serial, slot, k.PublicKey())
	return b, card, err
}
