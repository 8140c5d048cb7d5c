package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/frostmint/frostmint/verifier/binding"
)

// This file checks the hand-written JSON parser (json.go) against a
// reference built on encoding/json: the reference decodes with
// encoding/json and adds the profile's rules on top (exactly one object,
// valid UTF-8, no duplicate or unknown member, exact types, no unpaired
// surrogate escape, the integer rules), each rule stated independently of
// the parser's code.

var (
	headerRef = map[string]byte{"alg": 's', "typ": 's', "kid": 's'}
	claimsRef = map[string]byte{
		"iss": 's', "sub": 's', "client_id": 's', "aud": 's', "scope": 's', "jti": 's',
		"iat": 'i', "nbf": 'i', "exp": 'i', "req": 'o',
	}
	bindingRef = map[string]byte{"m": 's', "a": 's', "p": 's', "b": 's'}
	// integerRef is the profile's integer: JSON's integer syntax without
	// "-0"; the range is checked with strconv.
	integerRef = regexp.MustCompile(`^(0|-?[1-9][0-9]*)$`)
)

// refObject decodes data, which must be one JSON object with members from
// allowed, each at most once, into a map of raw values, checking each
// value's type: 's' a string, 'i' an integer, 'o' a binding object.
func refObject(data []byte, allowed map[string]byte) (map[string]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, ok := t.(string)
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		m[k] = raw
		kind, ok := allowed[k]
		if !ok {
			return nil, false
		}
		switch kind {
		case 's':
			if raw[0] != '"' {
				return nil, false
			}
		case 'i':
			n := string(raw)
			if !integerRef.MatchString(n) {
				return nil, false
			}
			if _, err := strconv.ParseInt(n, 10, 64); err != nil {
				return nil, false
			}
		case 'o':
			if raw[0] != '{' {
				return nil, false
			}
			if _, ok := refObject(raw, bindingRef); !ok {
				return nil, false
			}
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// unpairedSurrogate reports whether a string of the JSON text data (which
// must be valid JSON) has a \u escape of a surrogate that is not a high
// surrogate immediately followed by the escape of a low one.
func unpairedSurrogate(data []byte) bool {
	in := false
	pendingHigh := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !in {
			in = c == '"'
			continue
		}
		switch c {
		case '"':
			if pendingHigh {
				return true
			}
			in = false
		case '\\':
			i++
			if data[i] != 'u' {
				if pendingHigh {
					return true
				}
				continue
			}
			v, _ := strconv.ParseUint(string(data[i+1:i+5]), 16, 16)
			i += 4
			switch {
			case v >= 0xD800 && v < 0xDC00:
				if pendingHigh {
					return true
				}
				pendingHigh = true
			case v >= 0xDC00 && v < 0xE000:
				if !pendingHigh {
					return true
				}
				pendingHigh = false
			default:
				if pendingHigh {
					return true
				}
			}
		default:
			if pendingHigh {
				return true
			}
		}
	}
	return false
}

// refWellFormed is wellFormed, restated.
func refWellFormed(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && utf8.Valid(data) && json.Valid(data)
}

// refAccept reports whether data passes the reference rules as an object
// with members allowed.
func refAccept(data []byte, allowed map[string]byte) bool {
	if !refWellFormed(data) || unpairedSurrogate(data) {
		return false
	}
	_, ok := refObject(data, allowed)
	return ok
}

// refHeader is the reference for parseHeaderJSON.
func refHeader(data []byte) (Header, bool) {
	var h Header
	if !refAccept(data, headerRef) {
		return h, false
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		panic("reference: encoding/json refuses an accepted header: " + err.Error())
	}
	return h, true
}

// refClaims is the reference for parseClaimsJSON.
func refClaims(data []byte) (Claims, bool) {
	var c Claims
	if !refAccept(data, claimsRef) {
		return c, false
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		panic("reference: encoding/json refuses accepted claims: " + err.Error())
	}
	return c, true
}

// refParseSigningInput is the reference for ParseSigningInput: the same
// checks in the same order, on the reference parser. It returns the
// sentinel of its refusal.
func refParseSigningInput(in []byte) (Header, Claims, error) {
	hb, cb, ok := bytes.Cut(in, []byte{'.'})
	if len(in) > maxLen || !ok || bytes.IndexByte(cb, '.') >= 0 {
		return Header{}, Claims{}, ErrMalformed
	}
	hj, err1 := refDecode(hb)
	cj, err2 := refDecode(cb)
	if err1 != nil || err2 != nil {
		return Header{}, Claims{}, ErrMalformed
	}
	if !refWellFormed(hj) || !refWellFormed(cj) {
		return Header{}, Claims{}, ErrMalformed
	}
	h, ok := refHeader(hj)
	if !ok {
		return Header{}, Claims{}, ErrHeader
	}
	if err := checkHeader(h); err != nil {
		return Header{}, Claims{}, ErrHeader
	}
	c, ok := refClaims(cj)
	if !ok {
		return Header{}, Claims{}, ErrClaims
	}
	if err := c.Validate(MaxTTL); err != nil {
		if errors.Is(err, ErrTTL) {
			return Header{}, Claims{}, ErrTTL
		}
		return Header{}, Claims{}, ErrClaims
	}
	return h, c, nil
}

// refDecode is strict unpadded base64url, restated: the alphabet only, and
// canonical (re-encoding gives the input back).
func refDecode(seg []byte) ([]byte, error) {
	if len(seg) == 0 || strings.ContainsAny(string(seg), "=\r\n") {
		return nil, ErrMalformed
	}
	b, err := base64URLDecode(string(seg))
	if err != nil || base64URLEncode(b) != string(seg) {
		return nil, ErrMalformed
	}
	return b, nil
}

func base64URLEncode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func sameBinding(a, b *binding.Binding) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sameClaims(a, b Claims) bool {
	x, y := a, b
	x.Binding, y.Binding = nil, nil
	return x == y && sameBinding(a.Binding, b.Binding)
}

// jsonSeeds are inputs at the edges of the rules.
func jsonSeeds() []string {
	c := `{"iss":"https://issuer.example","sub":"alice","client_id":"client-1","aud":"https://api.example","scope":"read write","iat":1700000000,"nbf":1700000000,"exp":1700000300,"jti":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`
	bound := c + `,"req":{"m":"POST","a":"api.example","p":"/orders","b":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}}`
	rep := func(old, new string) string { return strings.Replace(c+"}", old, new, 1) }
	return []string{
		`{"alg":"EdDSA","typ":"at+jwt","kid":"k"}`,
		` {"alg" : "EdDSA",` + "\t\r\n" + `"typ":"at+jwt","kid":"k"} `,
		`{"\u0061lg":"EdDSA","typ":"at\u002bjwt","kid":"k\/\"\\\b\f\n\r\t"}`,
		`{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"k"}`,
		`{"alg":"EdDSA","ALG":"EdDSA","typ":"at+jwt","kid":"k"}`,
		`{"alg":"EdDSA","typ":"at+jwt","kid":null}`,
		`{"alg":"EdDSA","typ":"at+jwt","kid":"k",}`,
		`{,"alg":"EdDSA"}`, `{}`, `{}}`, `{} {}`, `[]`, `null`, `"x"`, ``, ` `, `{`, `{"alg"`, `{"alg":`, `{"alg":"`,
		c + "}", bound, c + `,"req":{}}`, c + `,"req":null}`, c + `,"req":{"m":"GET","m":"GET"}}`,
		c + `,"req":{"M":"GET"}}`, c + `,"req":{"m":"GET","x":1}}`, c + `,"req":{"m":{"x":"y"}}}`, c + `,"req":[]}`,
		rep(`"iat":1700000000`, `"iat":1700000000.0`),
		rep(`"iat":1700000000`, `"iat":17e8`),
		rep(`"iat":1700000000`, `"iat":1.7E9`),
		rep(`"iat":1700000000`, `"iat":-0`),
		rep(`"iat":1700000000`, `"iat":0`),
		rep(`"iat":1700000000`, `"iat":-1`),
		rep(`"iat":1700000000`, `"iat":01700000000`),
		rep(`"iat":1700000000`, `"iat":+1700000000`),
		rep(`"iat":1700000000`, `"iat":9223372036854775807`),
		rep(`"iat":1700000000`, `"iat":9223372036854775808`),
		rep(`"iat":1700000000`, `"iat":-9223372036854775808`),
		rep(`"iat":1700000000`, `"iat":-9223372036854775809`),
		rep(`"iat":1700000000`, `"iat":99999999999999999999999`),
		rep(`"iat":1700000000`, `"iat":"1700000000"`),
		rep(`"iat":1700000000`, `"iat":true`),
		rep(`"sub":"alice"`, `"sub":"\ud83d\ude00"`),
		rep(`"sub":"alice"`, `"sub":"\uD83D\uDE00"`),
		rep(`"sub":"alice"`, `"sub":"\ud800"`),
		rep(`"sub":"alice"`, `"sub":"\udc00"`),
		rep(`"sub":"alice"`, `"sub":"\ud800\u0041"`),
		rep(`"sub":"alice"`, `"sub":"\ud800\ud800\udc00"`),
		rep(`"sub":"alice"`, `"sub":"\ud800x"`),
		rep(`"sub":"alice"`, `"sub":"\u00e9\u0000"`),
		rep(`"sub":"alice"`, `"sub":"\x"`),
		rep(`"sub":"alice"`, `"sub":"\u12"`),
		rep(`"sub":"alice"`, `"sub":"\u12G4"`),
		rep(`"sub":"alice"`, "\"sub\":\"a\tb\""),
		rep(`"sub":"alice"`, "\"sub\":\"\xff\""),
		rep(`"sub":"alice"`, "\"sub\":\"\xed\xa0\x80\""),
		rep(`"sub":"alice"`, "\"sub\":\"é日本\x7f\""),
		rep(`"sub":"alice"`, `"sub":["alice"]`),
		rep(`"sub":"alice"`, `"sub":"alice","sub":"bob"`),
		rep(`"sub":"alice"`, `"sub":"alice","admin":true`),
		c + "}\n", c + "}]", c + "} x",
	}
}

// FuzzJSONReference is the differential test: parseHeaderJSON and
// parseClaimsJSON accept exactly what the reference accepts, and decode
// the same values.
func FuzzJSONReference(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeaderJSON(string(data))
		rh, ok := refHeader(data)
		if (err == nil) != ok || h != rh {
			t.Fatalf("header %q: parser %+v, %v; reference %+v, %v", data, h, err, rh, ok)
		}
		if err != nil && !errors.Is(err, errJSON) {
			t.Fatalf("error %v does not wrap errJSON", err)
		}
		c, err := parseClaimsJSON(string(data))
		rc, ok := refClaims(data)
		if (err == nil) != ok || (ok && !sameClaims(c, rc)) {
			t.Fatalf("claims %q: parser %+v, %v; reference %+v, %v", data, c, err, rc, ok)
		}
		if err != nil && !errors.Is(err, errJSON) {
			t.Fatalf("error %v does not wrap errJSON", err)
		}
		if err == nil && !wellFormed(string(data)) {
			t.Fatalf("accepted %q, which is not well-formed", data)
		}
	})
}

// FuzzParseSigningInputReference is the differential test one level up:
// ParseSigningInput and the reference agree on every input, on the result
// and on the class of a refusal.
func FuzzParseSigningInputReference(f *testing.F) {
	h := `{"alg":"EdDSA","typ":"at+jwt","kid":"k"}`
	for _, s := range jsonSeeds() {
		f.Add(h, s)
		f.Add(s, `{}`)
	}
	f.Fuzz(func(t *testing.T, header, claims string) {
		in := base64URLEncode([]byte(header)) + "." + base64URLEncode([]byte(claims))
		gh, gc, gerr := ParseSigningInput([]byte(in))
		rh, rc, rerr := refParseSigningInput([]byte(in))
		if rerr == nil {
			if gerr != nil || gh != rh || !sameClaims(gc, rc) {
				t.Fatalf("%q %q: parser %+v %+v %v; reference %+v %+v", header, claims, gh, gc, gerr, rh, rc)
			}
			return
		}
		if !errors.Is(gerr, rerr) {
			t.Fatalf("%q %q: parser %v, reference %v", header, claims, gerr, rerr)
		}
		for _, s := range []error{ErrMalformed, ErrHeader, ErrClaims, ErrTTL} {
			if s != rerr && errors.Is(gerr, s) {
				t.Fatalf("%q %q: error %v wraps both %v and %v", header, claims, gerr, rerr, s)
			}
		}
	})
}

// TestJSONSeeds runs the seeds through both parsers and pins the decisions
// that matter most.
func TestJSONSeeds(t *testing.T) {
	for _, s := range jsonSeeds() {
		_, herr := parseHeaderJSON(s)
		_, hok := refHeader([]byte(s))
		c, cerr := parseClaimsJSON(s)
		rc, cok := refClaims([]byte(s))
		if (herr == nil) != hok || (cerr == nil) != cok || (cok && !sameClaims(c, rc)) {
			t.Errorf("%q: header %v/%v, claims %v/%v", s, herr, hok, cerr, cok)
		}
	}
	c := `{"iss":"i","sub":"s","client_id":"c","aud":"a","scope":"x","jti":"j","iat":%s}`
	for _, tc := range []struct {
		num  string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1700000000", 1700000000, true},
		{"-1", -1, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"-0", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{"1E3", 0, false},
		{"01", 0, false},
		{"+1", 0, false},
		{"-", 0, false},
		{"null", 0, false},
	} {
		got, err := parseClaimsJSON(strings.Replace(c, "%s", tc.num, 1))
		if (err == nil) != tc.ok || got.IssuedAt != tc.want {
			t.Errorf("iat %s: %d, %v; want %d, ok %v", tc.num, got.IssuedAt, err, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"a\"b\\c\/d\be\ff\ng\rh\ti"`, "a\"b\\c/d\be\ff\ng\rh\ti"},
		{`"\u00e9\u00E9"`, "éé"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\u0000"`, "\x00"},
		{`"日本"`, "日本"},
	} {
		got, err := parseClaimsJSON(`{"sub":` + tc.in + `}`)
		if err != nil || got.Subject != tc.want {
			t.Errorf("sub %s = %q, %v; want %q", tc.in, got.Subject, err, tc.want)
		}
	}
}

// FuzzSingleSpaced checks singleSpaced against its definition.
func FuzzSingleSpaced(f *testing.F) {
	for _, s := range []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\u00a0b", "a\u2028b", "\xff b", "a \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := singleSpaced(s), s == strings.Join(strings.Fields(s), " "); got != want {
			t.Fatalf("singleSpaced(%q) = %v, want %v", s, got, want)
		}
		c := Claims{Scope: s}
		want := strings.Fields(s)
		for _, w := range append(want, "", "x", s) {
			found := false
			for _, h := range want {
				found = found || h == w
			}
			if c.HasScopes(w) != found {
				t.Fatalf("HasScopes(%q) on %q = %v", w, s, !found)
			}
		}
	})
}
