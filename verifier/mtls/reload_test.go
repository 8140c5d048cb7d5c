package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the tests move.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// secretDir lays files out as a Kubernetes Secret volume does: each file
// is a symlink through ..data, itself a symlink to a timestamped
// directory; an update writes a new directory and renames a new ..data
// symlink over the old one, so every file changes at once.
type secretDir struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretDir(t *testing.T) *secretDir {
	return &secretDir{t: t, dir: t.TempDir()}
}

func (s *secretDir) files() Files {
	return Files{Cert: filepath.Join(s.dir, "tls.crt"), Key: filepath.Join(s.dir, "tls.key"), CA: filepath.Join(s.dir, "ca.crt")}
}

// update publishes cert, key and CA (read from f) as the Secret's new
// content.
func (s *secretDir) update(f Files) {
	t := s.t
	t.Helper()
	s.n++
	ts := fmt.Sprintf("..v%d", s.n)
	if err := os.Mkdir(filepath.Join(s.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]string{"tls.crt": f.Cert, "tls.key": f.Key, "ca.crt": f.CA} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, ts, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(s.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func issue(t *testing.T, ca *DevCA, name, id string) Files {
	t.Helper()
	f, err := ca.Issue(t.TempDir(), name, Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newCA(t *testing.T) *DevCA {
	t.Helper()
	ca, err := NewDevCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// serve accepts TLS connections with cfg until the test ends, completing
// each handshake and answering with nothing.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return lis.Addr().String()
}

// handshake connects with cfg and returns the server's leaf, or the
// handshake's error.
func handshake(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// TLS 1.3: a client certificate the server refuses shows on the first read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestServerPicksUpRotatedCertificate(t *testing.T) {
	ca := newCA(t)
	sd := newSecretDir(t)
	sd.update(issue(t, ca, "server", "spiffe://td/server"))
	clock := &fakeClock{t: time.Now()}
	src, err := newSource(sd.files(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, serverConfig(src, true))
	client := clientConfigFromFiles(t, issue(t, ca, "client", "spiffe://td/client"), "spiffe://td/server")

	first, err := handshake(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	sd.update(issue(t, ca, "server", "spiffe://td/server"))
	if got, err := handshake(addr, client); err != nil || !got.Equal(first) {
		t.Fatalf("within the check interval: got a new certificate (%v) or %v; want the old one", got != nil && !got.Equal(first), err)
	}
	clock.Add(ReloadCheckInterval)
	second, err := handshake(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if second.Equal(first) || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the rotated certificate was not served")
	}

	// A broken rotation (this key does not match this certificate) is
	// ignored: the last good certificate stays.
	other := issue(t, ca, "other", "spiffe://td/server")
	broken := issue(t, ca, "server", "spiffe://td/server")
	broken.Key = other.Key
	sd.update(broken)
	clock.Add(ReloadCheckInterval)
	if got, err := handshake(addr, client); err != nil || !got.Equal(second) {
		t.Fatalf("after a broken rotation: %v; want the last good certificate", err)
	}
	// Fixed: picked up at the next check.
	sd.update(issue(t, ca, "server", "spiffe://td/server"))
	clock.Add(ReloadCheckInterval)
	if got, err := handshake(addr, client); err != nil || got.Equal(second) {
		t.Fatalf("after the fix: %v; want the new certificate", err)
	}
}

func clientConfigFromFiles(t *testing.T, f Files, server string) *tls.Config {
	t.Helper()
	tc, err := ClientConfigFor(f, func(id string) error {
		if id != server {
			return fmt.Errorf("unexpected server %s", id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestCARotation: a new CA's bundle reaches both ends; the server then
// accepts clients of the new CA, and a client that follows the bundle
// accepts servers of the new CA.
func TestCARotation(t *testing.T) {
	oldCA, newCA := newCA(t), newCA(t)
	clock := &fakeClock{t: time.Now()}

	serverDir := newSecretDir(t)
	serverDir.update(issue(t, oldCA, "server", "spiffe://td/server"))
	ssrc, err := newSource(serverDir.files(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, serverConfig(ssrc, true))

	clientDir := newSecretDir(t)
	clientDir.update(issue(t, oldCA, "client", "spiffe://td/client"))
	csrc, err := newSource(clientDir.files(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	client := clientConfigFor(csrc, func(string) error { return nil })
	if _, err := handshake(addr, client); err != nil {
		t.Fatal(err)
	}

	// The client moves to the new CA first: its certificate is refused by
	// the server, which still trusts only the old CA, and it refuses the
	// server's old-CA certificate.
	clientDir.update(issue(t, newCA, "client", "spiffe://td/client"))
	clock.Add(ReloadCheckInterval)
	if _, err := handshake(addr, client); err == nil {
		t.Fatal("a server of a CA the client no longer trusts was accepted")
	}
	// The server moves too: both ends agree again, without a restart.
	serverDir.update(issue(t, newCA, "server", "spiffe://td/server"))
	clock.Add(ReloadCheckInterval)
	if _, err := handshake(addr, client); err != nil {
		t.Fatalf("after both rotated: %v", err)
	}
	// A client still on the old CA is refused by the server now.
	stale := clientConfigFromFiles(t, issue(t, oldCA, "client", "spiffe://td/client"), "spiffe://td/server")
	stale.InsecureSkipVerify, stale.VerifyConnection = true, nil
	if _, err := handshake(addr, stale); err == nil {
		t.Fatal("a client of the old CA was accepted after the server's CA rotated")
	}
}

// TestClientCertificateRotation: the server sees the client's new
// certificate on the next connection.
func TestClientCertificateRotation(t *testing.T) {
	ca := newCA(t)
	clock := &fakeClock{t: time.Now()}
	server := issue(t, ca, "server", "spiffe://td/server")
	scfg, err := ServerConfig(server, true)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *x509.Certificate, 4)
	scfg.VerifyConnection = func(cs tls.ConnectionState) error {
		seen <- cs.PeerCertificates[0]
		return nil
	}
	addr := serve(t, scfg)

	dir := newSecretDir(t)
	dir.update(issue(t, ca, "client", "spiffe://td/client"))
	src, err := newSource(dir.files(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	client := clientConfigFor(src, func(string) error { return nil })
	if _, err := handshake(addr, client); err != nil {
		t.Fatal(err)
	}
	first := <-seen
	dir.update(issue(t, ca, "client", "spiffe://td/client"))
	clock.Add(ReloadCheckInterval)
	if _, err := handshake(addr, client); err != nil {
		t.Fatal(err)
	}
	if second := <-seen; second.Equal(first) {
		t.Fatal("the server saw the old client certificate after the rotation")
	}
}

// TestReloadingServerSpeaksHTTP2AndHTTP1: the configuration chosen per
// handshake still negotiates the protocols net/http (and gRPC, h2) need,
// and keeps what the caller set on the returned configuration.
func TestReloadingServerSpeaksHTTP2AndHTTP1(t *testing.T) {
	ca := newCA(t)
	scfg, err := ServerConfig(issue(t, ca, "server", "spiffe://td/server"), false)
	if err != nil {
		t.Fatal(err)
	}
	scfg.ClientAuth = tls.NoClientCert
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.TLS = scfg
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	f := issue(t, ca, "client", "spiffe://td/client")
	for _, h2 := range []bool{true, false} {
		tc, err := ClientConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates, tc.GetClientCertificate = nil, nil
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "HTTP/1.1"
		if h2 {
			want = "HTTP/2.0"
		}
		if string(b) != want {
			t.Errorf("got %s, want %s", b, want)
		}
		tr.CloseIdleConnections()
	}
}

// TestKeysFollowRotation: the key pair and CA pool a daemon uses besides
// its connections follow the files too.
func TestKeysFollowRotation(t *testing.T) {
	oldCA, newCA := newCA(t), newCA(t)
	clock := &fakeClock{t: time.Now()}
	dir := newSecretDir(t)
	dir.update(issue(t, oldCA, "signer", "spiffe://td/signer/1"))
	src, err := newSource(dir.files(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	k := &Keys{src: src}
	first := k.Certificate()
	if first.Leaf == nil {
		t.Fatal("no parsed leaf")
	}
	verifies := func(c *tls.Certificate) bool {
		_, err := c.Leaf.Verify(x509.VerifyOptions{Roots: k.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	if !verifies(first) {
		t.Fatal("the certificate does not chain to the pool")
	}
	dir.update(issue(t, newCA, "signer", "spiffe://td/signer/1"))
	clock.Add(ReloadCheckInterval)
	second := k.Certificate()
	if second.Leaf.Equal(first.Leaf) || !verifies(second) || verifies(first) {
		t.Fatal("the key pair and the CA pool did not both follow the rotation")
	}
}
