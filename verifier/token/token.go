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
// [MaxTTL]; policy may only lower that cap. The optional claim req binds a
// token to one HTTP request (package binding).
//
// Tokens are parsed strictly, by a parser written for exactly this profile
// (json.go) and checked against encoding/json by a differential fuzz test:
// one spelling per token (canonical base64url, exactly one JSON object per
// segment, valid UTF-8), no unknown, duplicate or mistyped member, no null,
// integers without fraction, exponent or "-0", no unpaired surrogate.
// Parsing a typical token costs about a microsecond, a few percent of its
// signature check.
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
	"unicode"

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

// HasScopes reports whether the token grants every scope in want. It
// splits the scope claim as [Claims.Scopes] does, without allocating.
func (c *Claims) HasScopes(want ...string) bool {
	for _, w := range want {
		if !c.hasScope(w) {
			return false
		}
	}
	return true
}

func (c *Claims) hasScope(w string) bool {
	for h := range strings.FieldsSeq(c.Scope) {
		if h == w {
			return true
		}
	}
	return false
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
	n := 0
	for range strings.FieldsSeq(c.Scope) {
		n++
	}
	if n > MaxScopes {
		return fmt.Errorf("%w: more than %d scopes", ErrClaims, MaxScopes)
	}
	if !singleSpaced(c.Scope) {
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

// singleSpaced reports whether s == strings.Join(strings.Fields(s), " "):
// no white space (unicode.IsSpace) but single ASCII spaces between words.
func singleSpaced(s string) bool {
	space := true // a space here would be leading
	for _, r := range s {
		if unicode.IsSpace(r) {
			if r != ' ' || space {
				return false
			}
			space = true
		} else {
			space = false
		}
	}
	return s == "" || !space
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
// lifetime within [MaxTTL]. Each segment must be exactly one JSON object in
// valid UTF-8; the rules for its strings and numbers are those of the
// profile's own parser (see json.go: no null, integers without fraction,
// exponent or "-0", no unpaired surrogate escape). Errors wrap
// [ErrMalformed] (not base64url, not one JSON value in UTF-8, too long),
// [ErrHeader], [ErrClaims] or [ErrTTL].
func ParseSigningInput(in []byte) (Header, Claims, error) {
	if len(in) > maxLen {
		return Header{}, Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	dot := bytes.IndexByte(in, '.')
	if dot < 0 || bytes.IndexByte(in[dot+1:], '.') >= 0 {
		return Header{}, Claims{}, fmt.Errorf("%w: signing input must have two parts", ErrMalformed)
	}
	hb, cb := in[:dot], in[dot+1:]
	// Both segments are decoded into one buffer, on the stack for a token
	// of ordinary size, and copied once into the string the header and
	// claims strings are sliced from.
	var stack [1024]byte
	buf := stack[:]
	if n := b64.DecodedLen(len(hb)) + b64.DecodedLen(len(cb)); n > len(buf) {
		buf = make([]byte, n)
	}
	hn, err := decodeSegment(buf, hb)
	if err != nil {
		return Header{}, Claims{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	cn, err := decodeSegment(buf[hn:], cb)
	if err != nil {
		return Header{}, Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	text := string(buf[:hn+cn])
	return parseJSON(text[:hn], text[hn:])
}

// parseJSON parses the decoded header and claims. A refusal is
// [ErrMalformed] when either segment is not one JSON object in valid UTF-8,
// whichever check refused, so that the class of an error does not depend
// on the order of the checks.
func parseJSON(hj, cj string) (Header, Claims, error) {
	refuse := func(class, err error) (Header, Claims, error) {
		if !wellFormed(hj) || !wellFormed(cj) {
			return Header{}, Claims{}, fmt.Errorf("%w: a segment is not a single JSON object in valid UTF-8", ErrMalformed)
		}
		if class == nil {
			return Header{}, Claims{}, err
		}
		return Header{}, Claims{}, fmt.Errorf("%w: %w", class, err)
	}
	h, err := parseHeaderJSON(hj)
	if err != nil {
		return refuse(ErrHeader, err)
	}
	if err := checkHeader(h); err != nil {
		return refuse(nil, err)
	}
	c, err := parseClaimsJSON(cj)
	if err != nil {
		return refuse(ErrClaims, err)
	}
	if err := c.Validate(MaxTTL); err != nil {
		return Header{}, Claims{}, err
	}
	// checkHeader made them equal; the constants, not slices of the text.
	h.Algorithm, h.Type = Algorithm, Type
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
	var sig [64]byte
	if err := decodeSignature(&sig, tok[i+1:]); err != nil {
		return nil, err
	}
	// One allocation holds the signing input and the signature.
	buf := make([]byte, i+len(sig))
	copy(buf, tok[:i])
	copy(buf[i:], sig[:])
	in := buf[:i:i]
	h, c, err := ParseSigningInput(in)
	if err != nil {
		return nil, err
	}
	return &Parsed{Header: h, Claims: c, SigningInput: in, Signature: buf[i:]}, nil
}

// sigLen is the length of a 64-byte signature in unpadded base64url.
const sigLen = (64*8 + 5) / 6

func decodeSignature(sig *[64]byte, seg string) error {
	if len(seg) != sigLen {
		// Decode anyway, for the error.
		b := make([]byte, b64.DecodedLen(len(seg)))
		n, err := decodeSegment(b, []byte(seg))
		if err != nil {
			return fmt.Errorf("%w: signature: %w", ErrMalformed, err)
		}
		return fmt.Errorf("%w: signature is %d bytes, want 64", ErrMalformed, n)
	}
	var src [sigLen]byte
	copy(src[:], seg)
	if _, err := decodeSegment(sig[:], src[:]); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	return nil
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

// b64 is the only encoding of a segment: unpadded base64url whose unused
// trailing bits are zero.
var b64 = base64.RawURLEncoding.Strict()

// decodeSegment decodes the segment b into dst, which must have room for
// it, and returns the length decoded.
func decodeSegment(dst, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("empty segment")
	}
	// The strict decoder refuses every byte outside the base64url alphabet
	// but CR and LF, which it skips; a token has exactly one spelling, so
	// those are refused here.
	if bytes.IndexByte(b, '\r') >= 0 || bytes.IndexByte(b, '\n') >= 0 {
		return 0, errors.New("not canonical unpadded base64url")
	}
	n, err := b64.Decode(dst, b)
	if err != nil {
		return 0, errors.New("not canonical unpadded base64url")
	}
	return n, nil
}
