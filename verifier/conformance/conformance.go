// Package conformance builds frostmint's verifier conformance vectors: a set
// of tokens, each with the request it is presented for and the outcome and
// [verifier.Code] a correct verifier must return, one or more vectors per
// rule of the token profile. They live in verifier/testdata/conformance.json
// so that a verifier written in another language can check itself against
// exactly what ours does, rule by rule, code by code.
//
// The vectors are generated, not written by hand, so that every signature
// in them is real: [Generate] derives the keys from fixed seeds and signs
// with Ed25519, which is deterministic, so the file is reproducible byte
// for byte. A test in package verifier regenerates it and fails if the
// committed file differs, and runs our verifier over every vector. To
// change the vectors, edit this package and run
//
//	go generate ./verifier
//
// which runs that test with -update. The file's format is [File]; the
// README in verifier/testdata explains it for readers in other languages.
//
// What the vectors cannot express: a replay store that is down
// (replay_store_unavailable depends on the store, not on the token) and
// body limits beyond the one a vector states.
package conformance

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/frostmint/frostmint/verifier/jwks"
)

// Version is the format version of [File].
const Version = 1

// The fixed parameters of the vectors.
const (
	// Now is the verifier's clock for every step (2027-01-01T00:00:00Z).
	Now = 1798761600
	// Leeway is the clock skew, in seconds, every vector assumes.
	Leeway = 30
	// MaxTTL is the lifetime cap, in seconds (the profile's).
	MaxTTL = 900
	// Audience is the verifier's configured audience.
	Audience = "https://api.example"
	// IssuerA is a trusted issuer with two keys.
	IssuerA = "https://mint-a.frostmint.example"
	// IssuerB is a trusted issuer with one key.
	IssuerB = "https://mint-b.frostmint.example"
	// MaxBody is the body limit, in bytes, of steps that bind a body.
	MaxBody = 64
)

// File is the JSON document of the vectors.
type File struct {
	// Comment says where the file comes from; not part of the vectors.
	Comment string `json:"comment"`
	Version int    `json:"version"`
	// Now is the verifier's clock, in Unix seconds, for every step.
	Now int64 `json:"now"`
	// LeewaySeconds is the tolerated clock skew on exp, iat and nbf.
	LeewaySeconds int64 `json:"leeway_seconds"`
	// MaxTTLSeconds caps exp - iat.
	MaxTTLSeconds int64 `json:"max_ttl_seconds"`
	// Audience is the verifier's configured audience, required unless a
	// step's require.audience names another.
	Audience string `json:"audience"`
	// Issuers are the trusted issuers and their JWKS (RFC 8037 OKP keys,
	// kid = RFC 7638 thumbprint).
	Issuers []Issuer `json:"issuers"`
	// Vectors, each checked on a fresh verifier with an empty replay cache.
	Vectors []Vector `json:"vectors"`
}

// Issuer is a trusted issuer.
type Issuer struct {
	Issuer string          `json:"issuer"`
	JWKS   json.RawMessage `json:"jwks"`
}

// Vector is one case: steps run in order on one verifier, sharing its
// replay cache.
type Vector struct {
	// Name is unique and stable.
	Name string `json:"name"`
	// Rule is the check the vector exercises: a code, or "accept".
	Rule string `json:"rule"`
	// Description says what the vector shows.
	Description string `json:"description"`
	Steps       []Step `json:"steps"`
}

// Step presents one token.
type Step struct {
	Token   string   `json:"token"`
	Require Require  `json:"require"`
	Request *Request `json:"request,omitempty"`
	Expect  Expect   `json:"expect"`
}

// Require is what the route requires of the token.
type Require struct {
	// Audience, when set, replaces the configured audience.
	Audience string `json:"audience,omitempty"`
	// Scopes must each be granted.
	Scopes []string `json:"scopes,omitempty"`
	// Replay is "single_use" (each token accepted once) or "reusable".
	Replay string `json:"replay"`
	// RequireBinding refuses a token without a req claim.
	RequireBinding bool `json:"require_binding,omitempty"`
}

// Request is the incoming HTTP request a step's token comes with, for the
// request-binding check. A step without one has no request to check a
// binding against: a token that carries one must be refused
// (binding_mismatch).
type Request struct {
	Method string `json:"method"`
	// Scheme is the scheme the client used ("http" or "https"), which
	// decides the default port.
	Scheme string `json:"scheme"`
	// Authority is the Host header as sent.
	Authority string `json:"authority"`
	// Path is the path as sent on the wire, percent-encoding included.
	Path string `json:"path"`
	// BodyBase64 is the body, standard base64 with padding.
	BodyBase64 string `json:"body_base64,omitempty"`
	// MaxBodyBytes is the most a verifier reads to hash a bound body; a
	// longer body is refused (body_too_large).
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// Expect is the outcome.
type Expect struct {
	// Accept says whether the token is accepted.
	Accept bool `json:"accept"`
	// Code is the refusal's code; "" when accepted.
	Code string `json:"code,omitempty"`
	// Claims are the accepted token's claims, as the verifier returns
	// them (strings unescaped).
	Claims map[string]any `json:"claims,omitempty"`
}

// key returns the deterministic key of name.
func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("frostmint conformance key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// gen holds what the vectors are built from.
type gen struct {
	a1, a2, b, rogue ed25519.PrivateKey
	kidA1, kidA2     string
	kidB, kidRogue   string
	vectors          []Vector
	names            map[string]bool
}

// Generate returns the vectors. Its output is the same on every run.
func Generate() (*File, error) {
	g := &gen{a1: key("a1"), a2: key("a2"), b: key("b"), rogue: key("rogue"), names: map[string]bool{}}
	for _, k := range []struct {
		key ed25519.PrivateKey
		kid *string
	}{{g.a1, &g.kidA1}, {g.a2, &g.kidA2}, {g.b, &g.kidB}, {g.rogue, &g.kidRogue}} {
		kid, err := jwks.KeyID(pub(k.key))
		if err != nil {
			return nil, err
		}
		*k.kid = kid
	}
	setA, err := jwks.Marshal(pub(g.a1), pub(g.a2))
	if err != nil {
		return nil, err
	}
	setB, err := jwks.Marshal(pub(g.b))
	if err != nil {
		return nil, err
	}
	g.all()
	for _, v := range g.vectors {
		if g.names[v.Name] {
			return nil, fmt.Errorf("conformance: duplicate vector %q", v.Name)
		}
		g.names[v.Name] = true
	}
	return &File{
		Comment:       "Generated by package github.com/frostmint/frostmint/verifier/conformance (go generate ./verifier). Do not edit. Format: verifier/testdata/README.md.",
		Version:       Version,
		Now:           Now,
		LeewaySeconds: Leeway,
		MaxTTLSeconds: MaxTTL,
		Audience:      Audience,
		Issuers:       []Issuer{{Issuer: IssuerA, JWKS: setA}, {Issuer: IssuerB, JWKS: setB}},
		Vectors:       g.vectors,
	}, nil
}

// Marshal returns f as indented JSON with a final newline, the form of the
// committed file.
func (f *File) Marshal() ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return []byte(sb.String()), nil
}

var b64 = base64.RawURLEncoding

// raw signs header "." claims, both raw JSON, with k: a token whose
// segments are exactly what the vector says, however wrong.
func raw(k ed25519.PrivateKey, header, claims string) string {
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	return in + "." + b64.EncodeToString(ed25519.Sign(k, []byte(in)))
}

// header returns the profile's header for kid.
func header(kid string) string {
	return `{"alg":"EdDSA","typ":"at+jwt","kid":"` + kid + `"}`
}

// claims is a token's claims, rendered in a fixed member order; extra
// members are spliced in raw.
type claims struct {
	iss, sub, clientID, aud, scope string
	iat, nbf, exp                  int64
	jti                            string
	req                            string // raw JSON of the req claim, or ""
}

// base returns valid claims of issuer A, issued now for five minutes.
func base(jti string) claims {
	return claims{
		iss: IssuerA, sub: "spiffe://example.org/ci/deployer", clientID: "ci-deployer",
		aud: Audience, scope: "orders:read orders:write",
		iat: Now - 10, nbf: Now - 10, exp: Now + 290, jti: jti,
	}
}

// members returns c's members as name and raw JSON value, in the order
// they are rendered.
func (c claims) members() [][2]string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	ms := [][2]string{
		{"iss", q(c.iss)}, {"sub", q(c.sub)}, {"client_id", q(c.clientID)}, {"aud", q(c.aud)},
		{"scope", q(c.scope)}, {"iat", fmt.Sprint(c.iat)}, {"nbf", fmt.Sprint(c.nbf)},
		{"exp", fmt.Sprint(c.exp)}, {"jti", q(c.jti)},
	}
	if c.req != "" {
		ms = append(ms, [2]string{"req", c.req})
	}
	return ms
}

func (c claims) json() string { return render(c.members()) }

// render renders members as a JSON object, without white space.
func render(ms [][2]string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"` + m[0] + `":` + m[1])
	}
	sb.WriteByte('}')
	return sb.String()
}

// without returns c's JSON without the member name.
func (c claims) without(name string) string {
	var out [][2]string
	for _, m := range c.members() {
		if m[0] != name {
			out = append(out, m)
		}
	}
	return render(out)
}

// with returns c's JSON with the member name set to the raw value (last).
func (c claims) with(name, value string) string {
	var out [][2]string
	for _, m := range c.members() {
		if m[0] != name {
			out = append(out, m)
		}
	}
	return render(append(out, [2]string{name, value}))
}

// expectClaims returns the claims a verifier returns for c.
func expectClaims(c claims) map[string]any {
	m := map[string]any{
		"iss": c.iss, "sub": c.sub, "client_id": c.clientID, "aud": c.aud, "scope": c.scope,
		"iat": c.iat, "nbf": c.nbf, "exp": c.exp, "jti": c.jti,
	}
	if c.req != "" {
		var req map[string]any
		if err := json.Unmarshal([]byte(c.req), &req); err != nil {
			panic(err) // a bug in this package
		}
		m["req"] = req
	}
	return m
}

func singleUse() Require { return Require{Replay: "single_use"} }

func accept(c claims) Expect    { return Expect{Accept: true, Claims: expectClaims(c)} }
func reject(code string) Expect { return Expect{Code: code} }

// add appends a one-step vector.
func (g *gen) add(name, rule, desc, tok string, req Require, r *Request, want Expect) {
	g.vectors = append(g.vectors, Vector{Name: name, Rule: rule, Description: desc,
		Steps: []Step{{Token: tok, Require: req, Request: r, Expect: want}}})
}

// signed returns c signed by issuer A's first key.
func (g *gen) signed(c claims) string { return raw(g.a1, header(g.kidA1), c.json()) }
