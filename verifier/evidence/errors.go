package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// The sentinel errors. Every error this package returns wraps exactly one of
// them (a [Config.Validate] error wraps [ErrConfig] once per problem), so
// callers decide with errors.Is and never by matching messages. Messages
// never hold an OIDC token, which is a bearer credential: at most a short
// prefix of its SHA-256 (see the "token sha256:" part of a message).
var (
	// ErrInvalid means a malformed request or piece of evidence: a request
	// Canonical refuses, no evidence or both forms, an unparsable
	// certificate, a token that is not a well-formed compact JWS, a missing
	// or ill-typed claim.
	ErrInvalid = errors.New("evidence: invalid")
	// ErrUntrusted means well-formed evidence that does not prove an
	// identity: a chain that does not verify to the roots, a leaf without
	// exactly one SPIFFE ID or not fit for client authentication, a bad
	// signature, an unknown OIDC issuer, a wrong algorithm or audience, an
	// unknown key id.
	ErrUntrusted = errors.New("evidence: untrusted")
	// ErrExpired means evidence outside its validity window: a certificate
	// proof whose timestamp is too far from now, a certificate not valid at
	// the proof time, an ID token past exp, before nbf, issued in the future,
	// or living longer than MaxOIDCLifetime.
	ErrExpired = errors.New("evidence: expired or not yet valid")
	// ErrReused means the evidence already minted another token.
	ErrReused = errors.New("evidence: already used")
	// ErrStoreFull means a [MemoryUseStore] holds its maximum of live
	// entries, so it cannot record another use (and so refuses it).
	ErrStoreFull = errors.New("evidence: use store full")
	// ErrConfig means an invalid [Config].
	ErrConfig = errors.New("evidence: invalid configuration")
	// ErrUnavailable means the evidence cannot be checked now: the keys of
	// an OIDC issuer could not be fetched (discovery or JWKS failed, or the
	// caller's context ended while waiting for them). Verification fails
	// closed; the caller may retry later.
	ErrUnavailable = errors.New("evidence: cannot verify now")
)

// clip quotes s for an error message, clipped to a length safe for logs.
// Only values that are not secret go through it (never a whole token).
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// tokenRef names a token in messages without revealing it: the first 12 hex
// digits of its SHA-256.
func tokenRef(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "token sha256:" + hex.EncodeToString(h[:6])
}
