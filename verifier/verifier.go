package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/frostmint/frostmint/verifier/binding"
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

// ReplayMode says whether a token may be used more than once.
type ReplayMode int

const (
	// SingleUse, the default, accepts each token (issuer and jti) once:
	// the replay cache refuses it afterwards ([CodeReplayed]).
	SingleUse ReplayMode = iota
	// Reusable accepts a token any number of times until it expires; the
	// replay cache is not consulted. For routes that accept reusable
	// tokens on purpose (a long-poll, a stream reconnecting), never as a
	// way around an unavailable replay store.
	Reusable
)

// Requirements are what one request or route requires of a token, beyond
// the [Config]. The zero value requires only what the Config does: its
// audience, no scope, single use, and a binding checked if the token has
// one (which, with no CheckBinding, refuses it).
type Requirements struct {
	// Audience is the exact aud claim the route requires; "" means
	// Config.Audience.
	Audience string
	// Scopes must each be granted by the token's scope claim.
	Scopes []string
	// Replay is SingleUse (the default) or Reusable. Any other value is
	// SingleUse.
	Replay ReplayMode
	// RequireBinding refuses tokens without a req claim
	// ([CodeBindingRequired]).
	RequireBinding bool
	// CheckBinding is called when the token carries a req claim, after the
	// signature, time, audience and scope checks and before the replay
	// check. It must return nil when the incoming request matches want
	// (binding.Check does that), or an error: [CodeBindingMismatch], or
	// [CodeBodyTooLarge] when the error wraps binding.ErrBodyTooLarge. A
	// token with a binding and a nil CheckBinding is refused
	// ([CodeBindingMismatch]): a verifier that cannot check the binding
	// fails closed.
	CheckBinding func(want binding.Binding) error
}

// Verify is [Verifier.Check] with Requirements{Scopes: requiredScopes}:
// the configured audience, those scopes, single use, and no way to check a
// request binding, so that a token bound to a request is refused
// ([CodeBindingMismatch]).
func (v *Verifier) Verify(ctx context.Context, tok string, requiredScopes ...string) (*token.Claims, error) {
	return v.Check(ctx, tok, Requirements{Scopes: requiredScopes})
}

// Check checks tok against the [Config] and req, and returns its claims
// if, and only if, every check passes.
//
// The checks, in order, and the [Code] of the [*Error] each returns:
//
//  1. tok is a compact JWS of the profile, at most 8 KiB, in canonical
//     unpadded base64url, whose header and claims are each exactly one JSON
//     object in valid UTF-8, and whose signature is 64 bytes
//     ([CodeMalformed]);
//  2. the header is exactly {"alg":"EdDSA","typ":"at+jwt","kid":…}, with no
//     other parameter and none twice ([CodeBadHeader]);
//  3. every claim of the profile is present, once, with its type, and none
//     other ([CodeMissingClaim]); exp - iat is within [token.MaxTTL]
//     ([CodeTTLExceedsCap]);
//  4. iss is a trusted issuer ([CodeUntrustedIssuer]);
//  5. that issuer has a key of the header's kid ([CodeUnknownKey]);
//  6. the Ed25519 signature verifies under that key ([CodeBadSignature]);
//  7. now < exp + leeway ([CodeExpired]), iat <= now + leeway
//     ([CodeIssuedInFuture]), nbf <= now + leeway ([CodeNotYetValid]);
//  8. exp - iat is within the configured MaxTTL ([CodeTTLExceedsCap]);
//  9. aud is exactly req.Audience, or the configured audience when that is
//     "" ([CodeWrongAudience]);
//  10. every scope of req.Scopes is granted ([CodeInsufficientScope]);
//  11. the request binding: a token without a req claim is refused if
//     req.RequireBinding ([CodeBindingRequired]); a token with one is
//     refused unless req.CheckBinding accepts its binding
//     ([CodeBindingMismatch], or [CodeBodyTooLarge]);
//  12. unless req.Replay is Reusable, the token was not accepted before
//     ([CodeReplayed]), which the replay cache must be able to tell
//     ([CodeReplayStoreUnavailable]); the cache then remembers the token
//     until exp + leeway.
//
// Claims are not trusted before step 6: steps 1 to 3 only refuse. A token
// refused at any step but 12 takes no room in the replay cache, so a token
// refused for its binding, say, can still be used for the request it is
// bound to. Every error is an [*Error]; its Err wraps token.ErrMalformed
// and the like, jwks.ErrUnknownKey, the error of CheckBinding, or the
// replay cache's error ([ErrReplayCacheFull]…).
func (v *Verifier) Check(ctx context.Context, tok string, req Requirements) (*token.Claims, error) {
	p, err := token.ParseCompact(tok)
	if err != nil {
		return nil, parseError(err)
	}
	c := &p.Claims

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
	audience := req.Audience
	if audience == "" {
		audience = v.audience
	}
	if c.Audience != audience {
		// A copy: req would otherwise leak to the heap through the reason,
		// and with it the caller's Scopes (Verify's variadic slice).
		return nil, refuse(CodeWrongAudience, nil, "audience %s, want %s", clip(c.Audience), clip(strings.Clone(audience)))
	}
	if !c.HasScopes(req.Scopes...) {
		return nil, refuse(CodeInsufficientScope, nil, "scope %s lacks one of %s", clip(c.Scope), clip(strings.Join(req.Scopes, " ")))
	}
	if err := checkBinding(c, &req); err != nil {
		return nil, err
	}
	if req.Replay == Reusable {
		return c, nil
	}

	// exp is at most now + leeway + MaxTTL here, so this cannot overflow.
	expiry := time.Unix(c.Expiry, 0).Add(v.leeway)
	seen, err := v.seen(ctx, c.Issuer, c.ID, expiry)
	if err != nil {
		return nil, refuse(CodeReplayStoreUnavailable, err, "replay cache: %v", err)
	}
	if seen {
		return nil, refuse(CodeReplayed, nil, "token %s of issuer %s was already used", clip(c.ID), clip(c.Issuer))
	}
	return c, nil
}

// checkBinding is step 11 of Check.
func checkBinding(c *token.Claims, req *Requirements) *Error {
	if c.Binding == nil {
		if req.RequireBinding {
			return refuse(CodeBindingRequired, nil, "token %s is not bound to a request", clip(c.ID))
		}
		return nil
	}
	if req.CheckBinding == nil {
		return refuse(CodeBindingMismatch, nil, "token %s is bound to a request, and this verifier does not check bindings", clip(c.ID))
	}
	if err := req.CheckBinding(*c.Binding); err != nil {
		// The error names values of the token and the request: clipped.
		if errors.Is(err, binding.ErrBodyTooLarge) {
			return refuse(CodeBodyTooLarge, err, "request body too large to check the binding: %s", clip(err.Error()))
		}
		return refuse(CodeBindingMismatch, err, "request does not match the token's binding: %s", clip(err.Error()))
	}
	return nil
}

// seen asks the replay cache about the token (iss, jti). The in-memory
// cache is asked without building the key as a string.
func (v *Verifier) seen(ctx context.Context, iss, jti string, expiry time.Time) (bool, error) {
	if m, ok := v.replay.(*MemoryReplayCache); ok {
		var stack [256]byte
		return m.seenKey(sha256.Sum256(appendReplayKey(stack[:0], iss, jti)), expiry)
	}
	return v.replay.Seen(ctx, replayKey(iss, jti), expiry)
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

// replayKey names a token in the replay cache: jti values are only unique
// per issuer, so the issuer is part of the key, length-prefixed so that no
// two (iss, jti) pairs share a key.
func replayKey(iss, jti string) string {
	var stack [256]byte
	return string(appendReplayKey(stack[:0], iss, jti))
}

// appendReplayKey appends the replay key of (iss, jti) to dst.
func appendReplayKey(dst []byte, iss, jti string) []byte {
	dst = strconv.AppendInt(dst, int64(len(iss)), 10)
	dst = append(dst, ':')
	dst = append(dst, iss...)
	dst = append(dst, ':')
	return append(dst, jti...)
}
