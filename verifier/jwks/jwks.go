// Package jwks publishes and reads the Ed25519 public keys that verify
// frostmint tokens, as an RFC 7517 JSON Web Key Set.
//
// frostmint signs with one group key per issuer (the FROST group public key
// is an ordinary Ed25519 public key), so the set only ever holds RFC 8037 OKP
// keys on Ed25519, and this package refuses anything else rather than
// skipping it: a set that holds something unexpected is a misconfiguration or
// an attack, and a verifier must fail closed on both.
//
// Every key is named by its RFC 7638 thumbprint ([KeyID]). [Parse] insists
// that the kid of every key equals that thumbprint, which binds the name a
// token carries in its header to the exact key bytes: a kid can never be
// re-pointed at another key, and two documents can never disagree on what a
// kid means.
//
// The JOSE encoding itself (JWK members, thumbprint input, low-order key
// checks) is delegated to github.com/go-jose/go-jose/v4; this package adds
// the strictness on top.
package jwks

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// Algorithm is the only JWS algorithm a key of the set may be used with.
	Algorithm = "EdDSA"
	// MaxSize bounds the size of a JWKS document that [Parse] and [Load]
	// accept.
	MaxSize = 1 << 20
	// MaxKeys bounds the number of keys in a document.
	MaxKeys = 64
)

var (
	// ErrInvalid means a key or a JWKS document is not acceptable.
	ErrInvalid = errors.New("jwks: invalid key set")
	// ErrUnknownKey means a key set holds no key of the requested kid.
	ErrUnknownKey = errors.New("jwks: unknown key")
)

// KeySet finds the Ed25519 public key a token names by its kid.
type KeySet interface {
	// Key returns the public key of the given kid. Its error wraps
	// [ErrUnknownKey] when the set holds no such key; implementations that
	// can fail in other ways (a refresh that failed, say) return other
	// errors, which a verifier treats as a refusal too.
	Key(kid string) (ed25519.PublicKey, error)
}

// KeyID returns the RFC 7638 JWK thumbprint of pub: the base64url (no
// padding) SHA-256 of {"crv":"Ed25519","kty":"OKP","x":…}. It fails, with an
// error wrapping [ErrInvalid], if pub is not 32 bytes or is one of the
// low-order points that would let anyone forge signatures.
func KeyID(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalid, len(pub), ed25519.PublicKeySize)
	}
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// Marshal returns the JWKS document {"keys":[…]} holding keys, each as
// {"kty":"OKP","crv":"Ed25519","x":…,"kid":<thumbprint>,"alg":"EdDSA",
// "use":"sig"}, in the order given. It fails, with an error wrapping
// [ErrInvalid], on no key, more than [MaxKeys] keys, a key [KeyID] refuses,
// or the same key twice. Whatever it returns, [Parse] accepts.
func Marshal(keys ...ed25519.PublicKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalid)
	}
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrInvalid, len(keys), MaxKeys)
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for i, pub := range keys {
		kid, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if seen[kid] {
			return nil, fmt.Errorf("%w: key %d: duplicate key %s", ErrInvalid, i, kid)
		}
		seen[kid] = true
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       slices.Clone(pub),
			KeyID:     kid,
			Algorithm: Algorithm,
			Use:       "sig",
		})
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return out, nil
}

// Static is a fixed set of keys. It is immutable and safe for concurrent
// use. The zero value and the nil *Static hold no key.
type Static struct {
	keys map[string]ed25519.PublicKey
	kids []string // in document order
}

// NewStatic returns the set holding keys, each named by its [KeyID]. It
// fails as [Marshal] does.
func NewStatic(keys ...ed25519.PublicKey) (*Static, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalid)
	}
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrInvalid, len(keys), MaxKeys)
	}
	s := &Static{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for i, pub := range keys {
		kid, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if err := s.add(kid, pub); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrInvalid, i, err)
		}
	}
	return s, nil
}

func (s *Static) add(kid string, pub ed25519.PublicKey) error {
	if _, dup := s.keys[kid]; dup {
		return fmt.Errorf("duplicate kid %q", kid)
	}
	s.keys[kid] = slices.Clone(pub)
	s.kids = append(s.kids, kid)
	return nil
}

// Key returns a copy of the key of the given kid, or an error wrapping
// [ErrUnknownKey].
func (s *Static) Key(kid string) (ed25519.PublicKey, error) {
	if s != nil {
		if pub, ok := s.keys[kid]; ok {
			return slices.Clone(pub), nil
		}
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// KeyIDs returns the kids of the set in document order.
func (s *Static) KeyIDs() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.kids)
}

// Marshal returns the set as a JWKS document, as [Marshal] does.
func (s *Static) Marshal() ([]byte, error) {
	keys := make([]ed25519.PublicKey, 0, len(s.KeyIDs()))
	for _, kid := range s.KeyIDs() {
		keys = append(keys, s.keys[kid])
	}
	return Marshal(keys...)
}

// keyMembers are the JWK members a key of the set may have. Anything else
// (private "d", "x5u", "jku", "key_ops", members of other key types, …) is
// refused rather than ignored.
var keyMembers = map[string]bool{
	"kty": true, "crv": true, "x": true, "kid": true, "alg": true, "use": true,
}

// Parse reads a JWKS document strictly. It accepts exactly a JSON object
// whose only member is "keys", a non-empty array of at most [MaxKeys] JWKs,
// each of which:
//
//   - has only the members kty, crv, x, kid, alg and use, each once and each
//     a string (in particular a private key, with "d", is refused);
//   - is an OKP key (kty "OKP") on Ed25519 (crv "Ed25519") whose x is the
//     canonical unpadded base64url of a 32-byte key that is not of low order;
//   - has alg "EdDSA" or no alg, and use "sig" or no use;
//   - has a kid equal to its RFC 7638 thumbprint ([KeyID]); a kid is
//     required, because tokens name their key by kid;
//
// and no two keys share a kid. Documents over [MaxSize], invalid UTF-8,
// duplicate members and trailing data are refused too. Unlike RFC 7517's
// advice to skip keys it does not understand, Parse refuses the whole
// document. Every error wraps [ErrInvalid].
func Parse(data []byte) (*Static, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: document over %d bytes", ErrInvalid, MaxSize)
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return nil, fmt.Errorf("%w: not a JSON document", ErrInvalid)
	}
	top, err := object(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for k := range top {
		if k != "keys" {
			return nil, fmt.Errorf("%w: member %q not allowed", ErrInvalid, k)
		}
	}
	rawKeys, ok := top["keys"]
	if !ok {
		return nil, fmt.Errorf("%w: no \"keys\" member", ErrInvalid)
	}
	var elems []json.RawMessage
	if !bytes.HasPrefix(bytes.TrimSpace(rawKeys), []byte("[")) {
		return nil, fmt.Errorf("%w: \"keys\" is not an array", ErrInvalid)
	}
	if err := json.Unmarshal(rawKeys, &elems); err != nil {
		return nil, fmt.Errorf("%w: \"keys\" is not an array", ErrInvalid)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalid)
	}
	if len(elems) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrInvalid, len(elems), MaxKeys)
	}
	s := &Static{keys: make(map[string]ed25519.PublicKey, len(elems))}
	for i, e := range elems {
		kid, pub, err := parseKey(e)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrInvalid, i, err)
		}
		if err := s.add(kid, pub); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrInvalid, i, err)
		}
	}
	return s, nil
}

// parseKey checks one JWK of the set and returns its kid and key.
func parseKey(data []byte) (string, ed25519.PublicKey, error) {
	raw, err := object(data)
	if err != nil {
		return "", nil, err
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		if k == "d" {
			return "", nil, errors.New("private key material (\"d\") in a public key set")
		}
		if !keyMembers[k] {
			return "", nil, fmt.Errorf("member %q not allowed", k)
		}
		if !bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`)) {
			return "", nil, fmt.Errorf("member %q is not a string", k)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", nil, fmt.Errorf("member %q is not a string", k)
		}
		m[k] = s
	}
	if m["kty"] != "OKP" {
		return "", nil, fmt.Errorf("kty %q, want \"OKP\"", m["kty"])
	}
	if m["crv"] != "Ed25519" {
		return "", nil, fmt.Errorf("crv %q, want \"Ed25519\"", m["crv"])
	}
	if alg, ok := m["alg"]; ok && alg != Algorithm {
		return "", nil, fmt.Errorf("alg %q, want %q", alg, Algorithm)
	}
	if use, ok := m["use"]; ok && use != "sig" {
		return "", nil, fmt.Errorf("use %q, want \"sig\"", use)
	}
	x, ok := m["x"]
	if !ok {
		return "", nil, errors.New("no \"x\"")
	}
	xb, err := base64.RawURLEncoding.Strict().DecodeString(x)
	if err != nil || base64.RawURLEncoding.EncodeToString(xb) != x {
		return "", nil, errors.New("x is not canonical unpadded base64url")
	}
	// Let go-jose decode the key too, so that its checks (length, low-order
	// points) apply, and insist that it agrees with ours.
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return "", nil, err
	}
	pub, ok := jwk.Key.(ed25519.PublicKey)
	if !ok || !jwk.Valid() || !bytes.Equal(pub, xb) {
		return "", nil, errors.New("not an Ed25519 public key")
	}
	want, err := KeyID(pub)
	if err != nil {
		return "", nil, err
	}
	kid, ok := m["kid"]
	if !ok {
		return "", nil, fmt.Errorf("no kid; want the thumbprint %q", want)
	}
	if kid != want {
		return "", nil, fmt.Errorf("kid %q is not the key's RFC 7638 thumbprint %q", kid, want)
	}
	return kid, pub, nil
}

// object decodes a JSON object whose members are unique. data is known to
// be valid JSON.
func object(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		k, ok := t.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate member %q", k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("not a JSON object")
		}
		m[k] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}
