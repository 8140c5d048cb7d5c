// Package client is the Go client of the Mint API. A caller proves who it
// is with its own evidence, which the coordinator forwards to every signer:
// either its mTLS client certificate plus a signature of the request by the
// certificate's key ([Dial]), or an OIDC ID token ([DialOIDC]).
package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Client mints tokens.
type Client struct {
	conn *grpc.ClientConn
	api  mintv1.MintServiceClient
	now  func() time.Time

	// certificate callers
	key   crypto.Signer
	chain [][]byte
}

// Dial prepares a certificate caller: it authenticates with the certificate
// in f over mTLS and signs each request with the certificate's key (f.CA
// verifies the coordinator).
func Dial(addr string, f mtls.Files) (*Client, error) {
	tc, err := mtls.ClientConfig(f)
	if err != nil {
		return nil, err
	}
	cert := tc.Certificates[0]
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("client: the certificate's key cannot sign")
	}
	c, err := dial(addr, tc)
	if err != nil {
		return nil, err
	}
	c.key, c.chain = key, cert.Certificate
	return c, nil
}

// DialOIDC prepares an OIDC caller: TLS to the coordinator (verified with
// the CA bundle in caFile, or the system roots when empty) without a client
// certificate; the evidence is the ID token given to [Client.MintOIDC].
func DialOIDC(addr, caFile string) (*Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: no certificate in %s", caFile)
		}
	}
	return dial(addr, tc)
}

func dial(addr string, tc *tls.Config) (*Client, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{conn: conn, api: mintv1.NewMintServiceClient(conn), now: time.Now}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Option adjusts one mint request.
type Option func(*mintv1.MintRequest, *evidence.Request)

// WithBinding binds the token to one HTTP request (see package binding):
// verifiers will accept it for that request only.
func WithBinding(b binding.Binding) Option {
	return func(m *mintv1.MintRequest, e *evidence.Request) {
		m.Binding = &mintv1.RequestBinding{Method: b.Method, Authority: b.Authority, Path: b.Path, BodySha256: b.BodySHA256}
		bb := b
		e.Binding = &bb
	}
}

// request builds a MintRequest with a fresh nonce and the current time.
func (c *Client) request(audience string, scopes []string, ttl time.Duration, opts []Option) (*mintv1.MintRequest, evidence.Request, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, evidence.Request{}, err
	}
	now := c.now().Truncate(time.Second)
	req := &mintv1.MintRequest{Audience: audience, Scopes: scopes, Nonce: nonce, RequestedAt: timestamppb.New(now)}
	if ttl != 0 {
		req.Ttl = durationpb.New(ttl)
	}
	er := evidence.Request{Audience: audience, Scopes: scopes, TTLSeconds: int64(ttl / time.Second), Nonce: nonce, Timestamp: now}
	for _, o := range opts {
		o(req, &er)
	}
	return req, er, nil
}

// Mint asks for a token as a certificate caller; ttl 0 means the
// coordinator's default. Errors are gRPC status errors from the
// coordinator, or local errors when the request cannot be signed.
func (c *Client) Mint(ctx context.Context, audience string, scopes []string, ttl time.Duration, opts ...Option) (*mintv1.MintResponse, error) {
	if c.key == nil {
		return nil, errors.New("client: no certificate: use MintOIDC")
	}
	req, er, err := c.request(audience, scopes, ttl, opts)
	if err != nil {
		return nil, err
	}
	sig, err := evidence.SignRequest(er, c.key)
	if err != nil {
		return nil, fmt.Errorf("client: signing the request: %w", err)
	}
	req.Evidence = &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{Chain: c.chain, Signature: sig}}
	return c.api.Mint(ctx, req)
}

// MintOIDC asks for a token with an OIDC ID token as evidence.
func (c *Client) MintOIDC(ctx context.Context, idToken, audience string, scopes []string, ttl time.Duration, opts ...Option) (*mintv1.MintResponse, error) {
	req, _, err := c.request(audience, scopes, ttl, opts)
	if err != nil {
		return nil, err
	}
	req.Evidence = &mintv1.MintRequest_OidcToken{OidcToken: idToken}
	return c.api.Mint(ctx, req)
}

// Status returns the coordinator's keys and signer health.
func (c *Client) Status(ctx context.Context) (*mintv1.GetStatusResponse, error) {
	return c.api.GetStatus(ctx, &mintv1.GetStatusRequest{})
}
