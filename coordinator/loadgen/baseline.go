package loadgen

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

// BaselineConfig configures the baseline mint service.
type BaselineConfig struct {
	Listen string     `json:"listen"`
	TLS    mtls.Files `json:"tls"`
	Issuer string     `json:"issuer"`
}

// Baseline is what the threshold mint is compared with: a single-key
// Ed25519 mint service behind the same gRPC stack. It serves the Mint API
// over the same TLS 1.3 as the coordinator, takes the same MintRequest
// from the same client, and answers with a token of the same profile,
// signed with crypto/ed25519 by one key in its memory. It names the caller
// by its mTLS identity and checks nothing else: no evidence, no policy, no
// limits, no audit, no signers. So the ratio of the two is the price of
// "no single machine can mint, and every machine checks and records".
//
// It exists for the bench only; nothing else may mint with it.
type Baseline struct {
	mintv1.UnimplementedMintServiceServer
	cfg BaselineConfig
	key ed25519.PrivateKey
	now func() time.Time
}

// NewBaseline returns a baseline service with a fresh key; now is the
// clock (nil: time.Now).
func NewBaseline(cfg BaselineConfig, now func() time.Time) (*Baseline, error) {
	if now == nil {
		now = time.Now
	}
	if err := cfg.TLS.Validate("baseline tls"); err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Baseline{cfg: cfg, key: key, now: now}, nil
}

// Serve serves the Mint API on lis until ctx is done.
func (b *Baseline) Serve(ctx context.Context, lis net.Listener) error {
	// As the coordinator's: TLS 1.3, client certificates verified when
	// given (the coordinator also admits OIDC callers without one).
	tc, err := mtls.ServerConfig(b.cfg.TLS, false)
	if err != nil {
		lis.Close()
		return err
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	mintv1.RegisterMintServiceServer(gs, b)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("loadgen: baseline: %w", err)
	case <-ctx.Done():
		gs.Stop()
		return nil
	}
}

// Mint implements mintv1.MintServiceServer: one Ed25519 signature over a
// token for the caller's mTLS identity.
func (b *Baseline) Mint(ctx context.Context, req *mintv1.MintRequest) (*mintv1.MintResponse, error) {
	id, err := mtls.PeerID(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "a client certificate is required")
	}
	if req.GetAudience() == "" || len(req.GetScopes()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "an audience and a scope are required")
	}
	ttl := 5 * time.Minute
	if req.GetTtl() != nil {
		ttl = req.GetTtl().AsDuration()
	}
	jti, err := token.NewID(rand.Reader)
	if err != nil {
		return nil, status.Error(codes.Internal, "no randomness")
	}
	iat := b.now().Unix()
	c := token.Claims{Issuer: b.cfg.Issuer, Subject: id, ClientID: id, Audience: req.GetAudience(),
		Scope: strings.Join(req.GetScopes(), " "), IssuedAt: iat, NotBefore: iat, Expiry: iat + int64(ttl/time.Second), ID: jti}
	msg, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: "baseline"}, c)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "not a valid token: %v", err)
	}
	return &mintv1.MintResponse{Token: token.Compact(msg, ed25519.Sign(b.key, msg)), TokenId: jti,
		ExpiresAt: timestamppb.New(time.Unix(c.Expiry, 0))}, nil
}

// ServeBaselineFile runs the baseline service of the JSON config at path
// until ctx is done: what `frostmint bench --serve-baseline FILE` runs in
// a child process of the bench.
func ServeBaselineFile(ctx context.Context, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	var cfg BaselineConfig
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&cfg); err != nil {
		return fmt.Errorf("loadgen: %s: %w", path, err)
	}
	if cfg.Listen == "" {
		return errors.New("loadgen: baseline config: listen is required")
	}
	b, err := NewBaseline(cfg, nil)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("loadgen: baseline: %w", err)
	}
	return b.Serve(ctx, lis)
}
