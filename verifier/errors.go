package verifier

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Code is a stable, machine-readable reason for refusing a token. Codes are
// part of the API: they are never renamed, and new ones may be added.
type Code string

// The codes of [Verifier.Check] and [Verifier.Verify], in the order of the
// checks that return them.
const (
	// CodeMalformed: not a compact JWS of the profile (structure, base64url,
	// JSON, UTF-8, signature length, size).
	CodeMalformed Code = "malformed"
	// CodeBadHeader: the JOSE header is not exactly {alg: EdDSA, typ:
	// at+jwt, kid}: another algorithm (none, HS256, …), another type, no
	// kid, or any other parameter (crit, jku, jwk, x5u, …).
	CodeBadHeader Code = "bad_header"
	// CodeMissingClaim: a claim is missing, duplicated, unknown, of the
	// wrong type or inconsistent (nbf before iat, exp not after nbf, …).
	CodeMissingClaim Code = "missing_claim"
	// CodeTTLExceedsCap: exp - iat exceeds the lifetime cap.
	CodeTTLExceedsCap Code = "ttl_exceeds_cap"
	// CodeUntrustedIssuer: iss is not a configured issuer.
	CodeUntrustedIssuer Code = "untrusted_issuer"
	// CodeUnknownKey: the issuer has no key of the token's kid.
	CodeUnknownKey Code = "unknown_key"
	// CodeBadSignature: the signature does not verify.
	CodeBadSignature Code = "bad_signature"
	// CodeExpired: the token expired (exp), beyond the leeway.
	CodeExpired Code = "expired"
	// CodeIssuedInFuture: iat is in the future, beyond the leeway.
	CodeIssuedInFuture Code = "issued_in_future"
	// CodeNotYetValid: nbf is in the future, beyond the leeway.
	CodeNotYetValid Code = "not_yet_valid"
	// CodeWrongAudience: aud is not this verifier's audience.
	CodeWrongAudience Code = "wrong_audience"
	// CodeInsufficientScope: a required scope is missing.
	CodeInsufficientScope Code = "insufficient_scope"
	// CodeBindingRequired: the route requires a request-bound token
	// ([Requirements].RequireBinding) and the token has no req claim.
	CodeBindingRequired Code = "binding_required"
	// CodeBindingMismatch: the token is bound to a request (claim req) and
	// the incoming request is not that one, or nothing could check it
	// (no [Requirements].CheckBinding).
	CodeBindingMismatch Code = "binding_mismatch"
	// CodeBodyTooLarge: the token binds the request body, and the body is
	// too large to hash within the checker's limit
	// (binding.ErrBodyTooLarge).
	CodeBodyTooLarge Code = "body_too_large"
	// CodeReplayed: the token was already accepted once.
	CodeReplayed Code = "replayed"
	// CodeReplayStoreUnavailable: the replay cache could not tell whether
	// the token was seen (it failed, or is full of live entries).
	CodeReplayStoreUnavailable Code = "replay_store_unavailable"
)

// HTTPStatus returns the HTTP status a resource server answers a request
// refused with code c: 403 Forbidden for [CodeInsufficientScope] (the
// token is good, the grant is not enough), 503 Service Unavailable for
// [CodeReplayStoreUnavailable] (the server cannot decide; the token may be
// good), 413 Content Too Large for [CodeBodyTooLarge], and 401
// Unauthorized for every other code, including [CodeReplayed], the binding
// codes, "" and codes this version does not know: a refusal is never
// mapped to a success.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInsufficientScope:
		return http.StatusForbidden
	case CodeReplayStoreUnavailable:
		return http.StatusServiceUnavailable
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusUnauthorized
	}
}

// GRPCCode returns the gRPC status code of a call refused with code c, as
// [Code.HTTPStatus] does for HTTP: PermissionDenied for
// [CodeInsufficientScope], Unavailable for [CodeReplayStoreUnavailable],
// ResourceExhausted for [CodeBodyTooLarge] (gRPC's code for a message over
// a size limit), and Unauthenticated for every other code, including "" and
// unknown codes.
func (c Code) GRPCCode() codes.Code {
	switch c {
	case CodeInsufficientScope:
		return codes.PermissionDenied
	case CodeReplayStoreUnavailable:
		return codes.Unavailable
	case CodeBodyTooLarge:
		return codes.ResourceExhausted
	default:
		return codes.Unauthenticated
	}
}

// Error is the error of [Verifier.Check] and [Verifier.Verify]: why a
// token was refused.
type Error struct {
	// Code is the stable reason.
	Code Code
	// Reason is a human-readable detail, for logs. Values taken from the
	// token are quoted and clipped.
	Reason string
	// Err is the underlying error, if any (a token or jwks sentinel, a
	// replay cache error, …).
	Err error
}

// Error returns "<code>: <reason>".
func (e *Error) Error() string { return string(e.Code) + ": " + e.Reason }

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the code of the first [*Error] in err's tree, or "" if
// there is none (err is nil or not from [Verifier.Check]).
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

func refuse(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...), Err: err}
}

// clip quotes s for a reason, clipped to a length safe for logs.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
