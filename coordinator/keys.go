package coordinator

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/jwks"
)

// publishGrace is how long after its last possible token's expiry a key
// stays in the JWKS: the verifiers' leeway (30 s) and cache lifetimes
// (the JWKS is served with max-age 300) are within it.
const publishGrace = 6 * time.Minute

// activeKey is the epoch the coordinator mints with.
type activeKey struct {
	kid   string
	group *frost.Group
}

// keyset is the coordinator's view of its keys dir at one moment.
type keyset struct {
	active    *activeKey
	published []string // kids in the JWKS
	jwks      []byte
}

// loadKeys reads the keys dir: the active epoch, which must have n
// signers, and the keys to publish: the active one and every other epoch
// until publishGrace after maxTTL past its deactivation (its last token's
// expiry), so that verifiers never see a good token's key vanish. Epochs
// not yet activated are published too.
func loadKeys(dir string, n int, maxTTL time.Duration, now time.Time) (*keyset, error) {
	kid, err := keydir.Active(dir)
	if errors.Is(err, keydir.ErrNotFound) {
		if kids, lerr := keydir.List(dir, false); lerr == nil && len(kids) == 0 {
			// No key yet: the coordinator runs (to relay the key
			// ceremony) and refuses to mint.
			return &keyset{jwks: []byte(`{"keys":[]}`)}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	g, err := keydir.ReadGroup(dir, kid)
	if err != nil {
		return nil, err
	}
	if int(g.Public().MaxSigners) != n {
		return nil, fmt.Errorf("coordinator: %d signers configured, key %s has %d", n, kid, g.Public().MaxSigners)
	}
	kids, err := keydir.List(dir, false)
	if err != nil {
		return nil, err
	}
	ks := &keyset{active: &activeKey{kid: kid, group: g}}
	var pubs []ed25519.PublicKey
	for _, k := range kids {
		// A new epoch not yet active is published ahead of time, so
		// verifiers' caches hold it when it becomes active.
		if at, ok := keydir.Deactivated(dir, k); ok && k != kid && now.After(at.Add(maxTTL+publishGrace)) {
			continue
		}
		eg := g
		if k != kid {
			if eg, err = keydir.ReadGroup(dir, k); err != nil {
				return nil, err
			}
		}
		pubs = append(pubs, eg.Public().PublicKey)
		ks.published = append(ks.published, k)
	}
	if ks.jwks, err = jwks.Marshal(pubs...); err != nil {
		return nil, err
	}
	return ks, nil
}

// kid returns the active kid, or "" when there is no key yet.
func (k *keyset) kid() string {
	if k.active == nil {
		return ""
	}
	return k.active.kid
}

// sameKeys reports whether a and b mint and publish the same.
func sameKeys(a, b *keyset) bool {
	return a.kid() == b.kid() && slices.Equal(a.published, b.published)
}
