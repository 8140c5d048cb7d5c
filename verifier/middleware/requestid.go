package middleware

import (
	"context"
	"crypto/rand"
	"net/http"
)

// MaxRequestIDLen is the longest request id the middleware accepts.
const MaxRequestIDLen = 128

type requestIDKey struct{}

// ValidRequestID reports whether id is a sane request id: 1 to
// [MaxRequestIDLen] characters of [A-Za-z0-9._-], safe in a header, a log
// line and a JSON string.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID returns a fresh random id (128 bits, base32).
func newRequestID() string { return rand.Text() }

// defaultRequestID is the X-Request-Id header when there is exactly one and
// it is sane, else a fresh id.
func defaultRequestID(r *http.Request) string {
	if v := r.Header.Values("X-Request-Id"); len(v) == 1 && ValidRequestID(v[0]) {
		return v[0]
	}
	return newRequestID()
}

// RequestIDFromContext returns the request id the middleware put in ctx,
// or "" if there is none.
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithRequestID returns r with its request id in its context, and the id:
// the one already there, or else one of [Options.RequestID] (replaced by a
// fresh random id if it is not [ValidRequestID]). It cannot fail. A
// gateway calls it before [Middleware.Authenticate] to know the id to pass
// to [WriteError].
func (m *Middleware) WithRequestID(r *http.Request) (*http.Request, string) {
	id, inCtx := m.requestIDOf(r)
	if inCtx {
		return r, id
	}
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)), id
}

// requestIDOf returns the request id of r and whether it is in r's
// context already.
func (m *Middleware) requestIDOf(r *http.Request) (string, bool) {
	if id := RequestIDFromContext(r.Context()); id != "" {
		return id, true
	}
	id := m.requestID(r)
	if !ValidRequestID(id) {
		id = newRequestID()
	}
	return id, false
}
