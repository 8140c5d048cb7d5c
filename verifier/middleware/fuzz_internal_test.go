package middleware

import (
	"errors"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/verifier"
)

// FuzzBearer checks the Authorization parsing: it never panics, every
// outcome is one of the three documented, and a token it returns is the
// b64token that follows a case-insensitive "Bearer" and spaces.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{
		"", "Bearer", "Bearer ", "Bearer a.b.c", "bearer a.b.c", "BEARER   a.b.c", "Bearer\ta.b.c",
		"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer a b", "Bearer a==", "Bearer =a", "Bearer a=b",
		"Bearer a.b.c, Bearer d.e.f", "Bearer: a", "Bearerx a", " Bearer a ", "Bearer a\x00",
		"Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln", "Négociate x",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, header string, twice bool) {
		values := []string{header}
		if twice {
			values = append(values, header)
		}
		tok, err := bearerFromHeader(values)
		switch {
		case err == nil:
			if twice {
				t.Fatalf("two headers accepted: %q", tok)
			}
			if !isB64Token(tok) || strings.ContainsAny(tok, " \t\r\n,;\"") {
				t.Fatalf("token %q", tok)
			}
			v := strings.Trim(header, " \t")
			if !strings.EqualFold(v[:6], "bearer") || v[6] != ' ' || strings.TrimLeft(v[6:], " ") != tok {
				t.Fatalf("header %q gave token %q", header, tok)
			}
		case errors.Is(err, ErrMissingToken):
			if twice {
				t.Fatalf("two headers reported as missing: %v", err)
			}
			if _, ok := errors.AsType[*verifier.Error](err); ok {
				t.Fatalf("missing is a verifier error: %v", err)
			}
		default:
			e, ok := errors.AsType[*verifier.Error](err)
			if !ok || e.Code != verifier.CodeMalformed || !errors.Is(err, ErrBadAuthorization) {
				t.Fatalf("error %v", err)
			}
			// The reason never quotes the header.
			if len(header) > 8 && strings.Contains(e.Reason, header) {
				t.Fatalf("reason %q quotes the header", e.Reason)
			}
		}
	})
}

func TestBearerValid(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		tok  string
		miss bool
	}{
		{in: []string{"Bearer a.b.c"}, tok: "a.b.c"},
		{in: []string{"bEaReR a~+/b=="}, tok: "a~+/b=="},
		{in: []string{"Bearer    x"}, tok: "x"},
		{in: nil, miss: true},
		{in: []string{"  "}, miss: true},
		{in: []string{"Digest username=x"}, miss: true},
		{in: []string{"Bearer a=b"}},
		{in: []string{"Bearer ="}},
		{in: []string{"Bearer a.b.c extra"}},
		{in: []string{"Bearer a.b.c", "Basic x"}},
		{in: []string{"Bearer,a"}},
	} {
		tok, err := bearerFromHeader(tc.in)
		switch {
		case tc.tok != "":
			if err != nil || tok != tc.tok {
				t.Errorf("%q: %q, %v; want %q", tc.in, tok, err, tc.tok)
			}
		case tc.miss:
			if !errors.Is(err, ErrMissingToken) {
				t.Errorf("%q: %q, %v; want ErrMissingToken", tc.in, tok, err)
			}
		default:
			if !errors.Is(err, ErrBadAuthorization) || verifier.CodeOf(err) != verifier.CodeMalformed {
				t.Errorf("%q: %q, %v; want ErrBadAuthorization", tc.in, tok, err)
			}
		}
	}
}
