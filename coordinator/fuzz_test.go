package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

// FuzzMintRequest feeds arbitrary MintRequest protos to what the
// coordinator checks before anything costly: the lifetime asked
// (requestedTTL), the audience and scopes (checkRequest) and the taking
// apart of the request into the caller's request and evidence
// (signer.CallerEvidence, which every signer runs again). Nothing may
// panic; CallerEvidence refuses with evidence.ErrInvalid only, and what it
// accepts is what the proto says; the signers' reading of the lifetime
// agrees with the coordinator's; and a request the coordinator lets
// through makes a token (SigningInput) that parses back to exactly the
// audience, scopes and binding asked for, so what is signed is what the
// caller asked.
func FuzzMintRequest(f *testing.F) {
	add := func(r *mintv1.MintRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cert := &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{Chain: [][]byte{{0x30, 0x82}}, Signature: []byte{1}}}
	add(&mintv1.MintRequest{Audience: "https://api.example", Scopes: []string{"read", "write"}, Nonce: make([]byte, 32),
		RequestedAt: timestamppb.New(time.Unix(1767225600, 0)), Evidence: cert})
	add(&mintv1.MintRequest{Audience: "aud", Scopes: []string{"deploy:prod"}, Ttl: durationpb.New(90 * time.Second),
		Evidence: &mintv1.MintRequest_OidcToken{OidcToken: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}})
	add(&mintv1.MintRequest{Audience: "aud", Scopes: []string{"read"}, Ttl: durationpb.New(1500 * time.Millisecond), Evidence: cert})
	add(&mintv1.MintRequest{Audience: "aud", Scopes: []string{"read"}, Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}, Evidence: cert})
	add(&mintv1.MintRequest{Audience: "api.example", Scopes: []string{"read"}, Evidence: cert,
		Binding: &mintv1.RequestBinding{Method: "POST", Authority: "api.example:8443", Path: "/v1/pay?x=1",
			BodySha256: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}})
	add(&mintv1.MintRequest{Audience: "a b", Scopes: []string{"read", "read", ""}})
	add(&mintv1.MintRequest{})
	// Scopes with white space other than ASCII's: they passed
	// checkRequest and then made no token (this target's first find).
	add(&mintv1.MintRequest{Audience: "aud", Scopes: []string{"read\vwrite"}, Evidence: cert})
	add(&mintv1.MintRequest{Audience: "aud", Scopes: []string{"read\u00a0write"}, Evidence: cert})
	f.Fuzz(checkMintRequest)
}

// checkMintRequest is FuzzMintRequest's check of one encoded request.
func checkMintRequest(t *testing.T, b []byte) {
	s := &Server{cfg: Default()}
	var req mintv1.MintRequest
	if proto.Unmarshal(b, &req) != nil {
		return
	}
	ttl, terr := s.requestedTTL(&req)
	if terr == nil && (ttl < time.Second || ttl%time.Second != 0 || ttl > time.Duration(s.cfg.MaxTTL)) {
		t.Fatalf("requestedTTL accepted %s", ttl)
	}
	cerr := checkRequest(req.GetAudience(), req.GetScopes())
	er, ev, err := signer.CallerEvidence(&req)
	if err != nil {
		if !errors.Is(err, evidence.ErrInvalid) {
			t.Fatalf("CallerEvidence = %v, want evidence.ErrInvalid", err)
		}
	} else {
		checkCallerEvidence(t, &req, er, ev)
	}

	// The signers read the lifetime the coordinator accepted alike.
	if terr == nil && req.GetTtl() != nil {
		only := &mintv1.MintRequest{Ttl: req.GetTtl(), Evidence: &mintv1.MintRequest_OidcToken{OidcToken: "x"}}
		er, _, err := signer.CallerEvidence(only)
		if err != nil || time.Duration(er.TTLSeconds)*time.Second != ttl {
			t.Fatalf("the coordinator accepts a ttl of %s, a signer reads %ds (%v)", ttl, er.TTLSeconds, err)
		}
	}
	if terr != nil || cerr != nil || err != nil {
		return
	}

	// What the coordinator lets through makes the token asked for.
	now := int64(1767225600)
	c := token.Claims{Issuer: "https://issuer.example", Subject: "spiffe://td/caller", ClientID: "spiffe://td/caller",
		Audience: req.GetAudience(), Scope: strings.Join(req.GetScopes(), " "), IssuedAt: now, NotBefore: now,
		Expiry: now + int64(ttl/time.Second), ID: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Binding: er.Binding}
	msg, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: "kid"}, c)
	if err != nil {
		t.Fatalf("an accepted request makes no token: %v", err)
	}
	_, got, err := token.ParseSigningInput(msg)
	if err != nil {
		t.Fatalf("the token of an accepted request does not parse: %v", err)
	}
	if got.Audience != req.GetAudience() || !slices.Equal(got.Scopes(), req.GetScopes()) ||
		(got.Binding == nil) != (er.Binding == nil) || got.Binding != nil && *got.Binding != *er.Binding {
		t.Fatalf("asked aud %q scopes %q binding %+v; the token says aud %q scopes %q binding %+v",
			req.GetAudience(), req.GetScopes(), er.Binding, got.Audience, got.Scopes(), got.Binding)
	}
}

// checkCallerEvidence checks what CallerEvidence made of req.
func checkCallerEvidence(t *testing.T, req *mintv1.MintRequest, er evidence.Request, ev evidence.Evidence) {
	t.Helper()
	if er.Audience != req.GetAudience() || !slices.Equal(er.Scopes, req.GetScopes()) || !bytes.Equal(er.Nonce, req.GetNonce()) {
		t.Fatalf("CallerEvidence changed the request: %+v", er)
	}
	if (req.GetTtl() == nil) != (er.TTLSeconds == 0) || er.TTLSeconds < 0 {
		t.Fatalf("CallerEvidence read ttl %v as %d s", req.GetTtl(), er.TTLSeconds)
	}
	if rt := req.GetRequestedAt(); rt != nil && !er.Timestamp.Equal(rt.AsTime()) || rt == nil && !er.Timestamp.IsZero() {
		t.Fatalf("CallerEvidence read requested_at %v as %v", rt, er.Timestamp)
	}
	if er.Binding != nil {
		if req.GetBinding() == nil || er.Binding.Validate() != nil {
			t.Fatalf("CallerEvidence made an invalid binding %+v", er.Binding)
		}
	}
	switch e := req.GetEvidence().(type) {
	case *mintv1.MintRequest_Certificate:
		if ev.OIDCToken != "" || len(ev.CertChain) != len(e.Certificate.GetChain()) || !bytes.Equal(ev.Signature, e.Certificate.GetSignature()) {
			t.Fatalf("CallerEvidence took a certificate proof as %+v", ev)
		}
	case *mintv1.MintRequest_OidcToken:
		if ev.OIDCToken != e.OidcToken || ev.CertChain != nil {
			t.Fatalf("CallerEvidence took an OIDC token as %+v", ev)
		}
	default:
		t.Fatal("CallerEvidence accepted a request without evidence")
	}
}

// fuzzGroup makes a 2-of-3 FROST group in memory and returns it with
// signer 2's Signer (the pool under test is signer 2's).
func fuzzGroup(f *testing.F) (*frost.Group, *frost.Signer) {
	f.Helper()
	ds := make([]*frost.DKG, 3)
	r1 := make([][]byte, 3)
	for i := range ds {
		var err error
		if ds[i], err = frost.NewDKG(uint16(i+1), 2, 3); err != nil {
			f.Fatal(err)
		}
		if r1[i], err = ds[i].Round1(); err != nil {
			f.Fatal(err)
		}
	}
	inbox := make([][][]byte, 3)
	for _, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			f.Fatal(err)
		}
		for to, m := range out {
			inbox[to-1] = append(inbox[to-1], m)
		}
	}
	var kss []*frost.KeyShare
	for i, d := range ds {
		ks, err := d.Finalize(inbox[i])
		if err != nil {
			f.Fatal(err)
		}
		kss = append(kss, ks)
	}
	g, err := frost.NewGroup(kss[0].Public)
	if err != nil {
		f.Fatal(err)
	}
	s, err := frost.NewSigner(g, kss[1].Secret, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	return g, s
}

// answering is a SignerServiceClient that answers every Commit and Info
// with the responses it holds.
type answering struct {
	signv1.SignerServiceClient
	commit *signv1.CommitResponse
	info   *signv1.InfoResponse
}

func (a *answering) Commit(context.Context, *signv1.CommitRequest, ...grpc.CallOption) (*signv1.CommitResponse, error) {
	return a.commit, nil
}

func (a *answering) Info(context.Context, *signv1.InfoRequest, ...grpc.CallOption) (*signv1.InfoResponse, error) {
	return a.info, nil
}

// FuzzPoolFill feeds arbitrary Commit and Info answers of signer 2 to the
// coordinator's commitment pool for it. Nothing may panic; a refused
// answer adds nothing and marks the signer failed; and whatever the pool
// accepts and later hands out for a signing session is a commitment of
// signer 2 for the active key that the group accepts, so a lying signer
// cannot slip another signer's commitment, or garbage, into a session.
func FuzzPoolFill(f *testing.F) {
	g, s2 := fuzzGroup(f)
	kid, err := jwks.KeyID(g.Public().PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	add := func(c *signv1.CommitResponse, i *signv1.InfoResponse) {
		cb, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		ib, err := proto.Marshal(i)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cb, ib)
	}
	good, err := s2.Commit(3, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	info := &signv1.InfoResponse{SignerId: 2, BootId: "boot", PolicyHash: "hash"}
	add(&signv1.CommitResponse{SignerId: 2, BootId: "boot", Commitments: good, KeyId: kid}, info)
	add(&signv1.CommitResponse{SignerId: 2, BootId: "reboot", Commitments: good[:1], KeyId: kid}, info)
	add(&signv1.CommitResponse{SignerId: 3, BootId: "boot", Commitments: good, KeyId: kid}, info)
	add(&signv1.CommitResponse{SignerId: 2, BootId: "boot", Commitments: good, KeyId: "other"}, info)
	add(&signv1.CommitResponse{SignerId: 2, BootId: "boot", Commitments: [][]byte{good[0], good[1][:20]}, KeyId: kid}, &signv1.InfoResponse{})
	add(&signv1.CommitResponse{}, &signv1.InfoResponse{SignerId: 2, BootId: "other"})
	k := &activeKey{kid: kid, group: g}
	f.Fuzz(func(t *testing.T, cb, ib []byte) {
		var cr signv1.CommitResponse
		var ir signv1.InfoResponse
		if proto.Unmarshal(cb, &cr) != nil || proto.Unmarshal(ib, &ir) != nil {
			return
		}
		p, err := newPool(Endpoint{ID: 2, Identity: "spiffe://td/signer/2", Guardian: true}, mtls.Files{}, 8, time.Minute, time.Now, false)
		if err != nil {
			t.Fatal(err)
		}
		if !p.attach(&answering{commit: &cr, info: &ir}) {
			t.Fatal("attach")
		}
		ctx := context.Background()
		p.checkBoot(ctx, time.Second)
		before := p.len()
		p.refill.Lock()
		_, err = p.fetch(ctx, time.Second, k, p.size-before, 0)
		p.refill.Unlock()
		if err != nil {
			if healthy, _, lastErr := p.status(); healthy || lastErr == nil || p.len() != before {
				t.Fatalf("a refused answer (%v) left the pool healthy %v, error %v, with %d commitments (had %d)",
					err, healthy, lastErr, p.len(), before)
			}
			return
		}
		for range p.len() {
			c, ok := p.take(kid)
			if !ok {
				t.Fatal("a pooled commitment was not handed out")
			}
			d, err := g.DecodeCommitment(c.Encoded)
			if err != nil || c.SignerID != 2 || d.SignerID != 2 || d.ID != c.ID {
				t.Fatalf("the pool handed out %+v, which decodes as %+v (%v)", c, d, err)
			}
		}
		if _, ok := p.take(kid); ok {
			t.Fatal("the pool handed out more than it holds")
		}
	})
}

// fakeStream is the coordinator's end of one guardian's stream: what the
// coordinator sends is handed to reply, and what reply returns is what
// the guardian answers.
type fakeStream struct {
	signv1.GuardianService_ConnectServer
	ctx     context.Context
	answers chan *signv1.ConnectRequest
	reply   func(*signv1.ConnectResponse) *signv1.ConnectRequest
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) Send(c *signv1.ConnectResponse) error {
	if a := s.reply(c); a != nil {
		s.answers <- a
	}
	return nil
}

func (s *fakeStream) Recv() (*signv1.ConnectRequest, error) {
	a, ok := <-s.answers
	if !ok {
		return nil, io.EOF
	}
	return a, nil
}

// FuzzGuardianCall feeds arbitrary answers from a guardian to each kind of
// call the coordinator makes over the guardian's stream (Info, Commit,
// Sign, Approve and the key ceremony's calls). Nothing may panic or hang;
// a call returns exactly one of an answer and an error; an answer is
// returned only when it answers that very call with the matching kind of
// response (an answer under another call id is not taken for it); and an
// error answer comes back as the status the guardian sent, or, when that
// status is OK, as a refusal still.
func FuzzGuardianCall(f *testing.F) {
	add := func(kind uint8, sameID bool, a *signv1.ConnectRequest) {
		b, err := proto.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kind, sameID, b)
	}
	add(0, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Info{Info: &signv1.InfoResponse{SignerId: 3}}})
	add(1, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Commit{Commit: &signv1.CommitResponse{SignerId: 3}}})
	add(2, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Sign{Sign: &signv1.SignResponse{SignerId: 3}}})
	add(3, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Approve{Approve: &signv1.ApproveResponse{Approval: &signv1.Approval{SignerId: 3}}}})
	add(3, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Approve{Approve: &signv1.ApproveResponse{}}})
	add(2, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Info{Info: &signv1.InfoResponse{}}})
	add(2, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Error{Error: &signv1.CallError{Code: uint32(codes.PermissionDenied), Message: "no"}}})
	add(4, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Error{Error: &signv1.CallError{Code: uint32(codes.Aborted), Message: "cheat",
		Blame: &ceremonyv1.Blame{CulpritId: 2, ReporterId: 3, Fault: ceremonyv1.Fault_FAULT_BAD_SHARE, Reason: "r"}}}})
	add(1, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Error{Error: &signv1.CallError{}}})
	add(5, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyExchange{CeremonyExchange: &ceremonyv1.ExchangeResponse{}}})
	add(6, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyFinish{CeremonyFinish: &ceremonyv1.FinishResponse{}}})
	add(8, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_CeremonyAbort{CeremonyAbort: &ceremonyv1.AbortResponse{}}})
	add(0, false, &signv1.ConnectRequest{CallId: 99, Answer: &signv1.ConnectRequest_Info{Info: &signv1.InfoResponse{}}})
	add(0, true, &signv1.ConnectRequest{Answer: &signv1.ConnectRequest_Hello{Hello: &signv1.GuardianHello{SignerId: 3}}})
	f.Fuzz(func(t *testing.T, kind uint8, sameID bool, b []byte) {
		var ans signv1.ConnectRequest
		if proto.Unmarshal(b, &ans) != nil {
			return
		}
		var sent *signv1.ConnectResponse
		st := &fakeStream{ctx: context.Background(), answers: make(chan *signv1.ConnectRequest, 1)}
		st.reply = func(c *signv1.ConnectResponse) *signv1.ConnectRequest {
			sent = c
			a := proto.Clone(&ans).(*signv1.ConnectRequest)
			if sameID {
				a.CallId = c.GetCallId()
			}
			return a
		}
		g := newGuardianClient(st)
		served := make(chan error, 1)
		go func() { served <- g.serve() }()
		defer func() {
			close(st.answers)
			if err := <-served; err != io.EOF {
				t.Errorf("serve = %v at the end of the stream", err)
			}
		}()
		matches := sameID || ans.GetCallId() == 1 // the first call's id
		ctx := context.Background()
		if !matches {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Millisecond)
			defer cancel()
		}

		var resp proto.Message
		var err error
		var want proto.Message // the response the answer carries for this call
		gp := guardianParticipant{p: &pool{client: g}}
		switch kind % 9 {
		case 0:
			resp, err = nilIfNil(g.Info(ctx, &signv1.InfoRequest{}))
			want = ans.GetInfo()
		case 1:
			resp, err = nilIfNil(g.Commit(ctx, &signv1.CommitRequest{Count: 1}))
			want = ans.GetCommit()
		case 2:
			resp, err = nilIfNil(g.Sign(ctx, &signv1.SignRequest{}))
			want = ans.GetSign()
		case 3:
			resp, err = nilIfNil(g.Approve(ctx, &signv1.ApproveRequest{}))
			if ans.GetApprove().GetApproval() != nil {
				want = ans.GetApprove()
			}
		case 4:
			resp, err = nilIfNil(gp.Begin(ctx, &ceremonyv1.BeginRequest{}))
			want = ans.GetCeremonyBegin()
		case 5:
			resp, err = nilIfNil(gp.Exchange(ctx, &ceremonyv1.ExchangeRequest{}))
			want = ans.GetCeremonyExchange()
		case 6:
			resp, err = nilIfNil(gp.Finish(ctx, &ceremonyv1.FinishRequest{}))
			want = ans.GetCeremonyFinish()
		case 7:
			resp, err = nilIfNil(gp.Commit(ctx, &ceremonyv1.CommitRequest{}))
			want = ans.GetCeremonyCommit()
		default:
			resp, err = nilIfNil(gp.Abort(ctx, &ceremonyv1.AbortRequest{}))
			want = ans.GetCeremonyAbort()
		}
		if sent == nil || sent.GetCallId() != 1 {
			t.Fatalf("the call went out as %v", sent)
		}
		if (resp == nil) == (err == nil) {
			t.Fatalf("call = %v, %v: want exactly one", resp, err)
		}
		switch {
		case !matches:
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("an answer to another call (%d) was taken: %v, %v", ans.GetCallId(), resp, err)
			}
		case ans.GetError() != nil:
			code := codes.Code(ans.GetError().GetCode())
			if code == codes.OK {
				code = codes.Internal // errWrongAnswer
			}
			if s, _ := status.FromError(err); s.Code() != code {
				t.Fatalf("the guardian's error %v came back as %v", ans.GetError(), err)
			}
		case want != nil && !isNil(want):
			if err != nil || !proto.Equal(resp, want) {
				t.Fatalf("the answer %v came back as %v, %v", &ans, resp, err)
			}
		default:
			if !errors.Is(err, errWrongAnswer) {
				t.Fatalf("an answer of another kind (%v) came back as %v, %v", &ans, resp, err)
			}
		}
	})
}

// nilIfNil returns a typed nil response as an untyped nil message.
func nilIfNil[M proto.Message](m M, err error) (proto.Message, error) {
	if isNil(m) {
		return nil, err
	}
	return m, err
}

func isNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }

// FuzzLoadConfig feeds arbitrary files to LoadConfig and Validate: nothing
// may panic; a file is accepted only when it is exactly one JSON value,
// so that nothing after the config is silently ignored; and a config
// accepted, written back as JSON (as the dev cluster writes the configs
// it makes), loads again to the very same config, valid exactly when the
// original is.
func FuzzLoadConfig(f *testing.F) {
	full := Default()
	full.Listen, full.HTTPListen, full.Issuer, full.KeysDir, full.AuditLog = "127.0.0.1:7000", "127.0.0.1:7080", "https://mint.example", "keys", "audit.ndjson"
	full.Signers = []Endpoint{{ID: 1, Addr: "127.0.0.1:7001", Identity: "spiffe://td/signer/1"}, {ID: 2, Identity: "spiffe://td/signer/2", Guardian: true}}
	full.CeremonyAdmins = []string{"spiffe://td/admin"}
	full.Callers = signer.Callers{TrustBundle: "ca.pem", MaxAge: signer.Duration(time.Minute)}
	full.Policy = signer.PolicySource{Bundle: "bundle", Verify: &signer.BundleKey{KeyID: "k", Algorithm: "EdDSA", PublicKey: "k.pem"}}
	for _, c := range []Config{Default(), full} {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"max_ttl":"20m","default_ttl":"1.5s"}`, `{"sign_timeout":-1}`, `{"signers":[{"id":0},{"id":65535,"guardian":true}]}`,
		`{"unknown":1}`, `{"listen":"a"} {"listen":"b"}`, `{"limits":{"per_identity":{"per_second":1e308,"burst":-1}}}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "coordinator.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p)
		verr := c.Validate() // whatever was loaded, Validate must cope
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("LoadConfig accepted %q, which is not one JSON value", b)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted config does not encode: %v", err)
		}
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		c2, err := LoadConfig(p)
		if err != nil {
			t.Fatalf("the config written back does not load: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(c2); !bytes.Equal(out2, out) {
			t.Fatalf("the config changed on the way back:\n%s\n%s", out, out2)
		}
		if (c2.Validate() == nil) != (verr == nil) {
			t.Fatalf("Validate = %v, and after a round trip %v", verr, c2.Validate())
		}
	})
}
