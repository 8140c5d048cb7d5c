package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/frostmint/frostmint/verifier"
)

// Errors of the middleware itself, beside the [*verifier.Error] of the
// token checks.
var (
	// ErrMissingToken means the request carries no bearer token: no
	// Authorization header, an empty one, or one of another scheme
	// ("Basic …"). Code "missing_token", 401 without an error attribute
	// (RFC 6750 §3.1).
	ErrMissingToken = errors.New("middleware: no bearer token")
	// ErrAuditUnavailable means the decision could not be recorded, so the
	// request is denied whatever the decision was. Code
	// "audit_unavailable", 503; gRPC Unavailable.
	ErrAuditUnavailable = errors.New("middleware: audit log unavailable")
	// ErrBadAuthorization is the Err of the [*verifier.Error] (code
	// malformed) for Authorization headers that are not one Bearer
	// credential: several headers, "Bearer" without a token, or a token
	// with characters outside RFC 6750's b64token.
	ErrBadAuthorization = errors.New("middleware: Authorization is not one Bearer credential")
)

// Codes of the middleware, beside the verifier's.
const (
	CodeMissingToken     = "missing_token"
	CodeAuditUnavailable = "audit_unavailable"
	// CodeNoRule: a gRPC method for which the [MethodRules] return no
	// route (Unauthenticated).
	CodeNoRule = "no_rule"
	// CodeInternal: an error that is none of the above (it should not
	// happen); the request is refused with 500 or gRPC Internal.
	CodeInternal = "internal_error"
)

// RequiredScopesError is the Err of the [*verifier.Error] that
// [Middleware.Authenticate] returns for insufficient_scope: it carries the
// route's scopes, for the scope attribute of the challenge.
type RequiredScopesError struct {
	// Scopes are the scopes the route requires.
	Scopes []string
	// Err is the verifier's Err, if any.
	Err error
}

// Error lists the required scopes.
func (e *RequiredScopesError) Error() string {
	return "required scopes: " + strings.Join(e.Scopes, " ")
}

// Unwrap returns e.Err.
func (e *RequiredScopesError) Unwrap() error { return e.Err }

// messages are the fixed human messages per code: all a client is told,
// beside the code and the request id.
var messages = map[string]string{
	CodeMissingToken:     "A bearer token is required.",
	CodeAuditUnavailable: "The service cannot record its decision now; try again later.",
	CodeNoRule:           "No rule for this method.",
	CodeInternal:         "The request could not be authorized.",

	string(verifier.CodeMalformed):              "The access token is malformed.",
	string(verifier.CodeBadHeader):              "The access token is not of an accepted type.",
	string(verifier.CodeMissingClaim):           "The access token lacks a required claim.",
	string(verifier.CodeTTLExceedsCap):          "The access token lives longer than allowed.",
	string(verifier.CodeUntrustedIssuer):        "The access token's issuer is not trusted.",
	string(verifier.CodeUnknownKey):             "The access token is signed with an unknown key.",
	string(verifier.CodeBadSignature):           "The access token's signature is not valid.",
	string(verifier.CodeExpired):                "The access token has expired.",
	string(verifier.CodeIssuedInFuture):         "The access token is not valid yet.",
	string(verifier.CodeNotYetValid):            "The access token is not valid yet.",
	string(verifier.CodeWrongAudience):          "The access token is not for this service.",
	string(verifier.CodeInsufficientScope):      "The access token lacks a scope this request requires.",
	string(verifier.CodeReplayed):               "The access token has already been used.",
	string(verifier.CodeReplayStoreUnavailable): "The service cannot check tokens now; try again shortly.",
	string(verifier.CodeBindingRequired):        "This request requires a token bound to it.",
	string(verifier.CodeBindingMismatch):        "The access token is bound to another request.",
	string(verifier.CodeBodyTooLarge):           "The request body is too large to check against the access token.",
}

// invalidTokenMessage is the message of verifier codes added after this
// table.
const invalidTokenMessage = "The access token is not valid."

// Message returns the fixed message a client is given for code: the same
// for every request, never a detail of one.
func Message(code string) string {
	if m, ok := messages[code]; ok {
		return m
	}
	return invalidTokenMessage
}

// codeOf returns the stable code of an error of the middleware.
func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrAuditUnavailable):
		return CodeAuditUnavailable
	case errors.Is(err, ErrMissingToken):
		return CodeMissingToken
	case errors.Is(err, errNoRule):
		return CodeNoRule
	}
	if c := verifier.CodeOf(err); c != "" && safeCode(string(c)) {
		return string(c)
	}
	return CodeInternal
}

// safeCode: codes are [a-z0-9_]; anything else never reaches a header.
func safeCode(c string) bool {
	for i := 0; i < len(c); i++ {
		if b := c[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_') {
			return false
		}
	}
	return c != ""
}

// Realm is the realm of the middleware's challenges.
const Realm = "frostmint"

// errorBody is the JSON body of every rejection.
type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// WriteError writes the rejection for err, as the middleware does, so that
// a gateway answers identically: the status, WWW-Authenticate and
// Retry-After of err's code (see the package documentation), X-Request-Id,
// Content-Type: application/json, Cache-Control: no-store, and the body
// {"error":code,"message":fixed message,"request_id":requestID}. Nothing of
// err but its code reaches the client.
//
// err is an error of [Middleware.Authenticate]. Any other error, nil
// included, is answered as "internal_error" with 500: WriteError never
// writes a success. A requestID that is not 1 to 128 characters of
// [A-Za-z0-9._-] is replaced by a fresh one. The body is not written for
// HEAD requests. WriteError cannot fail (a failed write to w is the
// client's loss).
func WriteError(w http.ResponseWriter, r *http.Request, requestID string, err error) {
	if !ValidRequestID(requestID) {
		requestID = newRequestID()
	}
	code := codeOf(err)
	status, challenge := http.StatusInternalServerError, ""
	switch code {
	case CodeInternal:
	case CodeMissingToken:
		status, challenge = http.StatusUnauthorized, `Bearer realm="`+Realm+`"`
	case CodeAuditUnavailable:
		status = http.StatusServiceUnavailable
	default:
		status = verifier.Code(code).HTTPStatus()
		if status < 400 || status > 599 { // a code the verifier does not map: a refusal still
			status = http.StatusUnauthorized
		}
		switch status {
		case http.StatusUnauthorized:
			challenge = `Bearer realm="` + Realm + `", error="invalid_token", error_description="` + code + `"`
		case http.StatusForbidden:
			challenge = `Bearer realm="` + Realm + `", error="insufficient_scope"`
			if e, ok := errors.AsType[*RequiredScopesError](err); ok && len(e.Scopes) > 0 && validScopes(e.Scopes) {
				challenge += `, scope="` + strings.Join(e.Scopes, " ") + `"`
			}
		}
	}
	h := w.Header()
	h.Set("X-Request-Id", requestID)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	if code == string(verifier.CodeReplayStoreUnavailable) {
		h.Set("Retry-After", "1")
	}
	body, _ := json.Marshal(errorBody{Error: code, Message: Message(code), RequestID: requestID}) // cannot fail
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		w.Write(append(body, '\n'))
	}
}

func validScopes(scopes []string) bool {
	for _, s := range scopes {
		if !validScopeToken(s) {
			return false
		}
	}
	return true
}
