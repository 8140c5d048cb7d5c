package conformance

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// jti returns a distinct, valid token id for the vector name.
func jti(name string) string {
	h := sha256.Sum256([]byte("frostmint conformance jti " + name))
	return b64.EncodeToString(h[:])
}

// all builds every vector, grouped by the rule they exercise, in the order
// of the verifier's checks.
func (g *gen) all() {
	g.accepted()
	g.malformed()
	g.badHeader()
	g.missingClaim()
	g.issuersAndKeys()
	g.signatures()
	g.times()
	g.audienceAndScope()
	g.bindings()
	g.replay()
	g.precedence()
}

func (g *gen) accepted() {
	c := base(jti("accept-basic"))
	g.add("accept-basic", "accept", "A valid token of issuer A, first key.", g.signed(c), singleUse(), nil, accept(c))

	c = base(jti("accept-second-key"))
	g.add("accept-second-key", "accept", "Issuer A's second key (selected by kid).",
		raw(g.a2, header(g.kidA2), c.json()), singleUse(), nil, accept(c))

	c = base(jti("accept-issuer-b"))
	c.iss = IssuerB
	g.add("accept-issuer-b", "accept", "A second trusted issuer, with its own key.",
		raw(g.b, header(g.kidB), c.json()), singleUse(), nil, accept(c))

	c = base(jti("accept-scopes"))
	c.scope = "orders:read orders:write refunds:create"
	g.add("accept-scopes", "accept", "Every required scope is granted (order does not matter).", g.signed(c),
		Require{Replay: "single_use", Scopes: []string{"refunds:create", "orders:read"}}, nil, accept(c))

	c = base(jti("accept-route-audience"))
	c.aud = "https://billing.example"
	g.add("accept-route-audience", "accept", "The route requires another audience than the configured one, and the token has it.",
		g.signed(c), Require{Replay: "single_use", Audience: "https://billing.example"}, nil, accept(c))

	c = base(jti("accept-escapes"))
	c.sub = "spiffe://example.org/ci/deployer"
	// The same claims with the subject spelled with JSON escapes: the
	// verifier returns the unescaped value.
	esc := strings.Replace(c.json(), `"sub":"spiffe://example.org/ci/deployer"`, `"sub":"spiffe:\/\/example.org\/ci\/d\u0065ployer"`, 1)
	if esc == c.json() {
		panic("conformance: escape substitution failed")
	}
	g.add("accept-escapes", "accept", "JSON string escapes (\\/ and \\u0065) in a claim are decoded.",
		raw(g.a1, header(g.kidA1), esc), singleUse(), nil, accept(c))

	c = base(jti("accept-whitespace"))
	ws := strings.ReplaceAll(c.json(), `,"`, ", \n\t\"")
	g.add("accept-whitespace", "accept", "Insignificant JSON white space between members.",
		raw(g.a1, header(g.kidA1), ws), singleUse(), nil, accept(c))

	c = base(jti("accept-reordered"))
	reordered := fmt.Sprintf(`{"jti":%q,"exp":%d,"nbf":%d,"iat":%d,"scope":%q,"aud":%q,"client_id":%q,"sub":%q,"iss":%q}`,
		c.jti, c.exp, c.nbf, c.iat, c.scope, c.aud, c.clientID, c.sub, c.iss)
	g.add("accept-reordered", "accept", "Members in any order; header members in any order too.",
		raw(g.a1, `{"kid":"`+g.kidA1+`","typ":"at+jwt","alg":"EdDSA"}`, reordered), singleUse(), nil, accept(c))

	c = base(jti("accept-max-ttl"))
	c.iat, c.nbf, c.exp = Now-100, Now-100, Now-100+MaxTTL
	g.add("accept-max-ttl", "accept", "exp - iat equal to the cap (900 s).", g.signed(c), singleUse(), nil, accept(c))

	c = base(jti("accept-nbf-after-iat"))
	c.nbf = Now - 5
	g.add("accept-nbf-after-iat", "accept", "nbf after iat, both past.", g.signed(c), singleUse(), nil, accept(c))
}

func (g *gen) malformed() {
	good := g.signed(base(jti("malformed-base")))
	parts := strings.Split(good, ".")
	m := func(name, desc, tok string) {
		g.add("malformed-"+name, "malformed", desc, tok, singleUse(), nil, reject("malformed"))
	}
	m("empty", "The empty string.", "")
	m("two-parts", "Two segments.", parts[0]+"."+parts[1])
	m("four-parts", "Four segments.", good+"."+parts[2])
	m("empty-signature", "An empty signature segment.", parts[0]+"."+parts[1]+".")
	m("padded", "Padded base64url.", parts[0]+"."+parts[1]+"."+parts[2]+"==")
	m("std-base64", "A character of the standard base64 alphabet (+) in the signature.",
		parts[0]+"."+parts[1]+"."+parts[2][:10]+"+"+parts[2][11:])
	m("noncanonical-bits", "Unused trailing bits of the last base64url character set: another spelling of the same bytes.",
		parts[0]+"."+parts[1]+"."+parts[2][:85]+nextChar(parts[2][85]))
	m("short-signature", "A 63-byte signature.", parts[0]+"."+parts[1]+"."+b64.EncodeToString(mustB64(parts[2])[:63]))
	m("long-signature", "A 65-byte signature.", parts[0]+"."+parts[1]+"."+b64.EncodeToString(append(mustB64(parts[2]), 0)))
	m("leading-space", "White space around the token.", " "+good)
	m("newline-in-segment", "A line break inside a segment (some decoders skip it).", parts[0][:4]+"\n"+parts[0][4:]+"."+parts[1]+"."+parts[2])

	c := base(jti("malformed-not-json"))
	m("header-not-json", "A header segment that is not JSON.", raw(g.a1, `{"alg":"EdDSA","typ":"at+jwt","kid":`, c.json()))
	m("claims-not-json", "A claims segment that is not JSON.", raw(g.a1, header(g.kidA1), c.json()[:40]))
	m("claims-array", "A claims segment that is a JSON array, not an object.", raw(g.a1, header(g.kidA1), "["+c.json()+"]"))
	m("claims-trailing", "Two JSON values in the claims segment.", raw(g.a1, header(g.kidA1), c.json()+"{}"))
	m("claims-invalid-utf8", "Invalid UTF-8 in a claim.",
		raw(g.a1, header(g.kidA1), strings.Replace(c.json(), "ci-deployer", "ci-\xffdeployer", 1)))
	m("too-long", "A token longer than 8 KiB.",
		func() string {
			c := base(jti("malformed-too-long"))
			c.sub = strings.Repeat("s", 8<<10)
			return g.signed(c)
		}())
}

func mustB64(s string) []byte {
	b, err := b64.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// nextChar returns the base64url character whose value is c's with the low
// bit set: the last (86th) character of a 64-byte value carries 2 bits and
// 4 unused bits, which must be zero.
func nextChar(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}

func (g *gen) badHeader() {
	c := base(jti("bad-header"))
	h := func(name, desc, header string) {
		g.add("bad-header-"+name, "bad_header", desc, raw(g.a1, header, c.json()), singleUse(), nil, reject("bad_header"))
	}
	kid := `"kid":"` + g.kidA1 + `"`
	h("alg-none", `alg "none".`, `{"alg":"none","typ":"at+jwt",`+kid+`}`)
	h("alg-hs256", `alg "HS256" (key confusion).`, `{"alg":"HS256","typ":"at+jwt",`+kid+`}`)
	h("alg-es256", `alg "ES256".`, `{"alg":"ES256","typ":"at+jwt",`+kid+`}`)
	h("alg-case", `alg "eddsa": names are case-sensitive.`, `{"alg":"eddsa","typ":"at+jwt",`+kid+`}`)
	h("alg-ed25519", `alg "Ed25519" (the fully-specified name of RFC 9864) is not the profile's.`, `{"alg":"Ed25519","typ":"at+jwt",`+kid+`}`)
	h("typ-jwt", `typ "JWT": an ID token or other JWT is not an access token.`, `{"alg":"EdDSA","typ":"JWT",`+kid+`}`)
	h("typ-missing", "No typ.", `{"alg":"EdDSA",`+kid+`}`)
	h("kid-missing", "No kid.", `{"alg":"EdDSA","typ":"at+jwt"}`)
	h("kid-empty", "An empty kid.", `{"alg":"EdDSA","typ":"at+jwt","kid":""}`)
	h("crit", "A crit parameter.", `{"alg":"EdDSA","typ":"at+jwt",`+kid+`,"crit":["exp"]}`)
	h("jku", "A jku parameter (a key URL chosen by the sender).", `{"alg":"EdDSA","typ":"at+jwt",`+kid+`,"jku":"https://evil.example/jwks"}`)
	h("jwk", "An embedded jwk.", `{"alg":"EdDSA","typ":"at+jwt",`+kid+`,"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`)
	h("duplicate-alg", "alg twice (parsers disagree on which wins).", `{"alg":"none","alg":"EdDSA","typ":"at+jwt",`+kid+`}`)
	h("null-kid", "kid null.", `{"alg":"EdDSA","typ":"at+jwt","kid":null}`)
}

func (g *gen) missingClaim() {
	mc := func(name, desc, claimsJSON string) {
		g.add("missing-claim-"+name, "missing_claim", desc, raw(g.a1, header(g.kidA1), claimsJSON), singleUse(), nil, reject("missing_claim"))
	}
	c := base(jti("missing-claim"))
	for _, member := range []string{"iss", "sub", "client_id", "aud", "scope", "iat", "nbf", "exp", "jti"} {
		mc("no-"+strings.ReplaceAll(member, "_", "-"), "No "+member+" claim.", c.without(member))
	}
	set := c.with
	mc("unknown-member", "An unknown claim (a verifier must not ignore what it does not understand).", set("admin", "true"))
	mc("duplicate-aud", "aud twice.", c.json()[:len(c.json())-1]+`,"aud":"https://other.example"}`)
	mc("aud-array", "aud as an array: the profile's aud is a single string.", set("aud", `["`+Audience+`"]`))
	mc("iat-string", "iat as a string.", set("iat", fmt.Sprintf(`"%d"`, c.iat)))
	mc("iat-fraction", "iat with a fraction.", set("iat", fmt.Sprintf(`%d.5`, c.iat)))
	mc("exp-exponent", "exp in exponent notation.", set("exp", "1.79876189e9"))
	mc("nbf-negative-zero", `nbf "-0".`, set("nbf", "-0"))
	mc("sub-null", "sub null.", set("sub", "null"))
	mc("sub-empty", "sub empty.", set("sub", `""`))
	mc("iat-zero", "iat 0.", set("iat", "0"))
	mc("iat-negative", "iat negative.", set("iat", "-1"))
	mc("jti-short", "jti shorter than 128 bits (22 base64url characters).", set("jti", `"abcdefghijklmnopqrstu"`))
	mc("scope-double-space", "scope with two spaces between words.", set("scope", `"orders:read  orders:write"`))
	mc("scope-leading-space", "scope with a leading space.", set("scope", `" orders:read"`))
	mc("scope-tab", "scope separated by a tab.", set("scope", `"orders:read\torders:write"`))
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("s%d", i)
	}
	mc("too-many-scopes", "33 scopes (at most 32).", set("scope", `"`+strings.Join(many, " ")+`"`))
	mc("nbf-before-iat", "nbf before iat.", set("nbf", fmt.Sprint(c.iat-1)))
	mc("exp-equals-nbf", "exp equal to nbf: an empty validity window.", set("exp", fmt.Sprint(c.nbf)))
	mc("unpaired-surrogate", `A claim with an unpaired surrogate escape ("\ud800").`, set("sub", `"a\ud800b"`))
	mc("req-not-canonical", "A req binding whose method is lower case.", set("req", `{"m":"post","a":"api.example","p":"/orders"}`))
	mc("req-unknown-member", "A req binding with an unknown member.", set("req", `{"m":"POST","a":"api.example","p":"/orders","q":"x=1"}`))

	c = base(jti("ttl-over-cap"))
	c.iat, c.nbf, c.exp = Now-100, Now-100, Now-100+MaxTTL+1
	g.add("ttl-exceeds-cap", "ttl_exceeds_cap", "exp - iat one second over the 900 s cap.", g.signed(c), singleUse(), nil, reject("ttl_exceeds_cap"))
	c = base(jti("ttl-day"))
	c.exp = c.iat + 86400
	g.add("ttl-exceeds-cap-day", "ttl_exceeds_cap", "A day-long token.", g.signed(c), singleUse(), nil, reject("ttl_exceeds_cap"))
}

func (g *gen) issuersAndKeys() {
	c := base(jti("untrusted-issuer"))
	c.iss = "https://evil.example"
	g.add("untrusted-issuer", "untrusted_issuer", "An issuer that is not configured.",
		raw(g.rogue, header(g.kidRogue), c.json()), singleUse(), nil, reject("untrusted_issuer"))
	c = base(jti("untrusted-issuer-slash"))
	c.iss = IssuerA + "/"
	g.add("untrusted-issuer-trailing-slash", "untrusted_issuer", "Issuer A with a trailing slash: issuers compare exactly.",
		g.signed(c), singleUse(), nil, reject("untrusted_issuer"))

	c = base(jti("unknown-key"))
	g.add("unknown-key", "unknown_key", "A kid the issuer does not have.",
		raw(g.rogue, header(g.kidRogue), c.json()), singleUse(), nil, reject("unknown_key"))
	c = base(jti("unknown-key-other-issuer"))
	g.add("unknown-key-other-issuer", "unknown_key", "Issuer B's kid on a token of issuer A: keys are per issuer.",
		raw(g.b, header(g.kidB), c.json()), singleUse(), nil, reject("unknown_key"))
}

func (g *gen) signatures() {
	c := base(jti("bad-signature"))
	tok := g.signed(c)
	sig := mustB64(tok[strings.LastIndexByte(tok, '.')+1:])
	sig[0] ^= 1
	g.add("bad-signature-bit", "bad_signature", "One bit of the signature flipped.",
		tok[:strings.LastIndexByte(tok, '.')+1]+b64.EncodeToString(sig), singleUse(), nil, reject("bad_signature"))

	c = base(jti("bad-signature-wrong-key"))
	g.add("bad-signature-wrong-key", "bad_signature", "Signed by another key under issuer A's kid.",
		raw(g.rogue, header(g.kidA1), c.json()), singleUse(), nil, reject("bad_signature"))

	c = base(jti("bad-signature-changed"))
	tok = g.signed(c)
	c.scope = "orders:read orders:write admin"
	parts := strings.Split(tok, ".")
	g.add("bad-signature-claims-changed", "bad_signature", "Claims changed after signing (a scope added).",
		parts[0]+"."+b64.EncodeToString([]byte(c.json()))+"."+parts[2], singleUse(), nil, reject("bad_signature"))

	c = base(jti("bad-signature-zero"))
	tok = g.signed(c)
	g.add("bad-signature-zero", "bad_signature", "An all-zero signature.",
		tok[:strings.LastIndexByte(tok, '.')+1]+b64.EncodeToString(make([]byte, 64)), singleUse(), nil, reject("bad_signature"))
}

func (g *gen) times() {
	t := func(name, rule, desc string, iat, nbf, exp int64) {
		c := base(jti("time-" + name))
		c.iat, c.nbf, c.exp = iat, nbf, exp
		want := reject(rule)
		if rule == "accept" {
			want = accept(c)
		}
		g.add(name, rule, desc, g.signed(c), singleUse(), nil, want)
	}
	t("expired", "expired", "Expired a minute ago.", Now-360, Now-360, Now-60)
	t("expired-at-leeway", "expired", "exp = now - leeway: expired (a token is valid while now < exp + leeway).", Now-300, Now-300, Now-Leeway)
	t("accept-within-leeway-exp", "accept", "exp = now - leeway + 1: still valid.", Now-300, Now-300, Now-Leeway+1)
	t("issued-in-future", "issued_in_future", "Issued a minute from now.", Now+60, Now+60, Now+360)
	t("issued-in-future-leeway", "issued_in_future", "iat = now + leeway + 1.", Now+Leeway+1, Now+Leeway+1, Now+300)
	t("accept-within-leeway-iat", "accept", "iat = nbf = now + leeway: valid.", Now+Leeway, Now+Leeway, Now+300)
	t("not-yet-valid", "not_yet_valid", "nbf a minute from now, iat now.", Now, Now+60, Now+300)
	t("not-yet-valid-leeway", "not_yet_valid", "nbf = now + leeway + 1.", Now, Now+Leeway+1, Now+300)
}

func (g *gen) audienceAndScope() {
	c := base(jti("wrong-audience"))
	c.aud = "https://other.example"
	g.add("wrong-audience", "wrong_audience", "Another audience.", g.signed(c), singleUse(), nil, reject("wrong_audience"))
	c = base(jti("wrong-audience-case"))
	c.aud = "https://API.example"
	g.add("wrong-audience-case", "wrong_audience", "Audiences compare exactly, case included.", g.signed(c), singleUse(), nil, reject("wrong_audience"))
	c = base(jti("wrong-audience-route"))
	g.add("wrong-audience-route", "wrong_audience", "The route requires another audience: the configured one is not enough.",
		g.signed(c), Require{Replay: "single_use", Audience: "https://billing.example"}, nil, reject("wrong_audience"))

	c = base(jti("insufficient-scope"))
	g.add("insufficient-scope", "insufficient_scope", "A required scope is not granted.", g.signed(c),
		Require{Replay: "single_use", Scopes: []string{"orders:read", "refunds:create"}}, nil, reject("insufficient_scope"))
	c = base(jti("insufficient-scope-prefix"))
	g.add("insufficient-scope-prefix", "insufficient_scope", `Scopes compare whole: "orders" is not granted by "orders:read".`, g.signed(c),
		Require{Replay: "single_use", Scopes: []string{"orders"}}, nil, reject("insufficient_scope"))
}

// request returns a step's request; body nil means none.
func request(method, scheme, authority, path string, body []byte) *Request {
	r := &Request{Method: method, Scheme: scheme, Authority: authority, Path: path, MaxBodyBytes: MaxBody}
	if body != nil {
		r.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return r
}

func bodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return b64.EncodeToString(h[:])
}

func (g *gen) bindings() {
	body := []byte(`{"amount":100}`)
	bound := func(name string, withBody bool) claims {
		c := base(jti(name))
		c.req = `{"m":"POST","a":"api.example","p":"/orders/42/refunds"}`
		if withBody {
			c.req = `{"m":"POST","a":"api.example","p":"/orders/42/refunds","b":"` + bodyHash(body) + `"}`
		}
		return c
	}
	b := func(name, rule, desc string, withBody bool, req Require, r *Request) {
		c := bound(name, withBody)
		want := reject(rule)
		if rule == "accept" {
			want = accept(c)
		}
		g.add(name, rule, desc, g.signed(c), req, r, want)
	}
	post := func(authority, path string, body []byte) *Request {
		return request("POST", "https", authority, path, body)
	}
	must := Require{Replay: "single_use", RequireBinding: true}
	b("accept-bound", "accept", "A token bound to this request (method, authority, path).", false, singleUse(), post("api.example", "/orders/42/refunds", body))
	b("accept-bound-body", "accept", "A token bound to this request and its body.", true, must, post("api.example", "/orders/42/refunds", body))
	b("accept-bound-default-port", "accept", "Host api.example:443 over https is authority api.example.", false, singleUse(), post("api.example:443", "/orders/42/refunds", nil))
	b("accept-bound-host-case", "accept", "Host names compare in lower case.", false, singleUse(), post("API.Example", "/orders/42/refunds", nil))

	c := base(jti("binding-required"))
	g.add("binding-required", "binding_required", "The route requires a bound token; this one is not.", g.signed(c), must,
		post("api.example", "/orders/42/refunds", body), reject("binding_required"))

	b("binding-mismatch-method", "binding_mismatch", "Another method.", false, singleUse(), request("PUT", "https", "api.example", "/orders/42/refunds", nil))
	b("binding-mismatch-authority", "binding_mismatch", "Another host.", false, singleUse(), post("api2.example", "/orders/42/refunds", nil))
	b("binding-mismatch-port", "binding_mismatch", "A non-default port is part of the authority.", false, singleUse(), post("api.example:8443", "/orders/42/refunds", nil))
	b("binding-mismatch-scheme-port", "binding_mismatch", "Port 443 over http is not the default port.", false, singleUse(), request("POST", "http", "api.example:443", "/orders/42/refunds", nil))
	b("binding-mismatch-path", "binding_mismatch", "Another path.", false, singleUse(), post("api.example", "/orders/43/refunds", nil))
	b("binding-mismatch-path-encoding", "binding_mismatch", "The path compares as sent: %34 is not 4.", false, singleUse(), post("api.example", "/orders/%342/refunds", nil))
	b("binding-mismatch-body", "binding_mismatch", "Another body.", true, singleUse(), post("api.example", "/orders/42/refunds", []byte(`{"amount":1000}`)))
	b("binding-mismatch-no-request", "binding_mismatch", "A bound token where the verifier has no request to check it against: refused, not ignored.", false, singleUse(), nil)
	b("body-too-large", "body_too_large", "A bound body longer than the verifier reads (64 bytes here).", true, singleUse(),
		post("api.example", "/orders/42/refunds", []byte(strings.Repeat("x", MaxBody+1))))
}

func (g *gen) replay() {
	c := base(jti("replayed"))
	tok := g.signed(c)
	g.vectors = append(g.vectors, Vector{Name: "replayed", Rule: "replayed",
		Description: "A single-use token accepted once, then refused.",
		Steps: []Step{
			{Token: tok, Require: singleUse(), Expect: accept(c)},
			{Token: tok, Require: singleUse(), Expect: reject("replayed")},
		}})

	c = base(jti("reusable"))
	tok = g.signed(c)
	reusable := Require{Replay: "reusable"}
	g.vectors = append(g.vectors, Vector{Name: "accept-reusable", Rule: "accept",
		Description: "On a route that accepts reusable tokens, the same token is accepted again until it expires.",
		Steps: []Step{
			{Token: tok, Require: reusable, Expect: accept(c)},
			{Token: tok, Require: reusable, Expect: accept(c)},
		}})

	c = base(jti("refused-then-accepted"))
	tok = g.signed(c)
	g.vectors = append(g.vectors, Vector{Name: "accept-after-refusal", Rule: "accept",
		Description: "A token refused for another reason (here a missing scope) is not remembered: it is accepted where it is valid.",
		Steps: []Step{
			{Token: tok, Require: Require{Replay: "single_use", Scopes: []string{"admin"}}, Expect: reject("insufficient_scope")},
			{Token: tok, Require: singleUse(), Expect: accept(c)},
		}})

	c = base(jti("same-jti"))
	a := g.signed(c)
	c2 := c
	c2.iss = IssuerB
	bTok := raw(g.b, header(g.kidB), c2.json())
	g.vectors = append(g.vectors, Vector{Name: "accept-same-jti-other-issuer", Rule: "accept",
		Description: "Token ids are unique per issuer: the same jti from two issuers names two tokens.",
		Steps: []Step{
			{Token: a, Require: singleUse(), Expect: accept(c)},
			{Token: bTok, Require: singleUse(), Expect: accept(c2)},
		}})
}

// precedence pins the order of the checks where a token breaks several
// rules: the first check in the documented order decides the code.
func (g *gen) precedence() {
	c := base(jti("prec-sig-expired"))
	c.iat, c.nbf, c.exp = Now-400, Now-400, Now-100
	g.add("precedence-signature-before-time", "bad_signature", "Expired and signed by the wrong key: the signature is checked first.",
		raw(g.rogue, header(g.kidA1), c.json()), singleUse(), nil, reject("bad_signature"))

	c = base(jti("prec-expired-aud"))
	c.iat, c.nbf, c.exp = Now-400, Now-400, Now-100
	c.aud = "https://other.example"
	g.add("precedence-time-before-audience", "expired", "Expired and for another audience: time first.",
		g.signed(c), singleUse(), nil, reject("expired"))

	c = base(jti("prec-aud-scope"))
	c.aud = "https://other.example"
	g.add("precedence-audience-before-scope", "wrong_audience", "Another audience and a missing scope: audience first.",
		g.signed(c), Require{Replay: "single_use", Scopes: []string{"admin"}}, nil, reject("wrong_audience"))

	c = base(jti("prec-scope-binding"))
	g.add("precedence-scope-before-binding", "insufficient_scope", "A missing scope on a route that requires binding: scope first.",
		g.signed(c), Require{Replay: "single_use", Scopes: []string{"admin"}, RequireBinding: true}, nil, reject("insufficient_scope"))

	c = base(jti("prec-header-claims"))
	g.add("precedence-header-before-claims", "bad_header", "alg none and an unknown claim: the header first.",
		raw(g.a1, `{"alg":"none","typ":"at+jwt","kid":"`+g.kidA1+`"}`, c.json()[:len(c.json())-1]+`,"admin":true}`),
		singleUse(), nil, reject("bad_header"))

	c = base(jti("prec-issuer-claims"))
	c.iss = "https://evil.example"
	c.iat, c.nbf, c.exp = Now-400, Now-400, Now-100
	g.add("precedence-issuer-before-time", "untrusted_issuer", "An untrusted issuer and expired: the issuer first.",
		raw(g.rogue, header(g.kidRogue), c.json()), singleUse(), nil, reject("untrusted_issuer"))
}
