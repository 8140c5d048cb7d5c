package evidence

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// chainCacheSize bounds the certificate chains a Verifier remembers.
const chainCacheSize = 2048

// chainCache remembers certificate chains that verified, so that a caller
// who proves a request with the same chain again (every mint of a
// workload) is not put through parsing, chain building and the CA's
// signature check again: about 70 µs of the ~100 µs a certificate proof
// costs, at the coordinator and at every signer.
//
// What it remembers is what verification established independently of
// time, for one exact chain (its DER bytes) and one Verifier (whose roots
// never change): that the chain verifies to the roots for client
// authentication, that its leaf passes the leaf checks, and the leaf's
// SPIFFE ID. Time is the one input that changes, and a certificate's
// validity is an interval: so an entry also holds, for each chain that
// verification built, the interval in which all its certificates are
// valid, and is used only when both now and the proof's timestamp fall in
// one of them — exactly what verifying again would require. Anything else
// is verified in full. The request signature is checked on every request.
// It is safe for concurrent use.
type chainCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*verifiedChain
}

// verifiedChain is a chain that verified.
type verifiedChain struct {
	leaf *x509.Certificate
	id   string
	// windows are the validity intervals of the chains that verification
	// built: [notBefore, notAfter] of each, the latest NotBefore and the
	// earliest NotAfter of its certificates.
	windows [][2]time.Time
}

// chainKey is the SHA-256 of the chain, each certificate prefixed by its
// length so that no two chains encode alike.
func chainKey(chain [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, der := range chain {
		binary.BigEndian.PutUint32(n[:], uint32(len(der)))
		h.Write(n[:])
		h.Write(der)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns the remembered verification of the chain with key k, if
// there is one whose chains were all valid at both now and ts.
func (c *chainCache) get(k [sha256.Size]byte, now, ts time.Time) *verifiedChain {
	c.mu.Lock()
	vc := c.m[k]
	c.mu.Unlock()
	if vc == nil {
		return nil
	}
	for _, w := range vc.windows {
		if within(w, now) && within(w, ts) {
			return vc
		}
	}
	return nil
}

// within reports whether t is in [w[0], w[1]], as x509 checks validity.
func within(w [2]time.Time, t time.Time) bool { return !t.Before(w[0]) && !t.After(w[1]) }

// put remembers a chain that verified as chains; when full, it forgets an
// arbitrary entry first.
func (c *chainCache) put(k [sha256.Size]byte, leaf *x509.Certificate, id string, chains [][]*x509.Certificate) {
	vc := &verifiedChain{leaf: leaf, id: id}
	for _, ch := range chains {
		var w [2]time.Time
		for i, cert := range ch {
			if i == 0 || cert.NotBefore.After(w[0]) {
				w[0] = cert.NotBefore
			}
			if i == 0 || cert.NotAfter.Before(w[1]) {
				w[1] = cert.NotAfter
			}
		}
		if len(ch) > 0 {
			vc.windows = append(vc.windows, w)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte]*verifiedChain)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= chainCacheSize {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = vc
}
