// Package binding defines request binding: a token may say which single
// HTTP request it is meant for, so that a token captured in flight (from a
// log, a proxy, a browser) is useless for any other request.
//
// A caller asks for a binding when it mints; the token then carries it as
// the claim "req", an object with the request's method ("m"), authority
// ("a"), path ("p") and, optionally, the SHA-256 of its body ("b"). A
// verifier computes the same canonical form of each incoming request and
// refuses a mismatch. The canonical form, component by component:
//
//   - m: the request method, upper case ASCII letters only ("GET", "POST").
//   - a: the authority the client addressed (the Host header), lower case;
//     a port is kept only when it is not the scheme's default (80 for
//     http, 443 for https); an IPv6 literal keeps its brackets. No user
//     info.
//   - p: the path exactly as sent on the wire, percent-encoding included
//     (Go's URL.EscapedPath), starting with "/"; no query, no fragment.
//     An empty path is "/".
//   - b: base64url (no padding) of the SHA-256 of the exact body bytes;
//     absent when the body is not bound. A bound empty body is the hash of
//     the empty string.
//
// Two bindings match when all four components are equal as strings. The
// test vectors in testdata/vectors.json pin this definition.
package binding

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Errors; returned errors wrap one of these.
var (
	// ErrInvalid means a binding is not in canonical form.
	ErrInvalid = errors.New("binding: not canonical")
	// ErrMismatch means a request is not the one the token is bound to.
	ErrMismatch = errors.New("binding: request does not match the token's binding")
	// ErrBodyTooLarge means the body could not be hashed within the limit.
	ErrBodyTooLarge = errors.New("binding: body too large to check")
)

// Binding is the claim "req" of a token.
type Binding struct {
	Method     string `json:"m"`
	Authority  string `json:"a"`
	Path       string `json:"p"`
	BodySHA256 string `json:"b,omitempty"`
}

const maxComponent = 2048

// Validate checks that b is in canonical form.
func (b Binding) Validate() error {
	if b.Method == "" || len(b.Method) > 32 || strings.IndexFunc(b.Method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return fmt.Errorf("%w: method %q", ErrInvalid, b.Method)
	}
	if a, err := Authority(b.Authority, ""); err != nil || a != b.Authority {
		return fmt.Errorf("%w: authority %q", ErrInvalid, b.Authority)
	}
	if !strings.HasPrefix(b.Path, "/") || len(b.Path) > maxComponent || strings.ContainsAny(b.Path, "?# \t\r\n") {
		return fmt.Errorf("%w: path %q", ErrInvalid, b.Path)
	}
	for i := 0; i < len(b.Path); i++ {
		if c := b.Path[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: path %q has a byte outside printable ASCII", ErrInvalid, b.Path)
		}
	}
	if b.BodySHA256 != "" {
		d, err := base64.RawURLEncoding.Strict().DecodeString(b.BodySHA256)
		if err != nil || len(d) != sha256.Size || strings.ContainsAny(b.BodySHA256, "\r\n") {
			return fmt.Errorf("%w: body hash %q", ErrInvalid, b.BodySHA256)
		}
	}
	return nil
}

// Authority returns the canonical form of an authority (host[:port]) for
// the given scheme ("http", "https", or "" when unknown, which keeps any
// port). It fails with ErrInvalid on user info, an empty or malformed host,
// or a bad port.
func Authority(authority, scheme string) (string, error) {
	if authority == "" || len(authority) > 255 || strings.ContainsAny(authority, "@/?# \t\r\n") {
		return "", fmt.Errorf("%w: authority %q", ErrInvalid, authority)
	}
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		// No port.
		host, port = authority, ""
		if strings.HasPrefix(host, "[") {
			if !strings.HasSuffix(host, "]") {
				return "", fmt.Errorf("%w: authority %q", ErrInvalid, authority)
			}
			host = host[1 : len(host)-1]
		} else if strings.Contains(host, ":") {
			return "", fmt.Errorf("%w: authority %q", ErrInvalid, authority)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%w: empty host in %q", ErrInvalid, authority)
	}
	// Brackets only around an IPv6 literal: "[[]" is no host "[".
	if strings.ContainsAny(host, "[]") {
		return "", fmt.Errorf("%w: authority %q", ErrInvalid, authority)
	}
	if port != "" {
		if len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" || port[0] == '0' {
			return "", fmt.Errorf("%w: port in %q", ErrInvalid, authority)
		}
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			port = ""
		}
	}
	// ASCII letters only: strings.ToLower turns each invalid UTF-8 byte into
	// U+FFFD, so distinct hosts shared one form, which was not canonical
	// itself (three bytes for one, past the length bound).
	host = lowerASCII(host)
	if strings.Contains(host, ":") {
		if net.ParseIP(host) == nil {
			return "", fmt.Errorf("%w: authority %q", ErrInvalid, authority)
		}
		host = "[" + host + "]"
	}
	if port != "" {
		return host + ":" + port, nil
	}
	return host, nil
}

// lowerASCII lower-cases the ASCII letters of s and keeps every other byte.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// BodyHash returns the "b" component for body.
func BodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// New builds a canonical binding; withBody says whether body is bound.
func New(method, authority, scheme, path string, body []byte, withBody bool) (Binding, error) {
	a, err := Authority(authority, scheme)
	if err != nil {
		return Binding{}, err
	}
	if path == "" {
		path = "/"
	}
	b := Binding{Method: method, Authority: a, Path: path}
	if withBody {
		b.BodySHA256 = BodyHash(body)
	}
	return b, b.Validate()
}

// Check compares r with the binding want. When want binds the body, Check
// reads at most maxBody bytes of it to hash, and puts the bytes back so the
// request can still be served; a longer body fails with ErrBodyTooLarge.
// A mismatch fails with an error wrapping ErrMismatch that names the first
// differing component (never the body).
//
// The scheme (for the default port) is https when r.TLS is set, else
// http; a server behind a TLS terminator should use [CheckScheme].
func Check(r *http.Request, want Binding, maxBody int64) error {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return CheckScheme(r, scheme, want, maxBody)
}

// CheckScheme is [Check] with the scheme the client used given explicitly.
func CheckScheme(r *http.Request, scheme string, want Binding, maxBody int64) error {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	got := Binding{Method: r.Method, Path: path}
	a, err := Authority(r.Host, scheme)
	if err != nil {
		return fmt.Errorf("%w: the request's authority %q is not valid", ErrMismatch, r.Host)
	}
	got.Authority = a
	switch {
	case got.Method != want.Method:
		return fmt.Errorf("%w: method %s, token is for %s", ErrMismatch, got.Method, want.Method)
	case got.Authority != want.Authority:
		return fmt.Errorf("%w: authority %s, token is for %s", ErrMismatch, got.Authority, want.Authority)
	case got.Path != want.Path:
		return fmt.Errorf("%w: path %s, token is for %s", ErrMismatch, got.Path, want.Path)
	}
	if want.BodySHA256 == "" {
		return nil
	}
	var body []byte
	if r.Body != nil {
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		if err != nil {
			return fmt.Errorf("%w: reading the body: %v", ErrMismatch, err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if int64(len(body)) > maxBody {
			return fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, maxBody)
		}
	}
	if BodyHash(body) != want.BodySHA256 {
		return fmt.Errorf("%w: body hash differs", ErrMismatch)
	}
	return nil
}
