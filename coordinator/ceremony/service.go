package ceremony

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// ServiceConfig configures a [Service].
type ServiceConfig struct {
	// Relay runs the ceremonies. Required.
	Relay *Relay
	// Participants returns the signers a ceremony may include, by
	// participant id (a function, so that signers that connect later, such
	// as guardians, are seen). Required.
	Participants func() map[uint16]Participant
	// Authorize admits an operator: it returns nil for a caller allowed to
	// run ceremonies and an error otherwise (see [AllowIdentities]).
	// Required: there is no default admin.
	Authorize func(ctx context.Context) error
	// Done, if set, is called with the result of every completed ceremony
	// before the operator is told, for example to store the new group in
	// the coordinator's keys directory (keydir.Write with the result's
	// group and transcript). When it fails the operator gets INTERNAL with
	// its error; the signers' outputs stay.
	Done func(context.Context, *Result) error
	// Log receives refusals (default: discarded).
	Log *slog.Logger
}

// Service is the coordinator's CeremonyService: an operator's CLI runs a
// ceremony through it and watches its progress. It runs one ceremony at a
// time.
type Service struct {
	ceremonyv1.UnimplementedCeremonyServiceServer

	cfg     ServiceConfig
	running atomic.Bool
}

// NewService checks cfg and returns a Service. It fails when a required
// field is missing.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Relay == nil || cfg.Participants == nil || cfg.Authorize == nil {
		return nil, errors.New("ceremony: the service needs a relay, the participants and an authorization check")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}, nil
}

// AllowIdentities returns an authorization check admitting only callers
// whose verified mTLS certificate carries one of ids (SPIFFE IDs). It
// fails with an error wrapping mtls.ErrNoIdentity for a caller without a
// verified identity, and ErrNotAdmin for another identity.
func AllowIdentities(ids ...string) func(ctx context.Context) error {
	allowed := slices.Clone(ids)
	return func(ctx context.Context) error {
		id, err := mtls.PeerID(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(allowed, id) {
			return fmt.Errorf("%w: %s", ErrNotAdmin, id)
		}
		return nil
	}
}

// ErrNotAdmin means the caller is not allowed to run ceremonies.
var ErrNotAdmin = errors.New("ceremony: caller is not a ceremony admin")

// Run implements ceremonyv1.CeremonyServiceServer.
func (s *Service) Run(req *ceremonyv1.RunRequest, stream grpc.ServerStreamingServer[ceremonyv1.RunResponse]) error {
	ctx := stream.Context()
	if err := s.cfg.Authorize(ctx); err != nil {
		s.cfg.Log.Warn("ceremony refused", "err", err)
		if errors.Is(err, mtls.ErrNoIdentity) {
			return status.Error(codes.Unauthenticated, "a client certificate with a SPIFFE ID is required")
		}
		return status.Error(codes.PermissionDenied, "caller may not run key ceremonies")
	}
	all := s.cfg.Participants()
	parts := all
	if len(req.GetSignerIds()) > 0 {
		parts = make(map[uint16]Participant, len(req.GetSignerIds()))
		for _, id := range req.GetSignerIds() {
			p, ok := all[uint16(id)]
			if id > sceremony.MaxParticipants || !ok {
				return status.Errorf(codes.InvalidArgument, "signer %d is not configured", id)
			}
			if _, dup := parts[uint16(id)]; dup {
				return status.Errorf(codes.InvalidArgument, "signer %d is listed twice", id)
			}
			parts[uint16(id)] = p
		}
	}
	if req.GetThreshold() > sceremony.MaxParticipants {
		return status.Errorf(codes.InvalidArgument, "threshold %d is out of range", req.GetThreshold())
	}
	if !s.running.CompareAndSwap(false, true) {
		return status.Error(codes.FailedPrecondition, "a ceremony is already running")
	}
	defer s.running.Store(false)

	var (
		sendErr error
		done    *ceremonyv1.RunResponse
	)
	res, err := s.cfg.Relay.Run(ctx, parts, uint16(req.GetThreshold()), func(e Event) {
		if e.Kind == ceremonyv1.EventKind_EVENT_KIND_DONE {
			done = EventProto(e) // sent once Done has run
			return
		}
		if sendErr == nil {
			sendErr = stream.Send(EventProto(e))
		}
	})
	if err == nil && s.cfg.Done != nil {
		if derr := s.cfg.Done(context.WithoutCancel(ctx), res); derr != nil {
			s.cfg.Log.Error("ceremony done, but storing its result failed", "kid", res.Kid, "err", derr)
			return status.Errorf(codes.Internal, "every signer committed key %s, but the coordinator could not store it: %v", res.Kid, derr)
		}
	}
	if done != nil && sendErr == nil {
		sendErr = stream.Send(done)
	}
	switch {
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		st := status.New(codes.Aborted, err.Error())
		var ce *sceremony.CheatError
		if errors.As(err, &ce) {
			if d, derr := st.WithDetails(ce.Blame()); derr == nil {
				st = d
			}
		}
		return st.Err()
	}
	return sendErr
}

// EventProto returns e as a progress message.
func EventProto(e Event) *ceremonyv1.RunResponse {
	out := &ceremonyv1.RunResponse{Kind: e.Kind, CeremonyId: e.CeremonyID, ParticipantId: uint32(e.Participant),
		Threshold: uint32(e.Threshold), MaxSigners: uint32(e.MaxSigners), Kid: e.Kid, GroupPublicKey: e.GroupKey}
	if e.Err != nil {
		out.Detail = e.Err.Error()
		var ce *sceremony.CheatError
		if errors.As(e.Err, &ce) {
			out.Blame = ce.Blame()
		}
	}
	return out
}
