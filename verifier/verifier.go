package verifier

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	issuers  map[string]jwks.KeySet
	audience string
	leeway   time.Duration
	maxTTL   time.Duration
	replay   ReplayCache
	now      func() time.Time
}

// New returns a Verifier for cfg, with defaults filled in. It fails, with
// the error of [Config.Validate], if cfg is not usable.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		issuers:  make(map[string]jwks.KeySet, len(cfg.Issuers)),
		audience: cfg.Audience,
		leeway:   cfg.Leeway,
		maxTTL:   cfg.MaxTTL,
		replay:   cfg.Replay,
		now:      cfg.Now,
	}
	for _, iss := range cfg.Issuers {
		v.issuers[iss.Issuer] = iss.Keys
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.maxTTL == 0 {
		v.maxTTL = token.MaxTTL
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.replay == nil {
		v.replay = NewMemoryReplayCache(DefaultReplayCacheSize, v.now)
	}
	return v, nil
}

// Verify checks tok and returns its claims if, and only if, every check
// passes. requiredScopes are the scopes the request needs; the token must
// grant all of them.
//
// The checks, in order, and the [Code] of the [*Error] each returns:
//
//  1. tok is a compact JWS of the profile, at most 8 KiB, in canonical
//     unpadded base64url, whose header and claims are each exactly one JSON
//     object with no duplicate member, and whose signature is 64 bytes
//     ([CodeMalformed]);
//  2. the header is exactly {"alg":"EdDSA","typ":"at+jwt","kid":…}, with no
//     other parameter ([CodeBadHeader]);
//  3. every claim of the profile is present, once, with its type, and none
//     other ([CodeMissingClaim]); exp - iat is within [token.MaxTTL]
//     ([CodeTTLExceedsCap]);
//  4. iss is a trusted issuer ([CodeUntrustedIssuer]);
//  5. that issuer has a key of the header's kid ([CodeUnknownKey]);
//  6. the Ed25519 signature verifies under that key ([CodeBadSignature]);
//  7. now < exp + leeway ([CodeExpired]), iat <= now + leeway
//     ([CodeIssuedInFuture]), nbf <= now + leeway ([CodeNotYetValid]);
//  8. exp - iat is within the configured MaxTTL ([CodeTTLExceedsCap]);
//  9. aud is exactly the configured audience ([CodeWrongAudience]);
//  10. every required scope is granted ([CodeInsufficientScope]);
//  11. the token was not accepted before ([CodeReplayed]), which the replay
//     cache must be able to tell ([CodeReplayStoreUnavailable]); the cache
//     then remembers the token until exp + leeway.
//
// Claims are not trusted before step 6: steps 1 to 3 only refuse. Every
// error is an [*Error]; its Err wraps token.ErrMalformed and the like,
// jwks.ErrUnknownKey, or the replay cache's error ([ErrReplayCacheFull]…).
func (v *Verifier) Verify(ctx context.Context, tok string, requiredScopes ...string) (*token.Claims, error) {
	p, err := token.ParseCompact(tok)
	if err != nil {
		return nil, parseError(err)
	}
	if err := strict(tok, p.SigningInput); err != nil {
		return nil, refuse(CodeMalformed, err, "%v", err)
	}
	c := p.Claims

	keys, ok := v.issuers[c.Issuer]
	if !ok {
		return nil, refuse(CodeUntrustedIssuer, nil, "issuer %s is not trusted", clip(c.Issuer))
	}
	pub, err := keys.Key(p.Header.KeyID)
	if err != nil {
		return nil, refuse(CodeUnknownKey, err, "issuer %s has no usable key %s", clip(c.Issuer), clip(p.Header.KeyID))
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, refuse(CodeUnknownKey, nil, "key %s of issuer %s is %d bytes", clip(p.Header.KeyID), clip(c.Issuer), len(pub))
	}
	if !ed25519.Verify(pub, p.SigningInput, p.Signature) {
		return nil, refuse(CodeBadSignature, nil, "signature does not verify under key %s", clip(p.Header.KeyID))
	}

	// From here on the claims are the issuer's. Times are compared in whole
	// seconds: exp, nbf and iat are integers, and floor(now ± leeway)
	// compares with an integer exactly as now ± leeway does. Claims are
	// positive (token.Claims.Validate), so differences cannot overflow.
	now := v.now()
	if early := now.Add(-v.leeway).Unix(); early >= c.Expiry {
		return nil, refuse(CodeExpired, nil, "expired at %d, now %d, leeway %s", c.Expiry, now.Unix(), v.leeway)
	}
	late := now.Add(v.leeway).Unix()
	if c.IssuedAt > late {
		return nil, refuse(CodeIssuedInFuture, nil, "issued at %d, now %d, leeway %s", c.IssuedAt, now.Unix(), v.leeway)
	}
	if c.NotBefore > late {
		return nil, refuse(CodeNotYetValid, nil, "not before %d, now %d, leeway %s", c.NotBefore, now.Unix(), v.leeway)
	}
	// In whole seconds, unlike token.Claims.TTL, whose conversion to a
	// time.Duration overflows (and so passes its own cap) for absurd exp.
	if ttl := c.Expiry - c.IssuedAt; ttl <= 0 || ttl > int64(v.maxTTL/time.Second) {
		return nil, refuse(CodeTTLExceedsCap, nil, "lifetime %ds exceeds the cap %s", ttl, v.maxTTL)
	}
	if c.Audience != v.audience {
		return nil, refuse(CodeWrongAudience, nil, "audience %s, want %s", clip(c.Audience), clip(v.audience))
	}
	if !c.HasScopes(requiredScopes...) {
		return nil, refuse(CodeInsufficientScope, nil, "scope %s lacks one of %s", clip(c.Scope), clip(strings.Join(requiredScopes, " ")))
	}

	// exp is at most now + leeway + MaxTTL here, so this cannot overflow.
	expiry := time.Unix(c.Expiry, 0).Add(v.leeway)
	seen, err := v.replay.Seen(ctx, replayKey(c.Issuer, c.ID), expiry)
	if err != nil {
		return nil, refuse(CodeReplayStoreUnavailable, err, "replay cache: %v", err)
	}
	if seen {
		return nil, refuse(CodeReplayed, nil, "token %s of issuer %s was already used", clip(c.ID), clip(c.Issuer))
	}
	return &c, nil
}

// parseError maps the errors of token.ParseCompact to codes.
func parseError(err error) *Error {
	code := CodeMalformed
	switch {
	case errors.Is(err, token.ErrHeader):
		code = CodeBadHeader
	case errors.Is(err, token.ErrTTL):
		code = CodeTTLExceedsCap
	case errors.Is(err, token.ErrClaims):
		code = CodeMissingClaim
	}
	return refuse(code, err, "%v", err)
}

// strict refuses what token.ParseCompact lets through although it is not
// a canonical compact JWS of one JSON object per segment: characters
// outside the base64url alphabet (base64 decoders skip CR and LF), trailing
// data after a JSON object (a second "}" or "]", say), and invalid UTF-8.
// Another JWT library would refuse such a token, and the same signed token
// must not have several spellings. It is belt and braces over the token
// package, and costs a scan and two small base64 decodings.
func strict(tok string, signingInput []byte) error {
	for i := 0; i < len(tok); i++ {
		if !isBase64URL(tok[i]) && tok[i] != '.' {
			return fmt.Errorf("%w: byte %d is not base64url", token.ErrMalformed, i)
		}
	}
	h, c, _ := strings.Cut(string(signingInput), ".")
	for _, seg := range []struct{ name, b64 string }{{"header", h}, {"claims", c}} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(seg.b64)
		if err != nil || !utf8.Valid(b) || !json.Valid(b) {
			return fmt.Errorf("%w: %s is not exactly one JSON object in UTF-8", token.ErrMalformed, seg.name)
		}
	}
	return nil
}

func isBase64URL(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// replayKey names a token in the replay cache: jti values are only unique
// per issuer, so the issuer is part of the key, length-prefixed so that no
// two (iss, jti) pairs share a key.
func replayKey(iss, jti string) string {
	return strconv.Itoa(len(iss)) + ":" + iss + ":" + jti
}
