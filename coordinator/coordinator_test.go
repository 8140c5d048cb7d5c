package coordinator_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	"github.com/frostmint/frostmint/policy"
	"github.com/frostmint/frostmint/policy/limit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

func verifierFor(t *testing.T, c *coordinatortest.Cluster, aud string) *verifier.Verifier {
	t.Helper()
	keys, err := jwks.Load(context.Background(), c.Issuer+"/.well-known/jwks.json", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Config{Issuers: []verifier.Issuer{{Issuer: c.Issuer, Keys: keys}}, Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestMintAndVerify(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	v := verifierFor(t, c, "https://api.example.com")
	cl := c.Client(t)
	for i := 0; i < 5; i++ {
		resp, err := cl.Mint(ctx(t), "https://api.example.com", []string{"read", "write"}, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := v.Verify(ctx(t), resp.GetToken(), "read", "write")
		if err != nil {
			t.Fatal(err)
		}
		if claims.Subject != coordinatortest.CallerID || claims.TTL() != 2*time.Minute || claims.ID != resp.GetTokenId() {
			t.Fatalf("claims %+v", claims)
		}
		if len(resp.GetSignerIds()) != 2 {
			t.Fatalf("signers %v", resp.GetSignerIds())
		}
	}
}

func TestConcurrentMints(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Config: func(cc *coordinator.Config) {
		cc.Limits = limit.Config{} // this test is about concurrency, not limits
	}})
	v := verifierFor(t, c, "aud")
	cl := c.Client(t)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.Mint(context.Background(), "aud", []string{"read"}, 0)
			if err != nil {
				t.Error(err)
				failed.Add(1)
				return
			}
			if _, err := v.Verify(context.Background(), resp.GetToken(), "read"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestRequestErrors(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	cl := c.Client(t)
	raw := rawClient(t, c)
	for _, tc := range []struct {
		name   string
		aud    string
		scopes []string
		ttl    time.Duration
		code   codes.Code
	}{
		{"ttl above cap", "aud", []string{"read"}, 16 * time.Minute, codes.InvalidArgument},
		{"ttl fractional", "aud", []string{"read"}, 1500 * time.Millisecond, codes.InvalidArgument},
		{"no audience", "", []string{"read"}, 0, codes.InvalidArgument},
		{"audience with space", "a b", []string{"read"}, 0, codes.InvalidArgument},
		{"no scopes", "aud", nil, 0, codes.InvalidArgument},
		{"repeated scope", "aud", []string{"read", "read"}, 0, codes.InvalidArgument},
		{"scope not granted", "aud", []string{"admin:all"}, 0, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Sent raw: the client library refuses such requests itself.
			req := &mintv1.MintRequest{Audience: tc.aud, Scopes: tc.scopes}
			if tc.ttl != 0 {
				req.Ttl = durationpb.New(tc.ttl)
			}
			var err error
			if tc.code == codes.InvalidArgument {
				_, err = raw.Mint(ctx(t), req)
			} else {
				_, err = cl.Mint(ctx(t), tc.aud, tc.scopes, tc.ttl)
			}
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	t.Run("no evidence", func(t *testing.T) {
		_, err := raw.Mint(ctx(t), &mintv1.MintRequest{Audience: "aud", Scopes: []string{"read"}})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("got %v, want Unauthenticated", err)
		}
	})
}

// rawClient talks to the Mint API as the test caller without the client
// library's own checks.
func rawClient(t *testing.T, c *coordinatortest.Cluster) mintv1.MintServiceClient {
	tc, err := mtls.ClientConfig(c.Caller)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.CoordAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return mintv1.NewMintServiceClient(conn)
}

func TestRateLimits(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Config: func(cc *coordinator.Config) {
		cc.Limits = limit.Config{PerIdentity: limit.Rate{PerSecond: 0.01, Burst: 3}}
	}})
	cl := c.Client(t)
	for i := 0; i < 3; i++ {
		if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the limit: got %v, want ResourceExhausted", err)
	}
}

// policyFunc adapts a function to coordinator.Policy and signer.Policy.
type policyFunc func(context.Context, policy.Input) (policy.Decision, error)

func (f policyFunc) Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error) {
	return f(ctx, in)
}

func (f policyFunc) Hash() string { return "test-policy" }

func TestPolicyOutcomes(t *testing.T) {
	var mu sync.Mutex
	var dec policy.Decision
	var perr error
	var seen policy.Input
	set := func(d policy.Decision, err error) {
		mu.Lock()
		dec, perr = d, err
		mu.Unlock()
	}
	p := policyFunc(func(_ context.Context, in policy.Input) (policy.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		if in.SignerID == 0 {
			seen = in
		}
		return dec, perr
	})
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2,
		CoordinatorOptions: []coordinator.Option{coordinator.WithPolicy(p)},
		SignerOptions:      []signer.Option{signer.WithPolicy(p)}})
	cl := c.Client(t)

	set(policy.Decision{Allow: false, Reasons: []string{"nope"}}, nil)
	_, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "nope") {
		t.Fatalf("deny: %v", err)
	}
	mu.Lock()
	in := seen
	mu.Unlock()
	if in.Caller.Subject != coordinatortest.CallerID || in.Request.Audience != "aud" || in.Request.TTL != token.DefaultTTL || in.Caller.Kind != "x509-svid" {
		t.Fatalf("policy input %+v", in)
	}

	set(policy.Decision{}, errors.New("boom"))
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.Internal {
		t.Fatalf("policy error must refuse: %v", err)
	}

	set(policy.Decision{Allow: true, RequiresApproval: true}, nil)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("approval without guardians must refuse: %v", err)
	}

	set(policy.Decision{Allow: true, MaxTTL: time.Minute}, nil)
	resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := token.ParseCompact(resp.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	if p2.Claims.TTL() != time.Minute {
		t.Fatalf("policy max TTL not applied to the default: %s", p2.Claims.TTL())
	}
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 2*time.Minute); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("explicit TTL above the policy max: %v", err)
	}
}

// badShares makes a signer return a valid-looking but wrong share.
type badShares struct {
	*signer.Server
	calls atomic.Int32
}

func (b *badShares) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	b.calls.Add(1)
	resp, err := b.Server.Sign(ctx, req)
	if err != nil {
		return nil, err
	}
	// A valid-looking but wrong share: change the low byte of the scalar
	// (after the 1-byte group and 2-byte id), which stays canonical.
	resp.SignatureShare[3] ^= 0x01
	return resp, nil
}

func TestBadShareSignerIsLeftOut(t *testing.T) {
	bad := map[uint16]*badShares{}
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Wrap: func(id uint16, s *signer.Server) signv1.SignerServiceServer {
		if id == 2 {
			bad[id] = &badShares{Server: s}
			return bad[id]
		}
		return s
	}})
	v := verifierFor(t, c, "aud")
	cl := c.Client(t)
	for i := 0; i < 4; i++ {
		resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
		if err != nil {
			t.Fatalf("mint %d with a misbehaving signer: %v", i, err)
		}
		for _, id := range resp.GetSignerIds() {
			if id == 2 {
				t.Fatal("a token was signed with the misbehaving signer's share")
			}
		}
		if _, err := v.Verify(ctx(t), resp.GetToken()); err != nil {
			t.Fatal(err)
		}
	}
	if bad[2].calls.Load() == 0 {
		t.Skip("the misbehaving signer was never picked") // pools are ordered; see next check
	}
	st, err := cl.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.GetSigners() {
		if s.GetId() == 2 && s.GetHealthy() {
			t.Fatal("signer 2 returned a bad share but is reported healthy")
		}
	}
}

// slow makes a signer answer Sign after the coordinator's deadline.
type slow struct{ *signer.Server }

func (s slow) Sign(ctx context.Context, req *signv1.SignRequest) (*signv1.SignResponse, error) {
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
	}
	return s.Server.Sign(ctx, req)
}

func TestSlowSignerIsLeftOut(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2, Wrap: func(id uint16, s *signer.Server) signv1.SignerServiceServer {
		if id == 1 {
			return slow{s}
		}
		return s
	}})
	cl := c.Client(t)
	for i := 0; i < 3; i++ {
		resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
		if err != nil {
			t.Fatalf("mint with a slow signer: %v", err)
		}
		if got := resp.GetSignerIds(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
			t.Fatalf("signers %v, want [2 3]", got)
		}
	}
}

func TestQuorumLossAndRejoin(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	cl := c.Client(t)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatal(err)
	}
	c.StopSigner(3)
	if _, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0); err != nil {
		t.Fatalf("one signer down: %v", err)
	}
	c.StopSigner(2)
	start := time.Now()
	_, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no quorum") {
		t.Fatalf("two signers down: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("quorum failure took %s", time.Since(start))
	}
	// Restarted signers hold none of their old nonces; the coordinator's
	// pools for them are stale and must be dropped, not retried forever.
	c.StartSigner(t, 2)
	c.StartSigner(t, 3)
	c.StopSigner(1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted signers never rejoined: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConfigValidateReportsEverything(t *testing.T) {
	err := coordinator.Config{}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	// errors.Join: one line per problem.
	if n := strings.Count(err.Error(), "\n") + 1; n < 6 {
		t.Fatalf("only %d problems reported: %v", n, err)
	}
	c := coordinator.Default()
	c.MaxTTL = coordinator.Duration(20 * time.Minute)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max_ttl") {
		t.Fatalf("max_ttl above the hard cap: %v", err)
	}
}

func TestLoadConfigRejectsUnknownKeys(t *testing.T) {
	p := t.TempDir() + "/c.json"
	if err := writeFile(p, `{"listen":"x","lsiten":"y"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.LoadConfig(p); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestRequestBindingInToken(t *testing.T) {
	c := coordinatortest.Start(t, coordinatortest.Options{N: 3, T: 2})
	cl := c.Client(t)
	b := binding.Binding{Method: "POST", Authority: "api.example.com", Path: "/v1/pay", BodySHA256: binding.BodyHash([]byte(`{"amount":1}`))}
	resp, err := cl.Mint(ctx(t), "aud", []string{"read"}, 0, client.WithBinding(b))
	if err != nil {
		t.Fatal(err)
	}
	p, err := token.ParseCompact(resp.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	if p.Claims.Binding == nil || *p.Claims.Binding != b {
		t.Fatalf("req claim %+v, want %+v", p.Claims.Binding, b)
	}
	// A binding that is not canonical is refused before anything is signed.
	_, err = cl.Mint(ctx(t), "aud", []string{"read"}, 0, client.WithBinding(binding.Binding{Method: "post", Authority: "x", Path: "/"}))
	if err == nil {
		t.Fatal("non-canonical binding accepted")
	}
}
