package middleware

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
)

// MethodRules returns the route of a gRPC method, named by its full name
// ("/package.Service/Method"), and true; or false when it has none.
//
// The interceptors fail closed: a method for which the rules return false
// is refused with Unauthenticated "no_rule: No rule for this method.", as
// is every method when the rules are nil. To serve a method without a
// token, leave it out of the interceptor (grpc.ChainUnaryInterceptor with
// a selector), not out of the rules.
type MethodRules func(fullMethod string) (Route, bool)

// errNoRule: the method has no route.
var errNoRule = errors.New("middleware: no rule for this method")

// errGRPCBinding is the error of a bound token on gRPC, where request
// binding (package binding) is not defined: it wraps binding.ErrMismatch,
// so the token is refused with binding_mismatch.
var errGRPCBinding = fmt.Errorf("%w: request binding does not apply to gRPC", binding.ErrMismatch)

// UnaryServerInterceptor returns an interceptor that runs a unary handler
// only when the call's token passes the checks of the method's route (see
// [MethodRules]), with the [Identity] in the handler's context.
//
// The token is the one "authorization" metadata value "Bearer <token>".
// Request binding does not apply to gRPC: a token bound to a request is
// refused (binding_mismatch), and a route with RequireBinding refuses every
// call. The request id is the one "x-request-id" metadata value if it is
// [ValidRequestID], else a fresh one; it is sent back as "x-request-id"
// header metadata. The decision is audited as over HTTP, with the route
// named by Route.Name or else the full method.
//
// A refusal is a status error with a fixed message "<code>: <message>" and
// the code's gRPC code ([verifier.Code.GRPCCode]): Unauthenticated,
// PermissionDenied (insufficient_scope) or Unavailable (replay store or
// audit log); Unauthenticated for missing_token and no_rule, Internal for
// an unexpected error.
func (m *Middleware) UnaryServerInterceptor(rules MethodRules) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := m.authenticateRPC(ctx, rules, info.FullMethod, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) })
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the streaming counterpart of
// [Middleware.UnaryServerInterceptor], with the same checks, answers and
// audit. The handler's stream is wrapped so that its Context carries the
// [Identity].
func (m *Middleware) StreamServerInterceptor(rules MethodRules) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := m.authenticateRPC(ss.Context(), rules, info.FullMethod, ss.SetHeader)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

// identityStream is a ServerStream whose context carries the Identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// authenticateRPC checks the call of method in ctx and returns ctx with
// the Identity and request id, or a status error.
func (m *Middleware) authenticateRPC(ctx context.Context, rules MethodRules, method string, setHeader func(metadata.MD) error) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rid := ""
	if v := md.Get("x-request-id"); len(v) == 1 && ValidRequestID(v[0]) {
		rid = v[0]
	} else {
		rid = newRequestID()
	}
	// Only fails once headers are sent, which they are not yet; the id is
	// a convenience, not a check.
	_ = setHeader(metadata.Pairs("x-request-id", rid))

	var (
		rt  Route
		ok  bool
		id  *Identity
		err error
	)
	if rules != nil {
		rt, ok = rules(method)
	}
	name := rt.Name
	if name == "" {
		name = method
	}
	if !ok {
		err = errNoRule
	} else {
		id, err = m.checkRoute(ctx, rt, md.Get("authorization"), func(binding.Binding) error { return errGRPCBinding })
	}
	if err := m.record(ctx, rid, name, id, err); err != nil {
		return ctx, rpcError(err)
	}
	ctx = context.WithValue(ctx, requestIDKey{}, rid)
	return context.WithValue(ctx, identityKey{}, id), nil
}

// rpcError is the status error for an error of the checks.
func rpcError(err error) error {
	code := codeOf(err)
	var c codes.Code
	switch code {
	case CodeMissingToken, CodeNoRule:
		c = codes.Unauthenticated
	case CodeAuditUnavailable:
		c = codes.Unavailable
	case CodeInternal:
		c = codes.Internal
	default:
		c = verifier.Code(code).GRPCCode()
		if c == codes.OK { // a code the verifier does not map: a refusal still
			c = codes.Unauthenticated
		}
	}
	return status.Error(c, code+": "+Message(code))
}
