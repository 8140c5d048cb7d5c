package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/policy/limit"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

// Identities of the in-memory cluster the fuzz targets below run against:
// the caller is one the embedded default policy grants read, write and
// deploy:prod (which needs a guardian's approval).
const (
	fuzzIssuer   = "https://frostmint.fuzz"
	fuzzCaller   = "spiffe://dev.frostmint.local/dev/cli"
	fuzzGuardian = "spiffe://dev.frostmint.local/signer/3"
	fuzzOther    = "spiffe://dev.frostmint.local/signer/2"
)

// memAudit is an Auditor in memory: the fuzz targets check that every call
// leaves exactly one record.
type memAudit struct{ recs []audit.Record }

func (m *memAudit) Append(r audit.Record) error {
	m.recs = append(m.recs, r)
	return nil
}

// party is a certificate chain and its key, issued by the fuzz CA.
type party struct {
	chain [][]byte
	key   crypto.Signer
}

// fuzzSigner is signer 1 of a 2-of-3 group, made by New from a config
// like a real one (without the network): real FROST shares from a real
// DKG in its keys dir, caller evidence verified against a test CA, the
// embedded default policy, no rate limits (a fuzzer is faster than any
// limit), and a guardian's approver that always declines. Its audit log
// is then swapped for one in memory, for speed and for the checks. peer
// is signer 2, whose commitments complete a signing session.
type fuzzSigner struct {
	s      *Server
	group  *frost.Group
	peer   *frost.Signer
	kid    string
	hash   string
	audit  *memAudit
	caller party
	guard  party // signer 3, an approver signer 1 trusts
	other  party // signer 2, not an approver
}

func newFuzzSigner(f *testing.F) *fuzzSigner {
	f.Helper()
	dir := f.TempDir()
	ca, err := mtls.NewDevCA("fuzz CA", 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	issue := func(name, id string) (party, mtls.Files) {
		files, err := ca.Issue(dir, name, mtls.Leaf{ID: id, Lifetime: 24 * time.Hour})
		if err != nil {
			f.Fatal(err)
		}
		kp, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			f.Fatal(err)
		}
		return party{chain: kp.Certificate, key: kp.PrivateKey.(crypto.Signer)}, files
	}
	fs := &fuzzSigner{audit: &memAudit{}}
	fs.caller, _ = issue("caller", fuzzCaller)
	fs.guard, _ = issue("signer-3", fuzzGuardian)
	fs.other, _ = issue("signer-2", fuzzOther)
	_, files := issue("signer-1", "spiffe://dev.frostmint.local/signer/1")

	kss := fuzzDKG(f, 2, 3)
	if fs.group, err = frost.NewGroup(kss[0].Public); err != nil {
		f.Fatal(err)
	}
	if fs.peer, err = frost.NewSigner(fs.group, kss[1].Secret, 0); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(fs.peer.Close)
	sealer, err := keystore.NewPassphrase([]byte("fuzz"), keystore.ScryptParams{N: 1 << 10, R: 8, P: 1})
	if err != nil {
		f.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if fs.kid, err = keydir.WriteShare(keys, 1, sealer, kss[0].Secret, kss[0].Public, nil); err != nil {
		f.Fatal(err)
	}

	cfg := Default()
	cfg.ID, cfg.Listen, cfg.TLS, cfg.Issuer, cfg.KeysDir = 1, "127.0.0.1:0", files, fuzzIssuer, keys
	cfg.Coordinators = []string{"spiffe://dev.frostmint.local/coordinator"}
	cfg.Keystore, cfg.Dev = "file:?passphrase=env:UNUSED", true
	cfg.Approvers = []string{fuzzGuardian}
	cfg.Callers = Callers{TrustBundle: files.CA}
	cfg.Limits = limit.Config{}
	cfg.AuditLog = filepath.Join(dir, "audit.ndjson")
	s, err := New(cfg, slog.New(slog.DiscardHandler), WithSealer(sealer), WithApprover(denyApprover{}))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	s.audit = fs.audit
	fs.s, fs.hash = s, s.policy.Hash()
	return fs
}

// fuzzDKG runs a t-of-n key generation among n in-memory participants.
func fuzzDKG(f *testing.F, t, n uint16) []*frost.KeyShare {
	f.Helper()
	ds := make([]*frost.DKG, n)
	r1 := make([][]byte, n)
	for i := range ds {
		var err error
		if ds[i], err = frost.NewDKG(uint16(i+1), t, n); err != nil {
			f.Fatal(err)
		}
		if r1[i], err = ds[i].Round1(); err != nil {
			f.Fatal(err)
		}
	}
	inbox := make([][][]byte, n)
	for _, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			f.Fatal(err)
		}
		for to, m := range out {
			inbox[to-1] = append(inbox[to-1], m)
		}
	}
	kss := make([]*frost.KeyShare, n)
	for i, d := range ds {
		var err error
		if kss[i], err = d.Finalize(inbox[i]); err != nil {
			f.Fatal(err)
		}
	}
	return kss
}

// session returns the commitments of a fresh signing session of signers
// 1 and 2, and its encoded list.
func (fs *fuzzSigner) session(t *testing.T) ([]frost.Commitment, []byte) {
	t.Helper()
	r, err := fs.s.Commit(context.Background(), &signv1.CommitRequest{Count: 1, KeyId: fs.kid})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := fs.peer.Commit(1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var cs []frost.Commitment
	for _, b := range [][]byte{r.GetCommitments()[0], enc[0]} {
		c, err := fs.group.DecodeCommitment(b)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	list, err := fs.group.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	return cs, list
}

// forget drops every outstanding nonce of both signers, so that refused
// requests do not pile nonces up to the limit.
func (fs *fuzzSigner) forget() {
	future := time.Now().Add(time.Hour)
	for _, e := range fs.s.keys.list() {
		e.signer.Expire(future)
	}
	fs.peer.Expire(future)
}

// callerRequest returns the certificate caller's genuine, signed request
// for aud, scopes and ttl (seconds; 0 for none), made now. When the
// request is outside what a caller can sign, it carries no signature.
func (fs *fuzzSigner) callerRequest(aud string, scopes []string, ttl int64, now time.Time) *mintv1.MintRequest {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	ts := now.Truncate(time.Second)
	sig, _ := evidence.SignRequest(evidence.Request{Audience: aud, Scopes: scopes, TTLSeconds: ttl, Nonce: nonce, Timestamp: ts}, fs.caller.key)
	r := &mintv1.MintRequest{Audience: aud, Scopes: scopes, Nonce: nonce, RequestedAt: timestamppb.New(ts),
		Evidence: &mintv1.MintRequest_Certificate{Certificate: &mintv1.CertificateProof{Chain: fs.caller.chain, Signature: sig}}}
	if ttl != 0 {
		r.Ttl = durationpb.New(time.Duration(ttl) * time.Second)
	}
	return r
}

// expand fills the placeholders of a header or claims template: $KID,
// $ISS, $SUB, $NOW, $EXP (five minutes after $NOW) and $JTI. Templates
// keep the seed corpus valid whatever the clock and the DKG's key.
func (fs *fuzzSigner) expand(tmpl string, now time.Time, jti string) string {
	return strings.NewReplacer("$KID", fs.kid, "$ISS", fuzzIssuer, "$SUB", fuzzCaller,
		"$NOW", strconv.FormatInt(now.Unix(), 10), "$EXP", strconv.FormatInt(now.Unix()+300, 10), "$JTI", jti).Replace(tmpl)
}

func segment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func newJTI() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// overTheWire returns m as the receiver of its wire encoding sees it, or
// false when m cannot be sent at all (a string that is not UTF-8).
func overTheWire[M proto.Message](m M) (M, bool) {
	b, err := proto.Marshal(m)
	if err != nil {
		return m, false
	}
	out := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(b, out); err != nil {
		return m, false
	}
	return out, true
}

const (
	fuzzHeader = `{"alg":"EdDSA","typ":"at+jwt","kid":"$KID"}`
	fuzzClaims = `{"iss":"$ISS","sub":"$SUB","client_id":"$SUB","aud":"%AUD","scope":"%SCOPE","iat":$NOW,"nbf":$NOW,"exp":$EXP,"jti":"$JTI"}`
)

func claimsFor(aud, scope string) string {
	return strings.NewReplacer("%AUD", aud, "%SCOPE", scope).Replace(fuzzClaims)
}

// FuzzSign drives the signer's Sign, which judges every request itself,
// with a genuine certificate caller's request for arbitrary audiences,
// scopes and lifetimes, an arbitrary token (header and claims JSON),
// arbitrary approvals beside an optional genuine one, and an arbitrary
// policy hash. It checks that every call leaves exactly one audit record;
// that a refusal is a gRPC status of the codes the coordinator handles,
// never Internal; and that a share is only ever made, and valid, for a
// token of this issuer and key, issued now, saying exactly what the
// caller's evidence proves and asked for (subject, client, audience,
// scopes, no longer than asked), with a trusted guardian's approval where
// the policy wants one; and that the evidence then mints no other token.
func FuzzSign(f *testing.F) {
	fs := newFuzzSigner(f)
	var noApprovals []byte
	other, _ := proto.Marshal(&signv1.SignRequest{Approvals: []*signv1.Approval{{SignerId: 3, Approver: "eve", Signature: []byte{1}}}})
	f.Add("aud", "read", int64(0), fuzzHeader, claimsFor("aud", "read"), uint8(0), noApprovals, true, "")
	f.Add("https://api.example", "read write", int64(600), fuzzHeader, claimsFor("https://api.example", "read write"), uint8(0), noApprovals, true, "")
	f.Add("aud", "deploy:prod", int64(0), fuzzHeader, claimsFor("aud", "deploy:prod"), uint8(1), noApprovals, true, "")
	f.Add("aud", "deploy:prod", int64(0), fuzzHeader, claimsFor("aud", "deploy:prod"), uint8(1+4*2), other, true, "")
	f.Add("aud", "deploy:prod", int64(0), fuzzHeader, claimsFor("aud", "deploy:prod"), uint8(2), noApprovals, true, "")
	f.Add("aud", "deploy:prod", int64(0), fuzzHeader, claimsFor("aud", "deploy:prod"), uint8(3), noApprovals, true, "")
	f.Add("aud", "read", int64(60), fuzzHeader, claimsFor("aud", "read"), uint8(0), noApprovals, true, "")
	f.Add("aud", "read", int64(0), fuzzHeader, claimsFor("aud", "read write"), uint8(0), noApprovals, true, "")
	f.Add("aud", "admin", int64(0), fuzzHeader, claimsFor("aud", "admin"), uint8(0), noApprovals, true, "")
	f.Add("aud", "read", int64(0), fuzzHeader, claimsFor("aud", "read"), uint8(0), noApprovals, false, "0123456789abcdé")
	f.Add("aud", "read", int64(0), `{"alg":"none","typ":"at+jwt","kid":"$KID"}`, claimsFor("aud", "read"), uint8(0), noApprovals, true, "")

	f.Fuzz(func(t *testing.T, aud, scopeList string, ttl int64, header, claims string, approve uint8, approvals []byte, hashOK bool, hash string) {
		defer fs.forget()
		now := time.Now()
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, " ")
		}
		caller := fs.callerRequest(aud, scopes, ttl, now)
		jti := newJTI()
		msg := []byte(segment(fs.expand(header, now, jti)) + "." + segment(fs.expand(claims, now, jti)))

		var extra signv1.SignRequest
		_ = proto.Unmarshal(approvals, &extra)
		as := extra.GetApprovals()
		at := -1 // where the genuine approval is
		if mode := approve % 4; mode != 0 {
			signed := msg
			who := fs.guard
			switch mode {
			case 2: // an approval of another token
				signed = []byte(segment(fs.expand(header, now, newJTI())) + "." + segment(fs.expand(claims, now, newJTI())))
			case 3: // by a signer that is no approver
				who = fs.other
			}
			a, err := SignApproval(3, who.chain, who.key, signed, "ann@workstation")
			if err != nil {
				t.Fatal(err)
			}
			if mode == 1 {
				at = min(int(approve/4), len(as))
			}
			as = slices.Insert(slices.Clone(as), min(int(approve/4), len(as)), a)
		}
		if hashOK {
			hash = fs.hash
		}
		cs, list := fs.session(t)
		req, ok := overTheWire(&signv1.SignRequest{Message: msg, CommitmentList: list, RequestId: "fuzz",
			CallerRequest: caller, PolicyHash: hash, Approvals: as})
		if !ok {
			return // not UTF-8: no coordinator can send it
		}

		n := len(fs.audit.recs)
		resp, err := fs.s.Sign(context.Background(), req)
		if len(fs.audit.recs) != n+1 {
			t.Fatalf("Sign left %d audit records, want 1 (err %v)", len(fs.audit.recs)-n, err)
		}
		rec := fs.audit.recs[n]
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || resp != nil {
				t.Fatalf("Sign = %v, %v: want a status and no response", resp, err)
			}
			switch st.Code() {
			case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition,
				codes.ResourceExhausted, codes.Aborted:
			default:
				t.Fatalf("Sign refused with %v", err)
			}
			if rec.Decision != audit.Deny || rec.Code == "" || len(rec.Reasons) == 0 {
				t.Fatalf("refusal %v audited as %+v", err, rec)
			}
			return
		}

		// A share was made: everything it signs must have been proven.
		if rec.Decision != audit.Allow || resp.GetSignerId() != 1 {
			t.Fatalf("share made, audited as %+v, answered as signer %d", rec, resp.GetSignerId())
		}
		if err := fs.group.VerifyShare(msg, cs, frost.Share{SignerID: 1, Encoded: resp.GetSignatureShare()}); err != nil {
			t.Fatalf("the share does not verify: %v", err)
		}
		h, c, err := token.ParseSigningInput(msg)
		if err != nil {
			t.Fatalf("signed something that is not a token: %v", err)
		}
		if _, err := evidence.SignRequest(evidence.Request{Audience: aud, Scopes: scopes, TTLSeconds: ttl,
			Nonce: caller.GetNonce(), Timestamp: now.Truncate(time.Second)}, fs.caller.key); err != nil {
			t.Fatalf("signed for a request no caller could make: %v", err)
		}
		switch {
		case h.KeyID != fs.kid || c.Issuer != fuzzIssuer:
			t.Fatalf("signed a token of key %q, issuer %q", h.KeyID, c.Issuer)
		case c.Subject != fuzzCaller || c.ClientID != fuzzCaller:
			t.Fatalf("signed a token for sub %q, client_id %q", c.Subject, c.ClientID)
		case c.Audience != aud || c.Scope != strings.Join(scopes, " "):
			t.Fatalf("signed aud %q scope %q for a request of %q %q", c.Audience, c.Scope, aud, scopes)
		case c.IssuedAt < now.Unix()-60 || c.IssuedAt > time.Now().Unix()+60:
			t.Fatalf("signed a token issued at %d, now %d", c.IssuedAt, now.Unix())
		case c.TTL() > token.MaxTTL || ttl > 0 && c.TTL() > time.Duration(ttl)*time.Second:
			t.Fatalf("signed a lifetime of %s for a request of %ds", c.TTL(), ttl)
		case c.Binding != nil:
			t.Fatalf("signed a bound token for an unbound request")
		}
		approved := rec.Approval != nil && rec.Approval.Guardian == fuzzGuardian && rec.Approval.Approver == "ann@workstation"
		if slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, "deploy:prod") }) &&
			(at < 0 || at >= 4 || !approved) {
			t.Fatalf("signed scope %q without a genuine approval (mode %d, audit %+v)", c.Scope, approve, rec.Approval)
		}

		// The evidence is spent: another token (another jti) is refused.
		jti2 := newJTI()
		msg2 := []byte(segment(fs.expand(header, now, jti2)) + "." + segment(fs.expand(claims, now, jti2)))
		if bytes.Equal(msg2, msg) {
			return
		}
		_, list2 := fs.session(t)
		_, err = fs.s.Sign(context.Background(), &signv1.SignRequest{Message: msg2, CommitmentList: list2, RequestId: "fuzz-2",
			CallerRequest: req.GetCallerRequest(), PolicyHash: req.GetPolicyHash(), Approvals: req.GetApprovals()})
		if status.Code(err) != codes.Unauthenticated && status.Code(err) != codes.PermissionDenied {
			t.Fatalf("the evidence signed a second token: %v", err)
		}
	})
}

// FuzzCheckApprovals feeds arbitrary approvals, with or without a genuine
// one among them, to the check every signer runs before signing a token
// that needs a human's approval. Only a genuine approval of this very
// token by a trusted guardian, among the first four, may pass, and it
// must be reported as that guardian's and approver's; every refusal wraps
// errApproval.
func FuzzCheckApprovals(f *testing.F) {
	fs := newFuzzSigner(f)
	msg := []byte("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0")
	f.Add(uint32(3), uint8(0), []byte{}, "ann@workstation", []byte{}, uint8(1), msg)
	f.Add(uint32(3), uint8(1), []byte{}, "ann@workstation", []byte{1, 2, 3}, uint8(1), msg)
	f.Add(uint32(3), uint8(2), []byte{}, "eve", []byte{}, uint8(1+4*3), msg)
	f.Add(uint32(2), uint8(3), fs.guard.chain[0][:200], "", []byte{}, uint8(0), msg)
	f.Add(uint32(3), uint8(1), []byte{}, "ann@workstation", []byte{}, uint8(1+4*5), []byte{})
	f.Fuzz(func(t *testing.T, id uint32, chainKind uint8, der []byte, approver string, sig []byte, genuine uint8, msg []byte) {
		// The fuzzed approval: a chain of the guardian, of a signer that
		// is no approver, or arbitrary; a signature that may be the
		// guardian's genuine one over this message.
		var chain [][]byte
		switch chainKind % 4 {
		case 0:
			chain = fs.guard.chain
		case 1:
			chain = fs.other.chain
		case 2:
			chain = [][]byte{der}
		default:
			chain = append(slices.Clone(fs.guard.chain), der)
		}
		if len(sig) == 0 {
			a, err := SignApproval(3, fs.guard.chain, fs.guard.key, msg, approver)
			if err != nil {
				t.Fatal(err)
			}
			sig = a.GetSignature()
		}
		as := []*signv1.Approval{{SignerId: id, CertChain: chain, Approver: approver, Signature: sig}}
		good, err := SignApproval(3, fs.guard.chain, fs.guard.key, msg, "ann@workstation")
		if err != nil {
			t.Fatal(err)
		}
		at := -1
		if genuine%2 == 1 {
			at = min(int(genuine/2), len(as))
			as = slices.Insert(as, at, good)
		}
		for i := 0; i < int(genuine/64); i++ {
			as = append(as, as[0])
		}

		gid, who, err := checkApprovals(as, msg, fs.s.tlsKeys.Roots(), fs.s.cfg.Approvers, time.Now())
		if err != nil {
			if !errors.Is(err, errApproval) {
				t.Fatalf("refusal %v does not wrap errApproval", err)
			}
			if at >= 0 && at < 4 {
				t.Fatalf("a genuine approval at %d was refused: %v", at, err)
			}
			return
		}
		if gid != fuzzGuardian {
			t.Fatalf("approval accepted as %q's", gid)
		}
		// What passed is genuine: the fuzzed approval can only pass when
		// it is the guardian's own signature over this message and name.
		fuzzed := as[0]
		if at == 0 {
			fuzzed = as[1]
		}
		genuineFuzzed := bytes.Equal(fuzzed.GetCertChain()[0], fs.guard.chain[0]) &&
			len(fuzzed.GetApprover()) <= maxApprover &&
			evidence.VerifyStatement(fs.guard.key.Public(), approvalStatement(msg, fuzzed.GetApprover()), fuzzed.GetSignature()) == nil
		switch {
		case who == "ann@workstation" && at >= 0 && at < 4:
		case who == fuzzed.GetApprover() && genuineFuzzed:
		default:
			t.Fatalf("accepted approver %q (genuine at %d)", who, at)
		}
	})
}

// FuzzGuardianAnswer feeds arbitrary calls, as a coordinator sends them
// over a guardian's stream, to the guardian's dispatcher. Whatever the
// call, it must be answered promptly, and the answer must be one the
// stream can carry back: exactly one
// answer set, an error with a code that is not OK, and an encoding that
// proto can marshal (a string that is not UTF-8 would make the answer
// unsendable, leaving the coordinator to time out).
func FuzzGuardianAnswer(f *testing.F) {
	fs := newFuzzSigner(f)
	add := func(c *signv1.ConnectResponse) {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := time.Now()
	msg := []byte(segment(fs.expand(fuzzHeader, now, newJTI())) + "." + segment(fs.expand(claimsFor("aud", "read"), now, newJTI())))
	caller := fs.callerRequest("aud", []string{"read"}, 0, now)
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_Info{Info: &signv1.InfoRequest{}}})
	add(&signv1.ConnectResponse{CallId: 7, Call: &signv1.ConnectResponse_Commit{Commit: &signv1.CommitRequest{Count: 2, KeyId: fs.kid}}})
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_Commit{Commit: &signv1.CommitRequest{Count: 1, KeyId: "ünknown-kid-ünknown-kid-ünknown-kid-ünknown-kid-ünknown-kid-ünknown"}}})
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_Sign{Sign: &signv1.SignRequest{Message: msg, CallerRequest: caller, PolicyHash: fs.hash}}})
	// A policy hash that short() cut inside a rune: the refusal could not
	// be sent back (FuzzGuardianAnswer's first find).
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_Sign{Sign: &signv1.SignRequest{Message: msg, CallerRequest: caller, PolicyHash: "aééééééé"}}})
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_Approve{Approve: &signv1.ApproveRequest{Message: msg, CallerRequest: caller, PolicyHash: fs.hash}}})
	add(&signv1.ConnectResponse{Call: &signv1.ConnectResponse_CeremonyBegin{CeremonyBegin: &ceremonyv1.BeginRequest{CeremonyId: "c"}}})
	add(&signv1.ConnectResponse{CallId: 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fs.forget()
		var call signv1.ConnectResponse
		if proto.Unmarshal(b, &call) != nil {
			return
		}
		// No call may hang: the stream serves every call concurrently,
		// but a call that never returns holds its goroutine forever.
		answered := make(chan *signv1.ConnectRequest, 1)
		go func() { answered <- fs.s.answer(context.Background(), &call) }()
		var ans *signv1.ConnectRequest
		select {
		case ans = <-answered:
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer within 10s to %v", &call)
		}
		if ans == nil || ans.GetAnswer() == nil {
			t.Fatalf("no answer to %v", &call)
		}
		if e := ans.GetError(); e != nil && codes.Code(e.GetCode()) == codes.OK {
			t.Fatalf("an error answer with code OK: %v", e)
		}
		if call.GetCall() == nil && status.Code(errFromAnswer(ans)) != codes.Unimplemented {
			t.Fatalf("an empty call answered %v", ans)
		}
		ans.CallId = call.GetCallId()
		if _, err := proto.Marshal(ans); err != nil {
			t.Fatalf("the answer to %v cannot be sent: %v", &call, err)
		}
	})
}

// errFromAnswer is the status of an error answer, nil otherwise.
func errFromAnswer(a *signv1.ConnectRequest) error {
	if e := a.GetError(); e != nil {
		return status.Error(codes.Code(e.GetCode()), e.GetMessage())
	}
	return nil
}

// FuzzLoadConfig feeds arbitrary files to LoadConfig and Validate: nothing
// may panic; a file is accepted only when it is exactly one JSON value,
// so that nothing after the config is silently ignored; and a config
// accepted, written back as JSON (as the dev cluster writes the configs
// it makes), loads again to the very same config, valid exactly when the
// original is.
func FuzzLoadConfig(f *testing.F) {
	full := Default()
	full.ID, full.Listen, full.Issuer, full.KeysDir, full.AuditLog = 2, "127.0.0.1:7002", "https://mint.example", "keys", "audit.ndjson"
	full.TLS = mtls.Files{Cert: "c.pem", Key: "k.pem", CA: "ca.pem"}
	full.Coordinators, full.Approvers = []string{"spiffe://td/coordinator"}, []string{"spiffe://td/signer/3"}
	full.Keystore = "pkcs11:token=t;object=o?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN"
	full.Guardian = &GuardianConfig{Coordinator: "mint.example:7000", Prompt: "stdin", ApprovalTimeout: Duration(time.Minute)}
	full.Callers = Callers{TrustBundle: "ca.pem", MaxAge: Duration(time.Minute)}
	full.Policy = PolicySource{Files: []string{"policy"}, Reload: Duration(5 * time.Second)}
	for _, c := range []Config{Default(), full} {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"nonce_ttl":"-1s","clock_skew":"1.5ns"}`, `{"guardian":{"prompt":"maybe"}}`, `{"guardian":null}`,
		`{"policy":{"files":[]}}`, `{"id":70000}`, `{"unknown":1}`, `{"id":1} {"id":2}`, `null`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "signer.json")
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
