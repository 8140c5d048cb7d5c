package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/frostmint/frostmint/coordinator/coordinatortest"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
)

type fixture struct {
	c     *coordinatortest.Cluster
	group *frost.Group
	kid   string
	hash  string
	key   crypto.Signer
	chain [][]byte
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, coordinatortest.Options{N: 3, T: 2})
}

func newFixtureWith(t *testing.T, o coordinatortest.Options) *fixture {
	c := coordinatortest.Start(t, o)
	kids, err := keydir.List(c.Signers[1].Config.KeysDir, true)
	if err != nil || len(kids) != 1 {
		t.Fatalf("keys: %v %v", kids, err)
	}
	g, err := keydir.ReadGroup(c.Signers[1].Config.KeysDir, kids[0])
	if err != nil {
		t.Fatal(err)
	}
	kid, err := jwks.KeyID(g.Public().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Signers[1].Server.Info(context.Background(), &signv1.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(c.Caller.Cert, c.Caller.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, group: g, kid: kid, hash: info.GetPolicyHash(), key: kp.PrivateKey.(crypto.Signer), chain: kp.Certificate}
}

// req is a genuine certificate caller's request for scope "read".
func (f *fixture) req(t *testing.T, scopes ...string) *mintv1.MintRequest {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"read"}
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now().Truncate(time.Second)
	sig, err := evidence.SignRequest(evidence.Request{Audience: "aud", Scopes: scopes, Nonce: nonce, Timestamp: now}, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return &mintv1.MintRequest{Audience: "aud", Scopes: scopes, Nonce: nonce, RequestedAt: timestamppb.New(now),
		Evidence: &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{Chain: f.chain, Signature: sig}}}
}

func (f *fixture) sign(t *testing.T, msg []byte, req *mintv1.MintRequest) error {
	_, err := f.c.Signers[1].Server.Sign(context.Background(), &signv1.SignRequest{Message: msg,
		CommitmentList: f.list(t), CallerRequest: req, PolicyHash: f.hash})
	return err
}

// list gets one fresh commitment from signers 1 and 2 (directly, no TLS).
func (f *fixture) list(t *testing.T) []byte {
	t.Helper()
	var cs []frost.Commitment
	for _, id := range []uint16{1, 2} {
		r, err := f.c.Signers[id].Server.Commit(context.Background(), &signv1.CommitRequest{Count: 1, KeyId: f.kid})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := f.group.DecodeCommitment(r.GetCommitments()[0])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, cm)
	}
	l, err := f.group.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func enc(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (f *fixture) msg(mutate func(h, c map[string]any)) []byte {
	now := time.Now().Unix()
	h := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": f.kid}
	c := map[string]any{"iss": f.c.Issuer, "sub": coordinatortest.CallerID, "client_id": coordinatortest.CallerID,
		"aud": "aud", "scope": "read", "iat": now, "nbf": now, "exp": now + 300, "jti": randomID()}
	if mutate != nil {
		mutate(h, c)
	}
	return []byte(enc(h) + "." + enc(c))
}

func TestSignChecksTheMessageItself(t *testing.T) {
	f := newFixture(t)
	now := time.Now().Unix()
	for _, tc := range []struct {
		name string
		msg  []byte
		code codes.Code
	}{
		{"valid token", f.msg(nil), codes.OK},
		{"not a token", []byte("pay 1000 to mallory"), codes.InvalidArgument},
		{"ttl above hard cap", f.msg(func(h, c map[string]any) { c["exp"] = now + 16*60 }), codes.PermissionDenied},
		{"other key id", f.msg(func(h, c map[string]any) { h["kid"] = "other" }), codes.PermissionDenied},
		{"other issuer", f.msg(func(h, c map[string]any) { c["iss"] = "https://evil.example" }), codes.PermissionDenied},
		{"subject not the caller", f.msg(func(h, c map[string]any) { c["sub"] = "spiffe://dev.frostmint.local/root" }), codes.PermissionDenied},
		{"scope not requested", f.msg(func(h, c map[string]any) { c["scope"] = "read write" }), codes.PermissionDenied},
		{"audience not requested", f.msg(func(h, c map[string]any) { c["aud"] = "other" }), codes.PermissionDenied},
		{"issued in the future", f.msg(func(h, c map[string]any) { c["iat"], c["nbf"], c["exp"] = now+600, now+600, now+900 }), codes.PermissionDenied},
		{"issued long ago", f.msg(func(h, c map[string]any) { c["iat"], c["nbf"], c["exp"] = now-600, now-600, now-300 }), codes.PermissionDenied},
		{"alg none", f.msg(func(h, c map[string]any) { h["alg"] = "none" }), codes.InvalidArgument},
		{"extra header", f.msg(func(h, c map[string]any) { h["jku"] = "https://evil.example/jwks" }), codes.InvalidArgument},
		{"unknown claim", f.msg(func(h, c map[string]any) { c["admin"] = true }), codes.InvalidArgument},
		{"missing jti", f.msg(func(h, c map[string]any) { delete(c, "jti") }), codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.sign(t, tc.msg, f.req(t))
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestNonceSingleUse(t *testing.T) {
	f := newFixture(t)
	s := f.c.Signers[1].Server
	l := f.list(t)
	if _, err := s.Sign(context.Background(), &signv1.SignRequest{Message: f.msg(nil), CommitmentList: l, CallerRequest: f.req(t), PolicyHash: f.hash}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Sign(context.Background(), &signv1.SignRequest{Message: f.msg(nil), CommitmentList: l, CallerRequest: f.req(t), PolicyHash: f.hash})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("reused nonce: got %v, want Aborted", err)
	}
}

func TestEvidenceMintsOneToken(t *testing.T) {
	f := newFixture(t)
	req := f.req(t)
	first := f.msg(nil)
	if err := f.sign(t, first, req); err != nil {
		t.Fatal(err)
	}
	if err := f.sign(t, first, req); err != nil {
		t.Fatalf("a retry of the same token must pass: %v", err)
	}
	if err := f.sign(t, f.msg(nil), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("same evidence, another token: got %v, want Unauthenticated", err)
	}
}

func TestPolicyMismatchIsNamed(t *testing.T) {
	f := newFixture(t)
	_, err := f.c.Signers[1].Server.Sign(context.Background(), &signv1.SignRequest{Message: f.msg(nil),
		CommitmentList: f.list(t), CallerRequest: f.req(t), PolicyHash: "deadbeef"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v, want FailedPrecondition", err)
	}
}

func TestCommitBounds(t *testing.T) {
	f := newFixture(t)
	s := f.c.Signers[1].Server
	for _, n := range []uint32{0, signer.MaxCommitBatch + 1} {
		if _, err := s.Commit(context.Background(), &signv1.CommitRequest{Count: n, KeyId: f.kid}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("count %d: got %v", n, err)
		}
	}
	r, err := s.Commit(context.Background(), &signv1.CommitRequest{Count: signer.MaxCommitBatch, KeyId: f.kid})
	if err != nil || len(r.GetCommitments()) != signer.MaxCommitBatch {
		t.Fatalf("full batch: %v", err)
	}
}

func TestOnlyAllowedCoordinators(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		id   string
		code codes.Code
	}{
		{coordinatortest.CoordinatorID, codes.OK},
		{"spiffe://dev.frostmint.local/rogue-coordinator", codes.PermissionDenied},
		{coordinatortest.CallerID, codes.PermissionDenied},
	} {
		files, err := f.c.CA.Issue(dir, "x", mtls.Leaf{ID: tc.id, DNSNames: []string{"localhost"}, Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		tc2, err := mtls.ClientConfig(files)
		if err != nil {
			t.Fatal(err)
		}
		tc2.ServerName = "localhost"
		conn, err := grpc.NewClient(f.c.Signers[1].Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc2)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = signv1.NewSignerServiceClient(conn).Info(context.Background(), &signv1.InfoRequest{})
		conn.Close()
		if status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.id, err, tc.code)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := signer.Default().Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	c := signer.Default()
	c.ID, c.Listen, c.Issuer, c.KeysDir, c.Keystore = 1, "x", "i", "keys", "pkcs11:token=t;object=o?module-path=/m&pin-source=env:P"
	c.Callers.TrustBundle, c.AuditLog = "ca.pem", "audit.ndjson"
	c.TLS = mtls.Files{Cert: "c", Key: "k", CA: "a"}
	c.Coordinators = []string{"spiffe://td/coordinator"}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	c.Coordinators = []string{"https://not-spiffe"}
	if err := c.Validate(); err == nil {
		t.Fatal("non-SPIFFE coordinator accepted")
	}
	c.Coordinators = []string{"spiffe://td/coordinator"}
	c.Keystore = "file:?passphrase=env:P"
	if err := c.Validate(); err == nil {
		t.Fatal("file keystore accepted outside dev mode")
	}
	c.Dev = true
	if err := c.Validate(); err != nil {
		t.Fatalf("file keystore in dev mode: %v", err)
	}
	c.Listen = ""
	if err := c.Validate(); err == nil {
		t.Fatal("no listen address and not a guardian accepted")
	}
	c.Guardian = &signer.GuardianConfig{Coordinator: "127.0.0.1:1", Prompt: "maybe"}
	if err := c.Validate(); err == nil {
		t.Fatal("bad guardian prompt accepted")
	}
	c.Guardian.Prompt = "deny"
	if err := c.Validate(); err != nil {
		t.Fatalf("guardian: %v", err)
	}
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestApprovalRequired(t *testing.T) {
	f := newFixtureWith(t, coordinatortest.Options{N: 3, T: 2, SignerConfig: func(c *signer.Config) {
		c.Approvers = []string{coordinatortest.SignerIdentity(3)}
	}})
	dir := t.TempDir()
	issue := func(name, id string) ([][]byte, crypto.Signer) {
		files, err := f.c.CA.Issue(dir, name, mtls.Leaf{ID: id, Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Certificate, kp.PrivateKey.(crypto.Signer)
	}
	guardChain, guardKey := issue("guardian-3", coordinatortest.SignerIdentity(3))
	otherChain, otherKey := issue("signer-2", coordinatortest.SignerIdentity(2))
	prod := func(h, c map[string]any) { c["scope"] = "deploy:prod"; c["exp"] = c["iat"].(int64) + 300 }
	approve := func(msg []byte, chain [][]byte, key crypto.Signer, who string) *signv1.Approval {
		a, err := signer.SignApproval(3, chain, key, msg, who)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name      string
		approvals func(msg []byte) []*signv1.Approval
		code      codes.Code
	}{
		{"no approval", func([]byte) []*signv1.Approval { return nil }, codes.PermissionDenied},
		{"approval by a signer that is not an approver", func(m []byte) []*signv1.Approval {
			return []*signv1.Approval{approve(m, otherChain, otherKey, "eve@host")}
		}, codes.PermissionDenied},
		{"approval of another token", func([]byte) []*signv1.Approval {
			return []*signv1.Approval{approve(f.msg(prod), guardChain, guardKey, "ann@host")}
		}, codes.PermissionDenied},
		{"approver name altered", func(m []byte) []*signv1.Approval {
			a := approve(m, guardChain, guardKey, "ann@host")
			a.Approver = "bob@host"
			return []*signv1.Approval{a}
		}, codes.PermissionDenied},
		{"chain swapped for the approver's", func(m []byte) []*signv1.Approval {
			a := approve(m, otherChain, otherKey, "eve@host")
			a.CertChain = guardChain
			return []*signv1.Approval{a}
		}, codes.PermissionDenied},
		{"valid approval", func(m []byte) []*signv1.Approval {
			return []*signv1.Approval{approve(m, guardChain, guardKey, "ann@host")}
		}, codes.OK},
		{"a bogus approval before a valid one", func(m []byte) []*signv1.Approval {
			return []*signv1.Approval{approve(m, otherChain, otherKey, "eve@host"), approve(m, guardChain, guardKey, "ann@host")}
		}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := f.msg(prod)
			_, err := f.c.Signers[1].Server.Sign(context.Background(), &signv1.SignRequest{Message: msg,
				CommitmentList: f.list(t), CallerRequest: f.req(t, "deploy:prod"), PolicyHash: f.hash, Approvals: tc.approvals(msg)})
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	// A signer that is no guardian has nobody to ask.
	if _, err := f.c.Signers[1].Server.Approve(context.Background(), &signv1.ApproveRequest{Message: f.msg(prod)}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Approve on a plain signer: %v", err)
	}
}

func TestNoCoreDumps(t *testing.T) {
	newFixture(t)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Fatalf("RLIMIT_CORE = %+v after signer.New, want 0", lim)
	}
}
