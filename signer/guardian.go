package signer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// GuardianConfig makes a signer a guardian: a signer daemon on an
// engineer's workstation. Workstations sit behind NAT, so the guardian
// dials out to the coordinator and keeps one mTLS stream open, over which
// the coordinator calls it like any other signer; it reconnects with
// backoff when the stream breaks. A guardian can also ask its engineer to
// approve tokens that the policy says need a human.
type GuardianConfig struct {
	// Coordinator is the coordinator's gRPC address (host:port). Its
	// certificate must carry one of the signer's Coordinators identities.
	Coordinator string `json:"coordinator"`
	// Prompt is how the engineer is asked: "tty" (the terminal, the
	// default), "stdin" (questions on stderr, answers on standard input),
	// or "deny" (never approve).
	Prompt string `json:"prompt"`
	// Notify also shows a desktop notification, where notify-send exists.
	Notify bool `json:"notify"`
	// ApprovalTimeout is how long the engineer has to answer (default 2m).
	ApprovalTimeout Duration `json:"approval_timeout"`
	// ReconnectMax caps the reconnection backoff (default 30s).
	ReconnectMax Duration `json:"reconnect_max"`
}

// Validate reports every problem of g at once.
func (g *GuardianConfig) Validate() error {
	var errs []error
	if g.Coordinator == "" {
		errs = append(errs, errors.New("guardian.coordinator is required (host:port)"))
	}
	switch g.Prompt {
	case "", "tty", "stdin", "deny":
	default:
		errs = append(errs, fmt.Errorf("guardian.prompt %q: want tty, stdin or deny", g.Prompt))
	}
	if g.ApprovalTimeout < 0 || time.Duration(g.ApprovalTimeout) > 30*time.Minute {
		errs = append(errs, errors.New("guardian.approval_timeout must be in [0, 30m]"))
	}
	if g.ReconnectMax < 0 {
		errs = append(errs, errors.New("guardian.reconnect_max may not be negative"))
	}
	return errors.Join(errs...)
}

func (g *GuardianConfig) approvalTimeout() time.Duration {
	if g.ApprovalTimeout == 0 {
		return 2 * time.Minute
	}
	return time.Duration(g.ApprovalTimeout)
}

// newApprover returns the approver of the guardian's prompt setting.
func (g *GuardianConfig) newApprover() (Approver, error) {
	var notify func(ApprovalPrompt)
	if g.Notify {
		notify = desktopNotify
	}
	switch g.Prompt {
	case "deny":
		return denyApprover{}, nil
	case "stdin":
		return newLineApprover(os.Stdin, os.Stderr, localUser(), notify), nil
	default:
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("guardian: no terminal to ask the engineer (%w); use prompt \"stdin\" or \"deny\"", err)
		}
		return newLineApprover(tty, tty, localUser(), notify), nil
	}
}

// RunGuardian dials the coordinator and serves its calls over the guardian
// stream until ctx is done, reconnecting with jittered exponential backoff
// (100 ms doubling up to ReconnectMax) whenever the stream breaks. It
// returns nil when ctx is done; it fails only when the TLS setup is wrong.
func (s *Server) RunGuardian(ctx context.Context) error {
	g := s.cfg.Guardian
	if g == nil {
		return errors.New("signer: not configured as a guardian")
	}
	tc, err := mtls.ClientConfigFor(s.cfg.TLS, func(id string) error {
		if !slices.Contains(s.cfg.Coordinators, id) {
			return fmt.Errorf("%s is not an allowed coordinator", id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(g.Coordinator,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return fmt.Errorf("guardian: %w", err)
	}
	defer conn.Close()
	client := signv1.NewGuardianServiceClient(conn)
	maxWait := time.Duration(g.ReconnectMax)
	if maxWait == 0 {
		maxWait = 30 * time.Second
	}
	wait := 100 * time.Millisecond
	for {
		start := time.Now()
		err := s.guardianSession(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			wait = 100 * time.Millisecond // it was up for a while: start over
		}
		s.log.Warn("guardian stream ended; reconnecting", "coordinator", g.Coordinator, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		}
		wait = min(wait*2, maxWait)
	}
}

// guardianSession runs one stream: hello, then each call in its own
// goroutine (a Sign must not wait behind an Approve), answers serialised.
func (s *Server) guardianSession(ctx context.Context, client signv1.GuardianServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Connect(ctx)
	if err != nil {
		return err
	}
	var sendMu sync.Mutex
	send := func(m *signv1.ConnectRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Hello{Hello: &signv1.GuardianHello{SignerId: uint32(s.cfg.ID)}}}); err != nil {
		return err
	}
	s.log.Info("guardian connected", "coordinator", s.cfg.Guardian.Coordinator, "id", s.cfg.ID)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		call, err := stream.Recv()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans := s.answer(ctx, call)
			ans.CallId = call.GetCallId()
			if err := send(ans); err != nil {
				s.log.Debug("guardian: answer not sent", "call", call.GetCallId(), "err", err)
			}
		}()
	}
}

// reply makes call in with f and wraps f's answer for the stream.
func reply[Q, R any](ctx context.Context, f func(context.Context, Q) (R, error), in Q, wrap func(R) *signv1.ConnectRequest) (*signv1.ConnectRequest, error) {
	r, err := f(ctx, in)
	if err != nil {
		return nil, err
	}
	return wrap(r), nil
}

// answer serves one call from the coordinator.
func (s *Server) answer(ctx context.Context, call *signv1.ConnectResponse) *signv1.ConnectRequest {
	var (
		ans *signv1.ConnectRequest
		err error
	)
	switch c := call.GetCall().(type) {
	case *signv1.ConnectResponse_Info:
		ans, err = reply(ctx, s.Info, c.Info, func(r *signv1.InfoResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Info{Info: r}}
		})
	case *signv1.ConnectResponse_Commit:
		ans, err = reply(ctx, s.Commit, c.Commit, func(r *signv1.CommitResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Commit{Commit: r}}
		})
	case *signv1.ConnectResponse_Sign:
		ans, err = reply(ctx, s.Sign, c.Sign, func(r *signv1.SignResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Sign{Sign: r}}
		})
	case *signv1.ConnectResponse_Approve:
		ans, err = reply(ctx, s.Approve, c.Approve, func(r *signv1.ApproveResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Approve{Approve: r}}
		})
	case *signv1.ConnectResponse_CeremonyBegin:
		ans, err = reply(ctx, s.ceremony.Begin, c.CeremonyBegin, func(r *ceremonyv1.BeginResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyBegin{CeremonyBegin: r}}
		})
	case *signv1.ConnectResponse_CeremonyExchange:
		ans, err = reply(ctx, s.ceremony.Exchange, c.CeremonyExchange, func(r *ceremonyv1.ExchangeResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyExchange{CeremonyExchange: r}}
		})
	case *signv1.ConnectResponse_CeremonyFinish:
		ans, err = reply(ctx, s.ceremony.Finish, c.CeremonyFinish, func(r *ceremonyv1.FinishResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyFinish{CeremonyFinish: r}}
		})
	case *signv1.ConnectResponse_CeremonyCommit:
		ans, err = reply(ctx, s.ceremony.Commit, c.CeremonyCommit, func(r *ceremonyv1.CommitResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyCommit{CeremonyCommit: r}}
		})
	case *signv1.ConnectResponse_CeremonyAbort:
		ans, err = reply(ctx, s.ceremony.Abort, c.CeremonyAbort, func(r *ceremonyv1.AbortResponse) *signv1.ConnectRequest {
			return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyAbort{CeremonyAbort: r}}
		})
	default:
		err = status.Error(codes.Unimplemented, "unknown call")
	}
	if err != nil {
		st, _ := status.FromError(err)
		ce := &signv1.CallError{Code: uint32(st.Code()), Message: st.Message()}
		for _, d := range st.Details() {
			if b, ok := d.(*ceremonyv1.Blame); ok {
				ce.Blame = b
			}
		}
		return &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Error{Error: ce}}
	}
	return ans
}
