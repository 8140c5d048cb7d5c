package evidence

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeObject: the strict JSON reader never panics, and accepts only
// JSON that encoding/json reads the same way.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `[1]`, `{"a":1}{}`,
		`{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"A":1,"a":2}`, `{"a":1e400}`, `{"":null}`, ` {"x" : [ ] } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeObject(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", b, err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("%q: got %v, encoding/json %v", b, m, want)
		}
	})
}

// FuzzParseJWKS: key sets never panic the parser, and what it returns is
// usable: public keys of the supported types, with a kid.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"e","use":"sig","alg":"ES256"}]}`,
		`{"keys":[{"kty":"oct","k":"AAAA","kid":"s"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","kid":"p"}]}`,
		`{"keys":[]}`, `{"keys":{}}`, `{}`, `[]`, `{"keys":[1,"a",null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseJWKS(b)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > MaxJWKSKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if k.KeyID == "" || !k.IsPublic() || checkPublicKey(k.Key) != nil || (k.Use != "" && k.Use != "sig") {
				t.Fatalf("unusable key returned: %+v", k)
			}
		}
	})
}

// FuzzParseDiscovery: discovery documents never panic the parser, and it
// returns only acceptable jwks_uri values for the expected issuer.
func FuzzParseDiscovery(f *testing.F) {
	const iss = "https://issuer.example"
	for _, s := range []string{
		`{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/jwks"}`,
		`{"issuer":"https://issuer.example/","jwks_uri":"https://issuer.example/jwks"}`,
		`{"issuer":"https://issuer.example","jwks_uri":"http://issuer.example/jwks"}`,
		`{"issuer":"https://issuer.example","jwks_uri":"file:///etc/passwd"}`,
		`{"issuer":"https://issuer.example","issuer":"https://evil.example","jwks_uri":"https://e/"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseDiscovery(b, iss)
		if err != nil {
			return
		}
		if checkURL(u, true) != nil {
			t.Fatalf("jwks_uri %q accepted", u)
		}
	})
}
