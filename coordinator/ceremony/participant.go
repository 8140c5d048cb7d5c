package ceremony

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Participant is one signer in a ceremony, as the relay reaches it: over a
// gRPC connection ([NewGRPCParticipant]) or, later, over a stream the
// signer dialled out (guardians). The relay never trusts what comes back:
// it verifies every package, envelope and signature itself.
//
// Every method fails with a *[sceremony.CheatError] when the participant
// detected cheating (it then wiped its state and takes no further part),
// with an error wrapping [sceremony.ErrUnknown] when it holds no such
// ceremony (never begun, aborted or expired), [sceremony.ErrState] for a
// call out of order, [sceremony.ErrInvalid] for a request it finds
// malformed, and with the transport's error (unreachable, deadline) when
// it could not be asked. Every method must return once ctx is done: the
// relay's round timeout relies on it.
type Participant interface {
	// Identity is the SPIFFE ID the participant must sign as: its roster
	// entry.
	Identity() string
	// Begin starts the ceremony and returns the participant's signed
	// round-1 package. It also fails with [sceremony.ErrBusy] when the
	// participant holds its maximum of ceremonies.
	Begin(context.Context, *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error)
	// Exchange hands over every round-1 package and returns the
	// participant's encrypted round-2 envelopes, one per peer.
	Exchange(context.Context, *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error)
	// Finish hands over the envelopes addressed to the participant and
	// returns its public results and transcript signature.
	Finish(context.Context, *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error)
	// Commit hands over every transcript signature; the participant writes
	// its outputs and returns the kid. It also fails with
	// [sceremony.ErrExists] when outputs for the kid exist already, and with
	// an internal error when they cannot be written.
	Commit(context.Context, *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error)
	// Abort drops the ceremony at the participant; aborting an unknown
	// ceremony succeeds. It fails with [sceremony.ErrState] once the
	// participant committed.
	Abort(context.Context, *ceremonyv1.AbortRequest) (*ceremonyv1.AbortResponse, error)
}

// grpcParticipant is a Participant served by a signer daemon.
type grpcParticipant struct {
	identity string
	c        ceremonyv1.CeremonyParticipantServiceClient
}

// NewGRPCParticipant returns the Participant served over conn, a
// connection to the signer daemon whose SPIFFE ID is identity (the
// connection should check it; see [Dial]). Status errors are turned back
// into the errors [Participant] documents.
func NewGRPCParticipant(conn grpc.ClientConnInterface, identity string) Participant {
	return &grpcParticipant{identity: identity, c: ceremonyv1.NewCeremonyParticipantServiceClient(conn)}
}

func (g *grpcParticipant) Identity() string { return g.identity }

func (g *grpcParticipant) Begin(ctx context.Context, r *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	resp, err := g.c.Begin(ctx, r)
	return resp, sceremony.FromStatus(err)
}

func (g *grpcParticipant) Exchange(ctx context.Context, r *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	resp, err := g.c.Exchange(ctx, r)
	return resp, sceremony.FromStatus(err)
}

func (g *grpcParticipant) Finish(ctx context.Context, r *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	resp, err := g.c.Finish(ctx, r)
	return resp, sceremony.FromStatus(err)
}

func (g *grpcParticipant) Commit(ctx context.Context, r *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	resp, err := g.c.Commit(ctx, r)
	return resp, sceremony.FromStatus(err)
}

func (g *grpcParticipant) Abort(ctx context.Context, r *ceremonyv1.AbortRequest) (*ceremonyv1.AbortResponse, error) {
	resp, err := g.c.Abort(ctx, r)
	return resp, sceremony.FromStatus(err)
}

// Dial returns a connection (made lazily) to the signer daemon at addr,
// authenticated with f, that accepts only a server whose certificate
// chains to f's CA and carries exactly the SPIFFE ID identity: host names
// are not checked, the identity is the name. A coordinator that already
// holds such a connection to each signer can pass it to
// [NewGRPCParticipant] instead. It fails when f cannot be loaded.
func Dial(addr, identity string, f mtls.Files) (*grpc.ClientConn, error) {
	tc, err := mtls.ClientConfigFor(f, func(id string) error {
		if id != identity {
			return fmt.Errorf("ceremony: the signer at %s is %q, want %q", addr, id, identity)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	return conn, nil
}
