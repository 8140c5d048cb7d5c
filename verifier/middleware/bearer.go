package middleware

import (
	"fmt"
	"strings"

	"github.com/frostmint/frostmint/verifier"
)

// bearerFromHeader returns the token of the Authorization header values
// (all the request's Authorization headers, in order).
//
// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, the scheme
// case-insensitive. No header, an empty one or another scheme is
// ErrMissingToken; several headers, "Bearer" without a token or a token
// outside b64token is a *verifier.Error of code malformed wrapping
// ErrBadAuthorization. The token's own syntax is the verifier's business.
func bearerFromHeader(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrMissingToken
	case 1:
	default:
		return "", badAuthorization("%d Authorization headers", len(values))
	}
	v := strings.Trim(values[0], " \t")
	if v == "" {
		return "", ErrMissingToken
	}
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if len(scheme) > len("Bearer") && strings.EqualFold(scheme[:len("Bearer")], "Bearer") {
			// "Bearer\ttoken", "Bearer:token": a bearer credential, badly written.
			return "", badAuthorization("no space after the Bearer scheme")
		}
		return "", ErrMissingToken
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", badAuthorization("Bearer without a token")
	}
	if !isB64Token(tok) {
		return "", badAuthorization("the token is not an RFC 6750 b64token")
	}
	return tok, nil
}

func badAuthorization(format string, args ...any) error {
	return &verifier.Error{
		Code:   verifier.CodeMalformed,
		Reason: "authorization header: " + fmt.Sprintf(format, args...),
		Err:    ErrBadAuthorization,
	}
}

// isB64Token: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
