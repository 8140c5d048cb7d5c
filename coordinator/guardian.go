package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Guardians dial in: GuardianService.Connect keeps one stream per
// guardian, and a guardianClient turns that stream into an ordinary
// signv1.SignerServiceClient, so that pools, quorums, retries and
// quarantine treat a guardian exactly like a signer the coordinator dials.

// maxGuardianCalls bounds the calls in flight on one guardian stream.
const maxGuardianCalls = 256

// guardianClient is a SignerServiceClient over a guardian's stream. Calls
// are multiplexed by id; answers may come in any order.
type guardianClient struct {
	stream signv1.GuardianService_ConnectServer
	sendMu sync.Mutex

	mu    sync.Mutex
	next  uint64
	calls map[uint64]chan *signv1.ConnectRequest
	done  chan struct{} // closed when the stream ends
}

func newGuardianClient(stream signv1.GuardianService_ConnectServer) *guardianClient {
	return &guardianClient{stream: stream, calls: map[uint64]chan *signv1.ConnectRequest{}, done: make(chan struct{})}
}

// call sends one call and waits for its answer. It fails with
// Unavailable when the guardian is gone, with ctx's status when ctx ends
// first, and with the guardian's own status for a refusal.
func (g *guardianClient) call(ctx context.Context, c *signv1.ConnectResponse) (*signv1.ConnectRequest, error) {
	ch := make(chan *signv1.ConnectRequest, 1)
	g.mu.Lock()
	if len(g.calls) >= maxGuardianCalls {
		g.mu.Unlock()
		return nil, status.Error(codes.ResourceExhausted, "too many calls in flight to this guardian")
	}
	g.next++
	id := g.next
	g.calls[id] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, id)
		g.mu.Unlock()
	}()
	c.CallId = id
	g.sendMu.Lock()
	err := g.stream.Send(c)
	g.sendMu.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "guardian stream: %v", err)
	}
	select {
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-g.done:
		return nil, errAway
	case a := <-ch:
		if e := a.GetError(); e != nil {
			st := status.New(codes.Code(e.GetCode()), e.GetMessage())
			if b := e.GetBlame(); b != nil {
				if withBlame, err := st.WithDetails(b); err == nil {
					st = withBlame
				}
			}
			return nil, st.Err()
		}
		return a, nil
	}
}

// serve reads answers until the stream ends, and returns its error.
func (g *guardianClient) serve() error {
	defer close(g.done)
	for {
		a, err := g.stream.Recv()
		if err != nil {
			return err
		}
		g.mu.Lock()
		ch, ok := g.calls[a.GetCallId()]
		g.mu.Unlock()
		if ok {
			select {
			case ch <- a:
			default: // a second answer to one call: ignored
			}
		}
	}
}

// roundTrip makes call c on g and returns the answer that get picks out
// of the guardian's reply; a reply of another kind is errWrongAnswer.
func roundTrip[R comparable](ctx context.Context, g *guardianClient, c *signv1.ConnectResponse, get func(*signv1.ConnectRequest) R) (R, error) {
	var zero R
	a, err := g.call(ctx, c)
	if err != nil {
		return zero, err
	}
	if r := get(a); r != zero {
		return r, nil
	}
	return zero, errWrongAnswer
}

func (g *guardianClient) Info(ctx context.Context, in *signv1.InfoRequest, _ ...grpc.CallOption) (*signv1.InfoResponse, error) {
	return roundTrip(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_Info{Info: in}}, (*signv1.ConnectRequest).GetInfo)
}

func (g *guardianClient) Commit(ctx context.Context, in *signv1.CommitRequest, _ ...grpc.CallOption) (*signv1.CommitResponse, error) {
	return roundTrip(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_Commit{Commit: in}}, (*signv1.ConnectRequest).GetCommit)
}

func (g *guardianClient) Sign(ctx context.Context, in *signv1.SignRequest, _ ...grpc.CallOption) (*signv1.SignResponse, error) {
	return roundTrip(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_Sign{Sign: in}}, (*signv1.ConnectRequest).GetSign)
}

// errGuardianNoAttestation answers Attest for a guardian: workstations
// have no SEV-SNP attestation, and the stream does not carry one.
var errGuardianNoAttestation = status.Error(codes.FailedPrecondition, "guardians have no attestation")

// Attest implements signv1.SignerServiceClient: a guardian is never
// attested.
func (g *guardianClient) Attest(context.Context, *signv1.AttestRequest, ...grpc.CallOption) (*signv1.AttestResponse, error) {
	return nil, errGuardianNoAttestation
}

func (g *guardianClient) Approve(ctx context.Context, in *signv1.ApproveRequest, _ ...grpc.CallOption) (*signv1.ApproveResponse, error) {
	r, err := roundTrip(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_Approve{Approve: in}}, (*signv1.ConnectRequest).GetApprove)
	if err == nil && r.GetApproval() == nil {
		return nil, errWrongAnswer
	}
	return r, err
}

var errWrongAnswer = status.Error(codes.Internal, "the guardian answered another call")

// guardianParticipant is a key ceremony participant reached over a
// guardian's stream, through its pool (so a guardian that reconnects
// mid-ceremony is reached on its new stream).
type guardianParticipant struct{ p *pool }

func (g guardianParticipant) Identity() string { return g.p.ep.Identity }

// ceremonyCall makes one ceremony call on the guardian's current stream.
func ceremonyCall[R comparable](ctx context.Context, g guardianParticipant, c *signv1.ConnectResponse, get func(*signv1.ConnectRequest) R) (R, error) {
	s, ok := g.p.rpc().(*guardianClient)
	if !ok || s == nil {
		var zero R
		return zero, errAway
	}
	return roundTrip(ctx, s, c, get)
}

func (g guardianParticipant) Begin(ctx context.Context, in *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	return ceremonyCall(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyBegin{CeremonyBegin: in}}, (*signv1.ConnectRequest).GetCeremonyBegin)
}

func (g guardianParticipant) Exchange(ctx context.Context, in *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	return ceremonyCall(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyExchange{CeremonyExchange: in}}, (*signv1.ConnectRequest).GetCeremonyExchange)
}

func (g guardianParticipant) Finish(ctx context.Context, in *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	return ceremonyCall(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyFinish{CeremonyFinish: in}}, (*signv1.ConnectRequest).GetCeremonyFinish)
}

func (g guardianParticipant) Commit(ctx context.Context, in *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	return ceremonyCall(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyCommit{CeremonyCommit: in}}, (*signv1.ConnectRequest).GetCeremonyCommit)
}

func (g guardianParticipant) Abort(ctx context.Context, in *ceremonyv1.AbortRequest) (*ceremonyv1.AbortResponse, error) {
	return ceremonyCall(ctx, g, &signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyAbort{CeremonyAbort: in}}, (*signv1.ConnectRequest).GetCeremonyAbort)
}

// Connect implements signv1.GuardianServiceServer: it admits a configured
// guardian by its mTLS identity, attaches its stream to its pool while
// the stream lasts, and detaches it when the stream ends.
func (s *Server) Connect(stream signv1.GuardianService_ConnectServer) error {
	id, err := mtls.PeerID(stream.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, "a guardian needs a client certificate with a SPIFFE ID")
	}
	var p *pool
	for _, q := range s.pools {
		if q.ep.Guardian && q.ep.Identity == id {
			p = q
		}
	}
	if p == nil {
		s.log.Warn("refused guardian", "peer", id)
		return status.Error(codes.PermissionDenied, "this identity is not a configured guardian")
	}
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	if hello.GetHello() == nil || hello.GetHello().GetSignerId() != uint32(p.ep.ID) {
		return status.Errorf(codes.InvalidArgument, "the first message must be a hello from signer %d", p.ep.ID)
	}
	g := newGuardianClient(stream)
	if !p.attach(g) {
		return status.Errorf(codes.AlreadyExists, "guardian %d is already connected", p.ep.ID)
	}
	defer p.detach(g)
	log := s.log.With("guardian", p.ep.ID, "identity", id)
	log.Info("guardian connected")
	errc := make(chan error, 1)
	go func() { errc <- g.serve() }()
	// Learn at once whether it can approve; the pool fills as usual.
	p.checkBoot(stream.Context(), time.Duration(s.cfg.SignTimeout))
	err = <-errc
	log.Info("guardian disconnected", "err", err)
	return nil
}

// identityOf returns the configured identity of signer id.
func (s *Server) identityOf(id uint16) string {
	for _, p := range s.pools {
		if p.ep.ID == id {
			return p.ep.Identity
		}
	}
	return ""
}

// approve asks every connected guardian that can approve, at once, and
// returns the first approval. It fails with a denial saying why: no
// guardian connected, declined, or no answer in time.
func (s *Server) approve(ctx context.Context, log *slog.Logger, rid string, msg []byte, caller *mintv1.MintRequest, policyHash string) (*signv1.Approval, error) {
	var gs []*pool
	for _, p := range s.pools {
		if p.ep.Guardian && p.canApprove() {
			gs = append(gs, p)
		}
	}
	if len(gs) == 0 {
		return nil, deny(codes.FailedPrecondition, "approval_required", nil,
			"policy requires a human's approval for these scopes, and no guardian is connected to ask")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.ApprovalTimeout))
	defer cancel()
	type result struct {
		id  uint16
		a   *signv1.Approval
		err error
	}
	results := make(chan result, len(gs))
	for _, p := range gs {
		go func() {
			client := p.rpc()
			if client == nil {
				results <- result{id: p.ep.ID, err: errAway}
				return
			}
			r, err := client.Approve(ctx, &signv1.ApproveRequest{Message: msg, RequestId: rid, CallerRequest: caller, PolicyHash: policyHash})
			if err == nil && r.GetApproval().GetSignerId() != uint32(p.ep.ID) {
				err = fmt.Errorf("guardian %d sent an approval of signer %d", p.ep.ID, r.GetApproval().GetSignerId())
			}
			results <- result{id: p.ep.ID, a: r.GetApproval(), err: err}
		}()
	}
	var declined, timedOut []uint16
	var errs []error
	for range gs {
		r := <-results
		if r.err == nil {
			log.Info("approved by guardian", "guardian", r.id, "approver", r.a.GetApprover())
			return r.a, nil
		}
		log.Info("guardian did not approve", "guardian", r.id, "err", r.err)
		switch status.Code(r.err) {
		case codes.PermissionDenied:
			declined = append(declined, r.id)
		case codes.DeadlineExceeded:
			timedOut = append(timedOut, r.id)
		}
		errs = append(errs, r.err)
	}
	err := errors.Join(errs...)
	switch {
	case len(declined) > 0:
		return nil, deny(codes.PermissionDenied, "approval_declined", err,
			"approval declined: the engineer at guardian %v said no", declined)
	case len(timedOut) > 0:
		return nil, deny(codes.DeadlineExceeded, "approval_timeout", err,
			"approval timed out: no engineer answered within %s", time.Duration(s.cfg.ApprovalTimeout))
	default:
		return nil, deny(codes.Unavailable, "approval_unavailable", err,
			"no guardian could ask its engineer for approval now; request %s", rid)
	}
}
