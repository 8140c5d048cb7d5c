// Package token defines frostmint's access-token profile: the one place where
// the JWT header and claims are described, built and parsed. The coordinator
// uses it to build what the signers sign, every signer uses it to check the
// message it is asked to sign, and the verifier uses it to check tokens, so
// the three can never disagree about what a valid token is.
//
// The profile follows RFC 9068 (JWT access tokens): a compact JWS with header
// {"alg":"EdDSA","typ":"at+jwt","kid":…} and the claims iss, sub, client_id,
// aud (a single string), scope (space-separated), iat, nbf, exp and jti. A
// token lives [DefaultTTL] unless asked otherwise and never more than
// [MaxTTL]; policy may only lower that cap.
package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/frostmint/frostmint/verifier/binding"
)

const (
	// Algorithm is the only JWS algorithm of the profile (RFC 8037).
	Algorithm = "EdDSA"
	// Type is the JWS typ header of an access token (RFC 9068).
	Type = "at+jwt"
	// DefaultTTL is the lifetime of a token when the caller asks for none.
	DefaultTTL = 5 * time.Minute
	// MaxTTL is the hard cap on a token's lifetime (exp - iat), enforced by
	// the coordinator, every signer and the verifier.
	MaxTTL = 15 * time.Minute
	// MaxScopes bounds the number of scopes in one token.
	MaxScopes = 32
	// idBytes is the number of random bytes in a jti (256 bits).
	idBytes = 32
	// maxLen bounds any encoded token or signing input we parse.
	maxLen = 8 << 10
)

// Errors returned by the parsers; wrapped with detail.
var (
	// ErrMalformed means the input is not a well-formed token of the profile.
	ErrMalformed = errors.New("token: malformed")
	// ErrHeader means the JOSE header is not exactly the profile's header.
	ErrHeader = errors.New("token: header not allowed")
	// ErrClaims means a claim is missing or out of range.
	ErrClaims = errors.New("token: invalid claims")
	// ErrTTL means exp - iat exceeds the cap.
	ErrTTL = errors.New("token: lifetime exceeds the cap")
)

// Header is the JOSE header of a token.
type Header struct {
	Algorithm string `json:"alg"`
	Type      string `json:"typ"`
	KeyID     string `json:"kid"`
}

// Claims are the claims of a token. Times are Unix seconds.
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	Audience  string `json:"aud"`
	Scope     string `json:"scope"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	// Binding, when present, is the one HTTP request the token is for
	// (see package binding).
	Binding *binding.Binding `json:"req,omitempty"`
}

// Scopes returns the space-separated scope claim as a list.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScopes reports whether the token grants every scope in want.
func (c *Claims) HasScopes(want ...string) bool {
	have := c.Scopes()
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TTL returns exp - iat, saturating instead of overflowing for absurd
// values (compare lifetimes with [Claims.Validate], which works in seconds).
func (c *Claims) TTL() time.Duration {
	d := c.Expiry - c.IssuedAt
	const maxSec = int64(1<<63-1) / int64(time.Second)
	switch {
	case d > maxSec:
		return time.Duration(1<<63 - 1)
	case d < -maxSec:
		return time.Duration(-1 << 63)
	}
	return time.Duration(d) * time.Second
}

// ExpiresAt returns exp as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// Validate checks that every required claim is present and that the times
// are consistent and within maxTTL (which must not exceed [MaxTTL]; pass 0
// for [MaxTTL]). It does not look at the clock: that is the verifier's job.
// Errors wrap [ErrClaims] or [ErrTTL].
func (c *Claims) Validate(maxTTL time.Duration) error {
	if maxTTL <= 0 || maxTTL > MaxTTL {
		maxTTL = MaxTTL
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"iss", c.Issuer}, {"sub", c.Subject}, {"client_id", c.ClientID},
		{"aud", c.Audience}, {"scope", c.Scope}, {"jti", c.ID},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if c.IssuedAt <= 0 {
		missing = append(missing, "iat")
	}
	if c.NotBefore <= 0 {
		missing = append(missing, "nbf")
	}
	if c.Expiry <= 0 {
		missing = append(missing, "exp")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrClaims, strings.Join(missing, ", "))
	}
	if len(c.Scopes()) > MaxScopes {
		return fmt.Errorf("%w: more than %d scopes", ErrClaims, MaxScopes)
	}
	if c.Scope != strings.Join(c.Scopes(), " ") {
		return fmt.Errorf("%w: scope is not a single-space-separated list", ErrClaims)
	}
	if len(c.ID) < 22 { // 128 bits in base64url
		return fmt.Errorf("%w: jti shorter than 128 bits", ErrClaims)
	}
	if c.NotBefore < c.IssuedAt {
		return fmt.Errorf("%w: nbf before iat", ErrClaims)
	}
	if c.Expiry <= c.NotBefore {
		return fmt.Errorf("%w: exp not after nbf", ErrClaims)
	}
	if c.Binding != nil {
		if err := c.Binding.Validate(); err != nil {
			return fmt.Errorf("%w: req: %w", ErrClaims, err)
		}
	}
	// In whole seconds: a Duration product could overflow and wrap.
	if c.Expiry-c.IssuedAt > int64(maxTTL/time.Second) {
		return fmt.Errorf("%w: exp-iat is %ds, cap %s", ErrTTL, c.Expiry-c.IssuedAt, maxTTL)
	}
	return nil
}

// NewID returns a fresh token id of 256 random bits from r, base64url.
func NewID(r io.Reader) (string, error) {
	b := make([]byte, idBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("token: reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SigningInput returns BASE64URL(header) "." BASE64URL(claims), the bytes the
// signers sign. It refuses a header or claims that do not fit the profile.
func SigningInput(h Header, c Claims) ([]byte, error) {
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	if err := c.Validate(MaxTTL); err != nil {
		return nil, err
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	cj, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(hj))+1+enc.EncodedLen(len(cj)))
	out = enc.AppendEncode(out, hj)
	out = append(out, '.')
	out = enc.AppendEncode(out, cj)
	return out, nil
}

// Compact joins a signing input and a 64-byte signature into a compact JWS.
func Compact(signingInput, sig []byte) string {
	return string(signingInput) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// ParseSigningInput parses BASE64URL(header) "." BASE64URL(claims) strictly:
// canonical unpadded base64url, a header of exactly the profile (alg EdDSA,
// typ at+jwt, a kid, no other parameter), claims with no unknown or duplicate
// member and every required claim present with consistent times and a
// lifetime within [MaxTTL]. Errors wrap [ErrMalformed], [ErrHeader],
// [ErrClaims] or [ErrTTL].
func ParseSigningInput(in []byte) (Header, Claims, error) {
	var h Header
	var c Claims
	if len(in) > maxLen {
		return h, c, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	hb, cb, ok := bytes.Cut(in, []byte{'.'})
	if !ok || bytes.IndexByte(cb, '.') >= 0 {
		return h, c, fmt.Errorf("%w: signing input must have two parts", ErrMalformed)
	}
	hj, err := decodeSegment(hb)
	if err != nil {
		return h, c, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	cj, err := decodeSegment(cb)
	if err != nil {
		return h, c, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if !json.Valid(hj) || !json.Valid(cj) {
		return h, c, fmt.Errorf("%w: a segment is not a single valid JSON value", ErrMalformed)
	}
	if err := strictUnmarshal(hj, &h, headerMembers); err != nil {
		return h, c, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	if err := checkHeader(h); err != nil {
		return h, c, err
	}
	if err := strictUnmarshal(cj, &c, claimMembers); err != nil {
		return h, c, fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if err := c.Validate(MaxTTL); err != nil {
		return h, c, err
	}
	return h, c, nil
}

// Parsed is a compact token split into its parts.
type Parsed struct {
	Header       Header
	Claims       Claims
	SigningInput []byte
	Signature    []byte
}

// ParseCompact splits and parses a compact JWS of the profile without
// checking its signature (see the verifier for that). The signature part
// must decode to exactly 64 bytes. Errors as [ParseSigningInput].
func ParseCompact(tok string) (*Parsed, error) {
	if len(tok) > maxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || strings.Count(tok, ".") != 2 {
		return nil, fmt.Errorf("%w: a compact JWS has three parts", ErrMalformed)
	}
	sig, err := decodeSegment([]byte(tok[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("%w: signature is %d bytes, want 64", ErrMalformed, len(sig))
	}
	in := []byte(tok[:i])
	h, c, err := ParseSigningInput(in)
	if err != nil {
		return nil, err
	}
	return &Parsed{Header: h, Claims: c, SigningInput: in, Signature: sig}, nil
}

func checkHeader(h Header) error {
	if h.Algorithm != Algorithm {
		return fmt.Errorf("%w: alg %q, want %q", ErrHeader, h.Algorithm, Algorithm)
	}
	if h.Type != Type {
		return fmt.Errorf("%w: typ %q, want %q", ErrHeader, h.Type, Type)
	}
	if h.KeyID == "" {
		return fmt.Errorf("%w: kid missing", ErrHeader)
	}
	return nil
}

func decodeSegment(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty segment")
	}
	// The decoder skips CR and LF even in strict mode; a token has exactly
	// one spelling, so only the base64url alphabet is allowed.
	for _, ch := range b {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return nil, errors.New("not canonical unpadded base64url")
		}
	}
	out, err := base64.RawURLEncoding.Strict().DecodeString(string(b))
	if err != nil {
		return nil, errors.New("not canonical unpadded base64url")
	}
	return out, nil
}

var (
	headerMembers = map[string]bool{"alg": true, "typ": true, "kid": true}
	claimMembers  = map[string]bool{
		"iss": true, "sub": true, "client_id": true, "aud": true, "scope": true,
		"iat": true, "nbf": true, "exp": true, "jti": true, "req": true,
	}
)

// strictUnmarshal decodes a JSON object whose members must all be in allowed,
// each at most once, into v. Duplicate members are refused because parsers
// disagree on which one wins.
func strictUnmarshal(data []byte, v any, allowed map[string]bool) error {
	if !json.Valid(data) {
		return errors.New("not a single valid JSON value")
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return errors.New("not a JSON object")
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	if raw == nil {
		return errors.New("not a JSON object")
	}
	for k := range raw {
		if !allowed[k] {
			return fmt.Errorf("member %q not allowed", k)
		}
	}
	if err := checkNoDuplicates(data); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errors.New("a member has the wrong type")
	}
	return nil
}

func checkNoDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return errors.New("not a JSON object")
		}
		k, _ := t.(string)
		if seen[k] {
			return fmt.Errorf("duplicate member %q", k)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("not a JSON object")
		}
	}
	return nil
}
