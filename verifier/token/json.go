package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/frostmint/frostmint/verifier/binding"
)

// This file is the JSON parser of the profile: a small hand-written parser
// for exactly the header and the claims of a token, because decoding them
// with encoding/json (plus the duplicate-member and unknown-member checks
// the profile needs) cost more than everything else a verifier does but
// the signature check. encoding/json stays the reference: a differential
// fuzz test (json_internal_test.go) checks that, for any input, this parser
// accepts exactly what encoding/json under the rules below accepts, with
// the same result.
//
// The rules. A segment is exactly one JSON object (RFC 8259), optionally
// surrounded by JSON whitespace (space, tab, CR, LF), in valid UTF-8, with:
//
//   - only the members of the profile, each at most once, matched exactly
//     (case-sensitively, after unescaping: "\u0061lg" is "alg"); the header
//     has alg, typ and kid; the claims have iss, sub, client_id, aud, scope,
//     jti (strings), iat, nbf, exp (integers) and req (an object with the
//     strings m, a, p and b, each at most once, and nothing else);
//   - no null, true, false or array anywhere, and no object but the value of
//     req: a member of the wrong type is refused, never ignored or zeroed;
//   - strings: any escape of RFC 8259 (\" \\ \/ \b \f \n \r \t \uXXXX),
//     decoded; no raw control character (below U+0020); a \u escape of a
//     UTF-16 surrogate must be a high surrogate immediately followed by a \u
//     escape of a low one (the pair decodes to one code point): an unpaired
//     surrogate is refused, not replaced with U+FFFD as encoding/json does;
//   - integers: -?(0|[1-9][0-9]*) within int64. A fraction or an exponent
//     (1.0, 1e9, even 17e8) is refused, although JSON allows it, because
//     the times are whole seconds and a number has one spelling; "-0" is
//     refused for the same reason (it is 0, spelled differently). Leading
//     zeros are not JSON. Out-of-range values are refused, never clamped
//     or wrapped. (Negative values parse; Claims.Validate refuses them.)
//
// Errors of this parser are classified by the caller: a segment that is
// not one JSON value in valid UTF-8 at all is malformed, anything else
// refused here is a bad header or bad claims.

// jsonParser reads one JSON text. Strings without escapes are returned as
// substrings of s, so parsing allocates nothing but escaped strings and
// the req object.
type jsonParser struct {
	s string
	i int
}

// errJSON is the cause of every refusal of the parser; the detail says what
// and where.
var errJSON = errors.New("not a JSON object of the profile")

func (p *jsonParser) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errJSON, what, p.i)
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// open consumes optional whitespace and the "{" of an object.
func (p *jsonParser) open() error {
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return p.fail("not an object")
	}
	p.i++
	return nil
}

// next moves to the next member of the object being read. It returns the
// member's name with the parser at its value, or more == false once it has
// consumed the closing "}". first says whether no member was read yet.
func (p *jsonParser) next(first bool) (name string, more bool, err error) {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return "", false, nil
	}
	if !first {
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return "", false, p.fail(`expected "," or "}"`)
		}
		p.i++
		p.ws()
	}
	if name, err = p.str(); err != nil {
		return "", false, err
	}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != ':' {
		return "", false, p.fail(`expected ":"`)
	}
	p.i++
	p.ws()
	return name, true, nil
}

// end checks that nothing but whitespace follows the object.
func (p *jsonParser) end() error {
	p.ws()
	if p.i != len(p.s) {
		return p.fail("data after the object")
	}
	return nil
}

// str reads a string. The text was checked to be valid UTF-8 as a whole.
func (p *jsonParser) str() (string, error) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", p.fail("not a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.s) && plain[p.s[p.i]] {
		p.i++
	}
	switch {
	case p.i >= len(p.s):
		return "", p.fail("unterminated string")
	case p.s[p.i] == '"':
		v := p.s[start:p.i]
		p.i++
		return v, nil
	case p.s[p.i] == '\\':
		return p.escaped(start)
	default:
		return "", p.fail("control character in a string")
	}
}

// plain are the bytes that stand for themselves in a string: all but the
// quote, the backslash and the control characters.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// escaped finishes reading a string that has an escape at p.i and starts
// at start.
func (p *jsonParser) escaped(start int) (string, error) {
	buf := make([]byte, 0, len(p.s)-start)
	buf = append(buf, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // the backslash
		if p.i >= len(p.s) {
			break
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail(`bad \u escape`)
			}
			switch {
			case r >= 0xDC00 && r < 0xE000:
				return "", p.fail("unpaired low surrogate")
			case r >= 0xD800 && r < 0xDC00:
				if p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
					return "", p.fail("unpaired high surrogate")
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok {
					return "", p.fail(`bad \u escape`)
				}
				if lo < 0xDC00 || lo >= 0xE000 {
					return "", p.fail("unpaired high surrogate")
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("invalid escape")
		}
	}
	return "", p.fail("unterminated string")
}

// hex4 reads the four hex digits of a \u escape.
func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}

// integer reads an integer under the rules above.
func (p *jsonParser) integer() (int64, error) {
	neg := false
	if p.i < len(p.s) && p.s[p.i] == '-' {
		neg = true
		p.i++
	}
	if p.i >= len(p.s) || p.s[p.i] < '0' || p.s[p.i] > '9' {
		return 0, p.fail("not an integer")
	}
	limit := uint64(1<<63 - 1)
	if neg {
		limit++
	}
	var u uint64
	if p.s[p.i] == '0' {
		p.i++
		if neg {
			return 0, p.fail("-0")
		}
	} else {
		for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
			d := uint64(p.s[p.i] - '0')
			if u > (limit-d)/10 {
				return 0, p.fail("integer out of range")
			}
			u = u*10 + d
			p.i++
		}
	}
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case '.', 'e', 'E':
			return 0, p.fail("not an integer")
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return 0, p.fail("leading zero")
		}
	}
	if neg {
		return int64(-u), nil // -u wraps to MinInt64 for u = 1<<63, as wanted
	}
	return int64(u), nil
}

// member records the first occurrence of the member with bit in seen, and
// refuses a second one.
func (p *jsonParser) member(seen *uint16, bit uint16, name string) error {
	if *seen&bit != 0 {
		return p.fail(fmt.Sprintf("duplicate member %q", name))
	}
	*seen |= bit
	return nil
}

// parseHeaderJSON parses the JSON of a header. It does not check the
// header's values: see checkHeader.
func parseHeaderJSON(s string) (Header, error) {
	h, err := (&jsonParser{s: s}).header()
	if err != nil {
		return Header{}, err
	}
	return h, nil
}

func (p *jsonParser) header() (Header, error) {
	var h Header
	s := p.s
	if !utf8.ValidString(s) {
		return h, fmt.Errorf("%w: not valid UTF-8", errJSON)
	}
	if err := p.open(); err != nil {
		return h, err
	}
	var seen uint16
	for first := true; ; first = false {
		name, more, err := p.next(first)
		if err != nil {
			return h, err
		}
		if !more {
			break
		}
		var dst *string
		var bit uint16
		switch name {
		case "alg":
			dst, bit = &h.Algorithm, 1<<0
		case "typ":
			dst, bit = &h.Type, 1<<1
		case "kid":
			dst, bit = &h.KeyID, 1<<2
		default:
			return h, p.fail(fmt.Sprintf("member %q not allowed", clipName(name)))
		}
		if err := p.member(&seen, bit, name); err != nil {
			return h, err
		}
		if *dst, err = p.str(); err != nil {
			return h, err
		}
	}
	return h, p.end()
}

// parseClaimsJSON parses the JSON of the claims. It does not check the
// claims' values: see Claims.Validate.
func parseClaimsJSON(s string) (Claims, error) {
	c, err := (&jsonParser{s: s}).claims()
	if err != nil {
		return Claims{}, err
	}
	return c, nil
}

func (p *jsonParser) claims() (Claims, error) {
	var c Claims
	s := p.s
	if !utf8.ValidString(s) {
		return c, fmt.Errorf("%w: not valid UTF-8", errJSON)
	}
	if err := p.open(); err != nil {
		return c, err
	}
	var seen uint16
	for first := true; ; first = false {
		name, more, err := p.next(first)
		if err != nil {
			return c, err
		}
		if !more {
			break
		}
		var str *string
		var num *int64
		var bit uint16
		switch name {
		case "iss":
			str, bit = &c.Issuer, 1<<0
		case "sub":
			str, bit = &c.Subject, 1<<1
		case "client_id":
			str, bit = &c.ClientID, 1<<2
		case "aud":
			str, bit = &c.Audience, 1<<3
		case "scope":
			str, bit = &c.Scope, 1<<4
		case "iat":
			num, bit = &c.IssuedAt, 1<<5
		case "nbf":
			num, bit = &c.NotBefore, 1<<6
		case "exp":
			num, bit = &c.Expiry, 1<<7
		case "jti":
			str, bit = &c.ID, 1<<8
		case "req":
			bit = 1 << 9
		default:
			return c, p.fail(fmt.Sprintf("member %q not allowed", clipName(name)))
		}
		if err := p.member(&seen, bit, name); err != nil {
			return c, err
		}
		switch {
		case str != nil:
			*str, err = p.str()
		case num != nil:
			*num, err = p.integer()
		default:
			c.Binding, err = p.binding()
		}
		if err != nil {
			return c, err
		}
	}
	return c, p.end()
}

// binding reads the object of the claim req.
func (p *jsonParser) binding() (*binding.Binding, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	b := new(binding.Binding)
	var seen uint16
	for first := true; ; first = false {
		name, more, err := p.next(first)
		if err != nil {
			return nil, err
		}
		if !more {
			return b, nil
		}
		var dst *string
		var bit uint16
		switch name {
		case "m":
			dst, bit = &b.Method, 1<<0
		case "a":
			dst, bit = &b.Authority, 1<<1
		case "p":
			dst, bit = &b.Path, 1<<2
		case "b":
			dst, bit = &b.BodySHA256, 1<<3
		default:
			return nil, p.fail(fmt.Sprintf("member req.%q not allowed", clipName(name)))
		}
		if err := p.member(&seen, bit, name); err != nil {
			return nil, err
		}
		if *dst, err = p.str(); err != nil {
			return nil, err
		}
	}
}

func clipName(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// wellFormed reports whether s is one JSON object in valid UTF-8: what
// separates a malformed segment from a header or claims not of the profile.
func wellFormed(s string) bool {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i < len(s) && s[i] == '{' && utf8.ValidString(s) && json.Valid([]byte(s))
}
