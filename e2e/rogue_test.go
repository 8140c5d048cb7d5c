package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/policy/audit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/evidence/oidctest"
)

// rogue is a test process holding the coordinator's real mTLS credentials:
// what a coordinator that has been taken over can do.
type rogue struct {
	t          *testing.T
	signers    map[uint16]signv1.SignerServiceClient
	group      *frost.Group
	kid        string
	policyHash string
	callerKey  crypto.Signer
	callerCert [][]byte
}

func newRogue(t *testing.T) *rogue {
	t.Helper()
	r := &rogue{t: t, signers: map[uint16]signv1.SignerServiceClient{}}
	for _, s := range cluster.Signers {
		f := filesOf("coordinator")
		r.signers[s.ID] = signv1.NewSignerServiceClient(dialAs(t, s.Addr, &f, ""))
	}
	info, err := r.signers[1].Info(context.Background(), &signv1.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r.policyHash = info.GetPolicyHash()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	json.Unmarshal(fetchJWKS(t), &set)
	r.kid = set.Keys[0].Kid
	if r.group, err = keydir.ReadGroup(filepath.Join(dir, "keys", "coordinator"), r.kid); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(filesOf("caller").Cert, filesOf("caller").Key)
	if err != nil {
		t.Fatal(err)
	}
	r.callerKey, r.callerCert = kp.PrivateKey.(crypto.Signer), kp.Certificate
	return r
}

// certRequest is a genuine request by the dev caller, signed with its key.
func (r *rogue) certRequest(aud string, scopes []string, ttl time.Duration, at time.Time) *mintv1.MintRequest {
	return r.boundRequest(aud, scopes, ttl, at, nil)
}

// boundRequest is certRequest with an optional request binding.
func (r *rogue) boundRequest(aud string, scopes []string, ttl time.Duration, at time.Time, b *binding.Binding) *mintv1.MintRequest {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	at = at.Truncate(time.Second)
	er := evidence.Request{Audience: aud, Scopes: scopes, TTLSeconds: int64(ttl / time.Second), Nonce: nonce, Timestamp: at, Binding: b}
	sig, err := evidence.SignRequest(er, r.callerKey)
	if err != nil {
		r.t.Fatal(err)
	}
	req := &mintv1.MintRequest{Audience: aud, Scopes: scopes, Nonce: nonce, RequestedAt: timestamppb.New(at),
		Evidence: &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{Chain: r.callerCert, Signature: sig}}}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	if b != nil {
		req.Binding = &mintv1.RequestBinding{Method: b.Method, Authority: b.Authority, Path: b.Path, BodySha256: b.BodySHA256}
	}
	return req
}

func (r *rogue) oidcRequest(tok, aud string, scopes []string) *mintv1.MintRequest {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	return &mintv1.MintRequest{Audience: aud, Scopes: scopes, Nonce: nonce, RequestedAt: timestamppb.Now(),
		Evidence: &mintv1.MintRequest_OidcToken{OidcToken: tok}}
}

// message is a token signing input for req's caller, adjusted by mutate.
func (r *rogue) message(sub string, req *mintv1.MintRequest, mutate func(h, c map[string]any)) []byte {
	now := time.Now().Unix()
	ttl := int64(300)
	if req.GetTtl() != nil {
		ttl = int64(req.GetTtl().AsDuration() / time.Second)
	}
	jti := make([]byte, 32)
	rand.Read(jti)
	h := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": r.kid}
	c := map[string]any{"iss": cluster.Issuer, "sub": sub, "client_id": sub, "aud": req.GetAudience(),
		"scope": strings.Join(req.GetScopes(), " "), "iat": now, "nbf": now, "exp": now + ttl,
		"jti": base64.RawURLEncoding.EncodeToString(jti)}
	if mutate != nil {
		mutate(h, c)
	}
	return rawSigningInput(r.t, h, c)
}

// sign asks signer id for a share, with a fresh commitment list of id and
// a partner; rid tags the request in the audit log.
func (r *rogue) sign(id uint16, rid string, msg []byte, req *mintv1.MintRequest, policyHash string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	partner := uint16(1)
	if id == 1 {
		partner = 2
	}
	var cs []frost.Commitment
	for _, s := range []uint16{id, partner} {
		resp, err := r.signers[s].Commit(ctx, &signv1.CommitRequest{Count: 1, KeyId: r.kid})
		if err != nil {
			r.t.Fatal(err)
		}
		c, err := r.group.DecodeCommitment(resp.GetCommitments()[0])
		if err != nil {
			r.t.Fatal(err)
		}
		cs = append(cs, c)
	}
	list, err := r.group.EncodeList(cs)
	if err != nil {
		r.t.Fatal(err)
	}
	_, err = r.signers[id].Sign(ctx, &signv1.SignRequest{Message: msg, CommitmentList: list, RequestId: rid,
		CallerRequest: req, PolicyHash: policyHash})
	return err
}

func rawSigningInput(t *testing.T, h map[string]any, c map[string]any) []byte {
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	return []byte(base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb))
}

// deniedInAudit reports whether signer id's audit log holds a deny for rid
// with the given reason code.
func deniedInAudit(t *testing.T, id uint16, rid, code string) bool {
	t.Helper()
	// The log is live: a read may catch an append half-way; try again.
	var recs []audit.Record
	var err error
	for i := 0; i < 20; i++ {
		if recs, err = audit.ReadAll(cluster.Signers[id-1].AuditLog); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("signer %d audit log: %v", id, err)
	}
	for _, r := range recs {
		if r.RequestID == rid && r.Decision == "deny" && r.Code == code {
			return true
		}
	}
	return false
}

// TestRogueCoordinator: a process with valid coordinator credentials asks
// every real signer for what the caller's evidence does not allow. Every
// signer refuses, and records the refusal in its own audit log.
func TestRogueCoordinator(t *testing.T) {
	r := newRogue(t)
	caller := devcluster.CallerID
	now := time.Now()
	forger, err := oidctest.Start("RS256")
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()

	type tc struct {
		name string
		msg  func() ([]byte, *mintv1.MintRequest)
		hash string
		code codes.Code
		why  string
	}
	cases := []tc{
		{"another subject than the evidence proves", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			return r.message("spiffe://dev.frostmint.local/team/payments/admin", req, nil), req
		}, "", codes.PermissionDenied, "token_mismatch"},
		{"a scope the policy denies", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"admin:all"}, 0, now)
			return r.message(caller, req, nil), req
		}, "", codes.PermissionDenied, "policy_denied"},
		{"a scope the caller did not ask for", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			return r.message(caller, req, func(h, c map[string]any) { c["scope"] = "read write" }), req
		}, "", codes.PermissionDenied, "token_mismatch"},
		{"a TTL over the cap", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			return r.message(caller, req, func(h, c map[string]any) { c["exp"] = c["iat"].(int64) + 20*60 }), req
		}, "", codes.PermissionDenied, "token_refused"},
		{"expired certificate proof", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now.Add(-10*time.Minute))
			return r.message(caller, req, nil), req
		}, "", codes.Unauthenticated, "evidence_expired"},
		{"expired OIDC token", func() ([]byte, *mintv1.MintRequest) {
			tok, err := github.Sign(map[string]any{"iss": github.URL, "aud": oidcAudience, "sub": "repo:frostmint/demo:ref:refs/heads/main",
				"repository": "frostmint/demo", "ref": "refs/heads/main", "iat": now.Add(-2 * time.Hour).Unix(),
				"nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(), "jti": "expired-1"})
			if err != nil {
				t.Fatal(err)
			}
			req := r.oidcRequest(tok, devcluster.DemoAudience, []string{"read"})
			return r.message("github:repo:frostmint/demo:ref:refs/heads/main", req, nil), req
		}, "", codes.Unauthenticated, "evidence_expired"},
		{"forged OIDC token", func() ([]byte, *mintv1.MintRequest) {
			// Signed by another key, claiming the trusted issuer.
			tok, err := forger.Sign(map[string]any{"iss": github.URL, "aud": oidcAudience, "sub": "repo:frostmint/demo:ref:refs/heads/main",
				"repository": "frostmint/demo", "ref": "refs/heads/main", "iat": now.Unix(), "nbf": now.Unix(),
				"exp": now.Add(5 * time.Minute).Unix(), "jti": "forged-1"})
			if err != nil {
				t.Fatal(err)
			}
			req := r.oidcRequest(tok, devcluster.DemoAudience, []string{"read"})
			return r.message("github:repo:frostmint/demo:ref:refs/heads/main", req, nil), req
		}, "", codes.Unauthenticated, "evidence_untrusted"},
		{"a request binding the caller did not ask for", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			return r.message(caller, req, func(h, c map[string]any) {
				c["req"] = map[string]any{"m": "GET", "a": "evil.example.com", "p": "/"}
			}), req
		}, "", codes.PermissionDenied, "token_mismatch"},
		{"the caller's request binding stripped", func() ([]byte, *mintv1.MintRequest) {
			b := &binding.Binding{Method: "POST", Authority: "api.example.com", Path: "/v1/pay"}
			req := r.boundRequest(devcluster.DemoAudience, []string{"read"}, 0, now, b)
			req.Binding = nil // the signed canonical request was v2: the signature no longer fits
			return r.message(caller, req, nil), req
		}, "", codes.Unauthenticated, "evidence_untrusted"},
		{"no evidence at all", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			msg := r.message(caller, req, nil)
			req.Evidence = nil
			return msg, req
		}, "", codes.InvalidArgument, "no_evidence"},
		{"not our token profile", func() ([]byte, *mintv1.MintRequest) {
			return []byte("transfer $1M to mallory"), r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
		}, "", codes.InvalidArgument, "not_a_token"},
		{"another policy bundle", func() ([]byte, *mintv1.MintRequest) {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			return r.message(caller, req, nil), req
		}, "0000000000000000", codes.FailedPrecondition, "policy_mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range cluster.Signers {
				msg, req := c.msg()
				hash := r.policyHash
				if c.hash != "" {
					hash = c.hash
				}
				rid := fmt.Sprintf("rogue-%d-%d", s.ID, time.Now().UnixNano())
				err := r.sign(s.ID, rid, msg, req, hash)
				if status.Code(err) != c.code {
					t.Fatalf("signer %d: got %v, want %s", s.ID, err, c.code)
				}
				if !deniedInAudit(t, s.ID, rid, c.why) {
					t.Fatalf("signer %d: no %q deny for %s in its audit log", s.ID, c.why, rid)
				}
			}
		})
	}

	t.Run("evidence already used", func(t *testing.T) {
		for _, s := range cluster.Signers {
			req := r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, now)
			first := r.message(caller, req, nil)
			if err := r.sign(s.ID, "rogue-first", first, req, r.policyHash); err != nil {
				t.Fatalf("signer %d: genuine request refused: %v", s.ID, err)
			}
			// The same token again (a coordinator retry) is fine…
			if err := r.sign(s.ID, "rogue-retry", first, req, r.policyHash); err != nil {
				t.Fatalf("signer %d: retry of the same token refused: %v", s.ID, err)
			}
			// …but the same evidence for another token is not.
			rid := fmt.Sprintf("rogue-reuse-%d", s.ID)
			err := r.sign(s.ID, rid, r.message(caller, req, nil), req, r.policyHash)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("signer %d: reused evidence: got %v", s.ID, err)
			}
			if !deniedInAudit(t, s.ID, rid, "evidence_reused") {
				t.Fatalf("signer %d: reuse not in its audit log", s.ID)
			}
		}
		// The coordinator never minted those tokens: audit diff says so.
		out, _, code := cli(t, "", "audit", "diff", "--cluster", filepath.Join(dir, "cluster.json"))
		if code != 1 || !strings.Contains(out, "never recorded as minted") {
			t.Fatalf("audit diff exit %d: %s", code, out)
		}
	})
}

func TestNonceReuseImpossible(t *testing.T) {
	r := newRogue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cs []frost.Commitment
	for _, s := range []uint16{1, 2} {
		resp, err := r.signers[s].Commit(ctx, &signv1.CommitRequest{Count: 1, KeyId: r.kid})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := r.group.DecodeCommitment(resp.GetCommitments()[0])
		cs = append(cs, c)
	}
	list, _ := r.group.EncodeList(cs)
	signWith := func(req *mintv1.MintRequest) error {
		_, err := r.signers[1].Sign(ctx, &signv1.SignRequest{Message: r.message(devcluster.CallerID, req, nil),
			CommitmentList: list, RequestId: "nonce-test", CallerRequest: req, PolicyHash: r.policyHash})
		return err
	}
	if err := signWith(r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := signWith(r.certRequest(devcluster.DemoAudience, []string{"write"}, 0, time.Now())); status.Code(err) != codes.Aborted {
		t.Fatalf("second message with the same nonce: got %v, want Aborted", err)
	}
	// Concurrent attempts on one fresh nonce: exactly one succeeds.
	cs = cs[:0]
	for _, s := range []uint16{1, 2} {
		resp, _ := r.signers[s].Commit(ctx, &signv1.CommitRequest{Count: 1, KeyId: r.kid})
		c, _ := r.group.DecodeCommitment(resp.GetCommitments()[0])
		cs = append(cs, c)
	}
	list, _ = r.group.EncodeList(cs)
	const n = 8
	reqs := make([]*mintv1.MintRequest, n)
	for i := range reqs {
		reqs[i] = r.certRequest(devcluster.DemoAudience, []string{"read"}, 0, time.Now())
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) { errs <- signWith(reqs[i]) }(i)
	}
	ok := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err == nil {
			ok++
		} else if status.Code(err) != codes.Aborted {
			t.Errorf("concurrent sign: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d signatures from one nonce, want exactly 1", ok)
	}
}

func TestSignersOnlyServeTheCoordinator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filesOf("caller")
	_, err := signv1.NewSignerServiceClient(dialAs(t, cluster.Signers[0].Addr, &f, "")).Commit(ctx, &signv1.CommitRequest{Count: 1, KeyId: "any"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("caller talking to a signer: got %v, want PermissionDenied", err)
	}
	_, err = signv1.NewSignerServiceClient(dialAs(t, cluster.Signers[0].Addr, nil, "")).Commit(ctx, &signv1.CommitRequest{Count: 1, KeyId: "any"})
	if err == nil {
		t.Fatal("signer answered a client without certificate")
	}
}

// TestOIDCCallers mints with ID tokens from the local GitHub Actions and
// Kubernetes issuers through the CLI, and checks what policy allows.
func TestOIDCCallers(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "id-token")
	mintOIDC := func(tok, aud, scope string) (string, string, int) {
		os.WriteFile(tokFile, []byte(tok), 0o600)
		return cli(t, "", "mint", "--cluster", filepath.Join(dir, "cluster.json"), "--oidc-token", tokFile, "--audience", aud, "--scope", scope)
	}
	gh, err := github.GitHubToken(oidcAudience, "frostmint/demo", "refs/heads/main", "deploy", "", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := mintOIDC(gh, devcluster.DemoAudience, "read")
	if code != 0 {
		t.Fatalf("GitHub caller on main: exit %d: %s", code, errOut)
	}
	vout, verr, vcode := cli(t, strings.TrimSpace(out), verifyArgs("-")...)
	if vcode != 0 || !strings.Contains(vout, `"sub": "github:repo:frostmint/demo:ref:refs/heads/main"`) {
		t.Fatalf("verify: %d %s %s", vcode, vout, verr)
	}
	// The same ID token cannot mint twice.
	if _, errOut, code := mintOIDC(gh, devcluster.DemoAudience, "read"); code != 1 || !strings.Contains(errOut, "unauthenticated") {
		t.Fatalf("reused ID token: exit %d: %s", code, errOut)
	}
	// Another branch is denied by policy.
	feature, _ := github.GitHubToken(oidcAudience, "frostmint/demo", "refs/heads/feature", "deploy", "", 5*time.Minute)
	if _, errOut, code := mintOIDC(feature, devcluster.DemoAudience, "read"); code != 1 || !strings.Contains(errOut, "permission_denied") {
		t.Fatalf("feature branch: exit %d: %s", code, errOut)
	}
	// A Kubernetes service account with its own scopes.
	k, err := kube.KubernetesToken(oidcAudience, "payments", "api", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := mintOIDC(k, devcluster.DemoAudience, "payments:read"); code != 0 {
		t.Fatalf("kubernetes caller: exit %d: %s", code, errOut)
	}
	k2, _ := kube.KubernetesToken(oidcAudience, "payments", "api", 5*time.Minute)
	if _, errOut, code := mintOIDC(k2, devcluster.DemoAudience, "admin:all"); code != 1 || !strings.Contains(errOut, "permission_denied") {
		t.Fatalf("kubernetes caller, denied scope: exit %d: %s", code, errOut)
	}
}

// TestAuditLogs: every daemon's log verifies; tampering with any byte or
// deleting a line is detected by `frostmint audit verify`.
func TestAuditLogs(t *testing.T) {
	mint(t)
	mint(t) // at least two records, run alone too
	out, errOut, code := cli(t, "", append([]string{"audit", "verify"}, cluster.AuditLogs...)...)
	if code != 0 {
		t.Fatalf("audit verify: exit %d: %s %s", code, out, errOut)
	}
	src := cluster.AuditLogs[0]
	// The head is written in the background a moment after appends pause
	// (policy/audit): wait until it counts every line, or deleting the
	// last line could go unnoticed, by design, in that window.
	var b, head []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if b, err = os.ReadFile(src); err != nil {
			t.Fatal(err)
		}
		head, _ = os.ReadFile(src + ".head")
		var h struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(head, &h) == nil && h.Seq == int64(bytes.Count(b, []byte("\n"))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the head %q does not count the log's %d lines after 10s", head, bytes.Count(b, []byte("\n")))
		}
	}
	tmp := t.TempDir()
	check := func(name string, content []byte) {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, content, 0o600)
		os.WriteFile(p+".head", head, 0o600)
		if _, errOut, code := cli(t, "", "audit", "verify", p); code != 1 || !strings.Contains(errOut, p+":") {
			t.Errorf("%s: exit %d, stderr %q", name, code, errOut)
		}
	}
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)/2] ^= 0x01
	check("flipped", flipped)
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) < 3 {
		t.Fatalf("only %d lines in the coordinator's log", len(lines))
	}
	check("deleted-first", []byte(strings.Join(lines[1:], "")))
	check("deleted-middle", []byte(strings.Join(append(append([]string{}, lines[:1]...), lines[2:]...), "")))
	check("deleted-last", []byte(strings.Join(lines[:len(lines)-2], "")))
}
