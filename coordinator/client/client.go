// Package client is the Go client of the Mint API: it dials the coordinator
// over TLS 1.3 presenting the caller's certificate, whose SPIFFE ID is the
// identity the token is minted for.
package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Client mints tokens.
type Client struct {
	conn *grpc.ClientConn
	api  mintv1.MintServiceClient
}

// Dial prepares a client for the coordinator at addr, authenticating with
// the caller certificate in f (f.CA verifies the coordinator).
func Dial(addr string, f mtls.Files) (*Client, error) {
	tc, err := mtls.ClientConfig(f)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{conn: conn, api: mintv1.NewMintServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Mint asks for a token; ttl 0 means the coordinator's default. Errors are
// gRPC status errors from the coordinator.
func (c *Client) Mint(ctx context.Context, audience string, scopes []string, ttl time.Duration) (*mintv1.MintResponse, error) {
	req := &mintv1.MintRequest{Audience: audience, Scopes: scopes}
	if ttl != 0 {
		req.Ttl = durationpb.New(ttl)
	}
	return c.api.Mint(ctx, req)
}

// Status returns the coordinator's keys and signer health.
func (c *Client) Status(ctx context.Context) (*mintv1.GetStatusResponse, error) {
	return c.api.GetStatus(ctx, &mintv1.GetStatusRequest{})
}
