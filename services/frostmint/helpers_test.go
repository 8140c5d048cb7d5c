package main

import (
	"encoding/base64"
	"encoding/json"

	"github.com/frostmint/frostmint/verifier/token"
)

// mustInput encodes a signing input without the profile's checks.
func mustInput(kid string, c token.Claims) []byte {
	h, _ := json.Marshal(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid})
	b, _ := json.Marshal(c)
	return []byte(base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b))
}
