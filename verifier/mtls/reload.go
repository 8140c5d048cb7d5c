package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"sync"
	"time"
)

// ReloadCheckInterval is how often, at most, a configuration made by this
// package looks at its files again. Certificates issued by cert-manager
// (or any tool that replaces the files) are picked up by the next
// handshake after that, without a restart; connections already open keep
// the certificate they were made with.
const ReloadCheckInterval = time.Second

// source holds the key pair and CA pool of some Files and loads them again
// when the files change. A change is seen by stat (a different file —
// Kubernetes swaps a Secret volume's files by renaming a symlinked
// directory — or a new size or modification time). A new set that fails
// to load (a key that does not match the certificate, a half-written file,
// an empty CA bundle) is not used: the last good set stays, and the files
// are tried again at the next check. So a rotation never makes a daemon
// refuse every handshake, and a broken rotation never half-applies.
type source struct {
	files Files
	now   func() time.Time
	every time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	pool    *x509.CertPool
	stamps  [3]os.FileInfo
	checked time.Time
	// failed is the stamps of a set that failed to load, so that it is
	// not parsed again at every check.
	failed [3]os.FileInfo
}

// newSource loads f once; it fails as [Files.load] does.
func newSource(f Files, now func() time.Time) (*source, error) {
	s := &source{files: f, now: now, every: ReloadCheckInterval}
	stamps := s.stat()
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	s.cert, s.pool, s.stamps, s.checked = &cert, pool, stamps, now()
	return s, nil
}

func (s *source) stat() [3]os.FileInfo {
	var st [3]os.FileInfo
	for i, name := range []string{s.files.Cert, s.files.Key, s.files.CA} {
		if name == "" {
			continue
		}
		if fi, err := os.Stat(name); err == nil {
			st[i] = fi
		}
	}
	return st
}

func sameStamps(a, b [3]os.FileInfo) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) {
			return false
		}
		if a[i] == nil {
			continue
		}
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

// current returns the key pair and CA pool to use now, reloading them
// first when the files changed since the last check.
func (s *source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.checked) < s.every && !now.Before(s.checked) {
		return s.cert, s.pool
	}
	s.checked = now
	st := s.stat()
	if sameStamps(st, s.stamps) || sameStamps(st, s.failed) {
		return s.cert, s.pool
	}
	cert, pool, err := s.files.load()
	if err != nil {
		s.failed = st
		return s.cert, s.pool
	}
	s.cert, s.pool, s.stamps, s.failed = &cert, pool, st, [3]os.FileInfo{}
	return s.cert, s.pool
}

func (s *source) certificate() *tls.Certificate {
	c, _ := s.current()
	return c
}

func (s *source) roots() *x509.CertPool {
	_, p := s.current()
	return p
}

// alpn picks the application protocol for a handshake whose configuration
// comes from GetConfigForClient: that configuration replaces the one gRPC
// or net/http prepared (with their NextProtos), so the protocols they
// would offer are chosen here, in their order of preference.
func alpn(offered []string) []string {
	for _, p := range []string{"h2", "http/1.1"} {
		for _, o := range offered {
			if o == p {
				return []string{p}
			}
		}
	}
	return nil
}

// Keys is the key pair and CA pool of some Files for a daemon's other uses
// of them than its TLS connections (signing approvals with its identity,
// checking peers' certificate chains in approvals and ceremonies): read
// again when the files change, as [ServerConfig] does, so one rotation
// reaches every use.
type Keys struct{ src *source }

// LoadKeys loads f; it fails as [ServerConfig] does.
func LoadKeys(f Files) (*Keys, error) {
	src, err := newSource(f, time.Now)
	if err != nil {
		return nil, err
	}
	return &Keys{src: src}, nil
}

// Certificate returns the current key pair (its Leaf parsed).
func (k *Keys) Certificate() *tls.Certificate { return k.src.certificate() }

// Roots returns the current CA pool.
func (k *Keys) Roots() *x509.CertPool { return k.src.roots() }
