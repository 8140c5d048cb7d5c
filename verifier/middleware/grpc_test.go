package middleware_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/token"
)

// identityHealth is a health service that answers SERVING with the
// caller's subject and route in its header metadata, and Internal if it
// finds no Identity.
type identityHealth struct {
	healthpb.UnimplementedHealthServer
}

func (identityHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, ok := middleware.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no identity")
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("sub", id.Subject, "route", id.Route)); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (identityHealth) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	id, ok := middleware.FromContext(s.Context())
	if !ok {
		return status.Error(codes.Internal, "no identity")
	}
	if err := s.SetHeader(metadata.Pairs("sub", id.Subject, "route", id.Route)); err != nil {
		return err
	}
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

// healthRules protect Check and Watch with scope read; List has no rule.
func healthRules(method string) (middleware.Route, bool) {
	switch method {
	case healthpb.Health_Check_FullMethodName:
		return middleware.Route{Scopes: []string{"read"}}, true
	case healthpb.Health_Watch_FullMethodName:
		return middleware.Route{Name: "watch", Scopes: []string{"read"}}, true
	}
	return middleware.Route{}, false
}

// startGRPC serves identityHealth behind m's interceptors on an in-memory
// listener and returns a client.
func startGRPC(t *testing.T, m *middleware.Middleware, rules middleware.MethodRules) healthpb.HealthClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(m.UnaryServerInterceptor(rules)),
		grpc.StreamInterceptor(m.StreamServerInterceptor(rules)),
	)
	healthpb.RegisterHealthServer(srv, identityHealth{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// call makes the RPC named method ("check", "watch" or "list") with md,
// and returns its header metadata and error.
func call(t *testing.T, c healthpb.HealthClient, method string, md metadata.MD) (metadata.MD, error) {
	t.Helper()
	ctx := metadata.NewOutgoingContext(t.Context(), md)
	var header metadata.MD
	switch method {
	case "check":
		resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("status %v", resp.GetStatus())
		}
		return header, err
	case "list":
		_, err := c.List(ctx, &healthpb.HealthListRequest{}, grpc.Header(&header))
		return header, err
	case "watch":
		s, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return nil, err
		}
		resp, err := s.Recv()
		header, _ = s.Header()
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("status %v", resp.GetStatus())
		}
		return header, err
	}
	t.Fatalf("no method %s", method)
	return nil, nil
}

func auth(tok string) metadata.MD { return metadata.Pairs("authorization", "Bearer "+tok) }

func TestGRPC(t *testing.T) {
	plain := newMiddleware(t, middleware.Options{})
	storeDown := newMiddleware(t, middleware.Options{Verifier: newVerifier(t, func(c *verifier.Config) { c.Replay = failingCache{} })})
	auditDown := newMiddleware(t, middleware.Options{Audit: &failingAuditor{}})
	clients := map[*middleware.Middleware]healthpb.HealthClient{
		plain:     startGRPC(t, plain, healthRules),
		storeDown: startGRPC(t, storeDown, healthRules),
		auditDown: startGRPC(t, auditDown, healthRules),
	}
	nilRules := startGRPC(t, plain, nil)

	type rpcCase struct {
		name   string
		m      *middleware.Middleware
		client healthpb.HealthClient // overrides m's
		md     func(t testing.TB) metadata.MD
		code   codes.Code
		reason string // the stable code at the start of the message
		route  string
	}
	cases := []rpcCase{
		{name: "allowed", m: plain, md: func(t testing.TB) metadata.MD { return auth(good(t)) }, code: codes.OK},
		{name: "allowed, scheme lower case", m: plain, code: codes.OK,
			md: func(t testing.TB) metadata.MD { return metadata.Pairs("authorization", "bearer "+good(t)) }},
		{name: "no token", m: plain, md: func(testing.TB) metadata.MD { return nil }, code: codes.Unauthenticated, reason: "missing_token"},
		{name: "two tokens", m: plain, code: codes.Unauthenticated, reason: "malformed",
			md: func(t testing.TB) metadata.MD {
				return metadata.Pairs("authorization", "Bearer "+good(t), "authorization", "Bearer "+good(t))
			}},
		{name: "expired", m: plain, code: codes.Unauthenticated, reason: "expired",
			md: func(t testing.TB) metadata.MD {
				return auth(good(t, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0-600, t0-600, t0-60 }))
			}},
		{name: "insufficient scope", m: plain, code: codes.PermissionDenied, reason: "insufficient_scope",
			md: func(t testing.TB) metadata.MD { return auth(good(t, func(c *token.Claims) { c.Scope = "write" })) }},
		{name: "bound token", m: plain, code: codes.Unauthenticated, reason: "binding_mismatch",
			md: func(t testing.TB) metadata.MD {
				return auth(good(t, func(c *token.Claims) {
					c.Binding = &binding.Binding{Method: "POST", Authority: "bufnet", Path: "/grpc.health.v1.Health/Check"}
				}))
			}},
		{name: "replay store down", m: storeDown, code: codes.Unavailable, reason: "replay_store_unavailable",
			md: func(t testing.TB) metadata.MD { return auth(good(t)) }},
		{name: "audit down", m: auditDown, code: codes.Unavailable, reason: "audit_unavailable",
			md: func(t testing.TB) metadata.MD { return auth(good(t)) }},
		{name: "nil rules", m: plain, client: nilRules, code: codes.Unauthenticated, reason: "no_rule",
			md: func(t testing.TB) metadata.MD { return auth(good(t)) }},
	}
	for _, method := range []string{"check", "watch"} {
		for _, tc := range cases {
			t.Run(method+"/"+tc.name, func(t *testing.T) {
				c := tc.client
				if c == nil {
					c = clients[tc.m]
				}
				header, err := call(t, c, method, tc.md(t))
				if got := status.Code(err); got != tc.code {
					t.Fatalf("code %v (%v), want %v", got, err, tc.code)
				}
				if rid := header.Get("x-request-id"); len(rid) != 1 || !middleware.ValidRequestID(rid[0]) {
					t.Errorf("x-request-id %q", rid)
				}
				if tc.code == codes.OK {
					wantRoute := healthpb.Health_Check_FullMethodName
					if method == "watch" {
						wantRoute = "watch"
					}
					if sub, route := header.Get("sub"), header.Get("route"); len(sub) != 1 || sub[0] != "alice" || len(route) != 1 || route[0] != wantRoute {
						t.Errorf("handler saw sub %q route %q", sub, route)
					}
					return
				}
				// The message is fixed: the stable code and its message.
				if msg, want := status.Convert(err).Message(), tc.reason+": "+middleware.Message(tc.reason); msg != want {
					t.Errorf("message %q, want %q", msg, want)
				}
			})
		}
	}

	t.Run("no rule", func(t *testing.T) {
		_, err := call(t, clients[plain], "list", auth(good(t)))
		if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "no_rule: "+middleware.Message("no_rule") {
			t.Fatalf("List = %v, want Unauthenticated no_rule", err)
		}
	})
	t.Run("request id kept", func(t *testing.T) {
		md := auth(good(t))
		md.Set("x-request-id", "rpc-1")
		header, err := call(t, clients[plain], "check", md)
		if err != nil || len(header.Get("x-request-id")) != 1 || header.Get("x-request-id")[0] != "rpc-1" {
			t.Fatalf("x-request-id %q, err %v", header.Get("x-request-id"), err)
		}
	})
	t.Run("replayed", func(t *testing.T) {
		tok := good(t)
		if _, err := call(t, clients[plain], "check", auth(tok)); err != nil {
			t.Fatal(err)
		}
		_, err := call(t, clients[plain], "watch", auth(tok))
		if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "replayed: "+middleware.Message("replayed") {
			t.Fatalf("second use = %v, want Unauthenticated replayed", err)
		}
	})
}

func TestGRPCAudit(t *testing.T) {
	log := openLog(t)
	m := newMiddleware(t, middleware.Options{Audit: log})
	c := startGRPC(t, m, healthRules)
	tok := good(t)
	md := auth(tok)
	md.Set("x-request-id", "rpc-allow")
	if _, err := call(t, c, "watch", md); err != nil {
		t.Fatal(err)
	}
	md.Set("x-request-id", "rpc-replay")
	if _, err := call(t, c, "check", md); status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	md.Set("x-request-id", "rpc-norule")
	if _, err := call(t, c, "list", md); status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	recs, err := audit.ReadAll(log.Path())
	if err != nil {
		t.Fatal(err)
	}
	type short struct{ rid, decision, code, route, sub string }
	want := []short{
		{"rpc-allow", "allow", "", "watch", "alice"},
		{"rpc-replay", "deny", "replayed", healthpb.Health_Check_FullMethodName, ""},
		{"rpc-norule", "deny", "no_rule", healthpb.Health_List_FullMethodName, ""},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	for i, r := range recs {
		if got := (short{r.RequestID, r.Decision, r.Code, r.Route, r.Subject}); got != want[i] || r.Daemon != "verifier" {
			t.Errorf("record %d = %+v, want %+v", i, r, want[i])
		}
	}
}

// TestGRPCRequireBinding: a gRPC route that requires binding refuses every
// call, bound or not.
func TestGRPCRequireBinding(t *testing.T) {
	m := newMiddleware(t, middleware.Options{})
	c := startGRPC(t, m, func(string) (middleware.Route, bool) {
		return middleware.Route{Scopes: []string{"read"}, RequireBinding: true}, true
	})
	for _, tok := range []string{
		good(t),
		good(t, func(c *token.Claims) {
			c.Binding = &binding.Binding{Method: "POST", Authority: "bufnet", Path: healthpb.Health_Check_FullMethodName}
		}),
	} {
		_, err := call(t, c, "check", auth(tok))
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.Unauthenticated ||
			msg != "binding_required: "+middleware.Message("binding_required") && msg != "binding_mismatch: "+middleware.Message("binding_mismatch") {
			t.Errorf("Check = %v, want Unauthenticated binding_required or binding_mismatch", err)
		}
	}
}
