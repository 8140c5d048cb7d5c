// Package mtls builds the mutually authenticated TLS 1.3 configurations that
// frostmint's daemons use, and reads a verified peer's identity: the single
// SPIFFE-style URI SAN (spiffe://<trust-domain>/<path>) of its certificate.
//
// Both the coordinator (authenticating callers) and the signers
// (authenticating the coordinator) use [PeerID], so the rule for what an
// identity is lives in one place. [DevCA] makes the throw-away CA of a local
// development cluster.
package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ErrNoIdentity means the peer presented no verified certificate with
// exactly one spiffe:// URI SAN.
var ErrNoIdentity = errors.New("mtls: no verified peer identity")

// Files names PEM files: a certificate chain, its key, and the CA bundle
// that peers must chain to.
type Files struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

// Validate reports missing names.
func (f Files) Validate(what string) error {
	var errs []error
	if f.Cert == "" {
		errs = append(errs, fmt.Errorf("%s: tls.cert is required", what))
	}
	if f.Key == "" {
		errs = append(errs, fmt.Errorf("%s: tls.key is required", what))
	}
	if f.CA == "" {
		errs = append(errs, fmt.Errorf("%s: tls.ca is required", what))
	}
	return errors.Join(errs...)
}

// load reads the key pair and the CA bundle; a Files without CA (see
// [GetCertificate]) loads no pool.
func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("mtls: loading key pair: %w", err)
	}
	if f.CA == "" {
		return cert, nil, nil
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("mtls: reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("mtls: no certificate in CA bundle %s", f.CA)
	}
	return cert, pool, nil
}

// ServerConfig returns a TLS 1.3 server configuration. With requireClient,
// every client must present a certificate that chains to the CA; without it,
// a client certificate is verified when presented (the caller decides what
// an absent one means).
//
// The certificate, key and CA bundle are read again when the files change
// (checked at most every [ReloadCheckInterval], at a handshake), so a
// rotated certificate or CA bundle is served without a restart; a new set
// that does not load is ignored until it does. Fields the caller sets on
// the returned configuration before serving (ClientAuth, VerifyConnection…)
// apply to every handshake.
func ServerConfig(f Files, requireClient bool) (*tls.Config, error) {
	src, err := newSource(f, time.Now)
	if err != nil {
		return nil, err
	}
	return serverConfig(src, requireClient), nil
}

func serverConfig(src *source, requireClient bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClient {
		auth = tls.RequireAndVerifyClientCert
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*src.cert},
		ClientCAs:    src.pool,
		ClientAuth:   auth,
	}
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := src.current()
		c := tc.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		c.ClientCAs = pool
		c.NextProtos = alpn(hello.SupportedProtos)
		return c, nil
	}
	return tc
}

// ClientConfig returns a TLS 1.3 client configuration presenting f's
// certificate and trusting f's CA for servers. The client certificate and
// key are read again when their files change (as for [ServerConfig]); the
// CA pool of this configuration (RootCAs, used by the standard host name
// verification) is the one loaded now: [ClientConfigFor], which daemons
// use, also follows CA bundle changes.
func ClientConfig(f Files) (*tls.Config, error) {
	src, err := newSource(f, time.Now)
	if err != nil {
		return nil, err
	}
	return clientConfig(src), nil
}

func clientConfig(src *source) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*src.cert},
		RootCAs:      src.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.certificate(), nil
		},
	}
}

// ClientConfigFor is [ClientConfig] for a server known by its SPIFFE ID
// rather than its host name: the server's chain must verify against f's CA
// (for server authentication; the bundle as it is on disk now, see
// [ServerConfig]) and its identity must satisfy allowed, which returns an
// error for an identity it refuses. Host names are not checked: in a
// SPIFFE deployment the identity is the name.
func ClientConfigFor(f Files, allowed func(id string) error) (*tls.Config, error) {
	src, err := newSource(f, time.Now)
	if err != nil {
		return nil, err
	}
	return clientConfigFor(src, allowed), nil
}

func clientConfigFor(src *source, allowed func(id string) error) *tls.Config {
	tc := clientConfig(src)
	tc.InsecureSkipVerify = true // replaced by the chain and identity checks below
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: the server presented no certificate", ErrNoIdentity)
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: src.roots(), Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return err
		}
		id, err := IdentityOf(leaf)
		if err != nil {
			return err
		}
		return allowed(id)
	}
	return tc
}

// GetCertificate returns a [tls.Config.GetCertificate] serving the key
// pair in certFile and keyFile, read again when the files change (as for
// [ServerConfig]): for a server without client certificates, such as the
// gateway's HTTPS listener. It fails when the pair cannot be loaded now.
func GetCertificate(certFile, keyFile string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	src, err := newSource(Files{Cert: certFile, Key: keyFile}, time.Now)
	if err != nil {
		return nil, err
	}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return src.certificate(), nil }, nil
}

// IdentityOf returns the single spiffe:// URI SAN of a verified leaf.
func IdentityOf(leaf *x509.Certificate) (string, error) {
	var ids []string
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			ids = append(ids, u.String())
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("%w: certificate has %d spiffe URI SANs, want 1", ErrNoIdentity, len(ids))
	}
	if err := CheckSPIFFE(ids[0]); err != nil {
		return "", err
	}
	return ids[0], nil
}

// CheckSPIFFE checks the form spiffe://<trust-domain>/<path>.
func CheckSPIFFE(id string) error {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.Port() != "" ||
		u.RawQuery != "" || u.Fragment != "" || len(u.Path) < 2 || strings.Contains(u.Path, "//") ||
		strings.HasSuffix(u.Path, "/") || strings.Contains(u.Path, "/./") || strings.Contains(u.Path, "/../") ||
		strings.ToLower(u.Host) != u.Host {
		return fmt.Errorf("%w: %q is not a spiffe://<trust-domain>/<path> id", ErrNoIdentity, id)
	}
	return nil
}

// PeerID returns the identity of the gRPC peer in ctx, whose certificate
// chain the TLS handshake verified. It fails with [ErrNoIdentity] for a
// peer without a verified certificate or without exactly one SPIFFE ID.
func PeerID(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ErrNoIdentity
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", ErrNoIdentity
	}
	if len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", ErrNoIdentity
	}
	return IdentityOf(ti.State.VerifiedChains[0][0])
}
