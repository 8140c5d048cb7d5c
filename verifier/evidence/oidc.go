package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// MaxTokenSize bounds an ID token.
	MaxTokenSize = 32 << 10
	// maxClaimSize bounds the subject, client id, jti and kid values.
	maxClaimSize = 1024
)

// oidcError builds the errors of one token's check: "<sentinel>: oidc token
// sha256:<12 hex>: <detail>".
type oidcError string

func (ref oidcError) fail(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: oidc %s: %s", sentinel, string(ref), fmt.Sprintf(format, args...))
}

func (ref oidcError) wrap(sentinel error, err error, format string, args ...any) error {
	return fmt.Errorf("%w: oidc %s: %s: %w", sentinel, string(ref), fmt.Sprintf(format, args...), err)
}

func (v *Verifier) verifyOIDC(ctx context.Context, req Request, tok string) (*Identity, error) {
	if err := checkRequest(req, false); err != nil {
		return nil, err
	}
	ref := oidcError(tokenRef(tok))
	if len(tok) > MaxTokenSize {
		return nil, ref.fail(ErrInvalid, "%d bytes, at most %d allowed", len(tok), MaxTokenSize)
	}

	// Structure: three canonical base64url segments. go-jose would accept
	// line breaks and non-zero padding bits, which would let one token be
	// written several ways.
	segs := strings.Split(tok, ".")
	if len(segs) != 3 {
		return nil, ref.fail(ErrInvalid, "not a compact JWS (%d segments)", len(segs))
	}
	var raw [3][]byte
	for i, s := range segs {
		if s == "" {
			return nil, ref.fail(ErrInvalid, "empty JWS segment %d", i)
		}
		for j := 0; j < len(s); j++ {
			if c := s[j]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return nil, ref.fail(ErrInvalid, "JWS segment %d is not base64url", i)
			}
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil, ref.fail(ErrInvalid, "JWS segment %d is not canonical base64url", i)
		}
		raw[i] = b
	}

	// Header: alg, kid and a few harmless parameters, nothing else (no jwk,
	// jku, x5u, x5c, crit, b64, cty).
	hdr, err := decodeObject(raw[0])
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "header")
	}
	for name, val := range hdr {
		switch name {
		case "alg", "kid", "typ", "x5t", "x5t#S256":
			if _, ok := val.(string); !ok {
				return nil, ref.fail(ErrInvalid, "header parameter %q is not a string", name)
			}
		default:
			return nil, ref.fail(ErrInvalid, "header parameter %s is not allowed", clip(name))
		}
	}
	alg, _ := hdr["alg"].(string)
	if !slices.Contains(algorithms(), alg) {
		return nil, ref.fail(ErrUntrusted, "algorithm %s is not allowed", clip(alg))
	}
	if typ, ok := hdr["typ"].(string); ok && !strings.EqualFold(typ, "JWT") && !strings.EqualFold(typ, "application/jwt") {
		return nil, ref.fail(ErrUntrusted, "typ %s is not an ID token's", clip(typ))
	}
	kid, _ := hdr["kid"].(string)
	if err := checkText(kid, maxClaimSize); err != nil {
		return nil, ref.wrap(ErrInvalid, err, "header kid")
	}

	// The issuer, read before the signature is checked only to find whose
	// keys check it.
	claims, err := decodeObject(raw[1])
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "claims")
	}
	iss, ok := claims["iss"].(string)
	if !ok {
		return nil, ref.fail(ErrInvalid, "no iss string")
	}
	is := v.issuers[iss]
	if is == nil {
		return nil, ref.fail(ErrUntrusted, "issuer %s is not trusted", clip(iss))
	}
	if !slices.Contains(is.algs, alg) {
		return nil, ref.fail(ErrUntrusted, "algorithm %s is not allowed for issuer %q", alg, is.cfg.Name)
	}
	keys, err := is.keySet(ctx, v.now, false)
	if err != nil {
		return nil, ref.wrap(ErrUnavailable, err, "keys of issuer %q", is.cfg.Name)
	}
	key, err := selectKey(keys, kid, alg)
	if errors.Is(err, errUnknownKid) {
		// Perhaps the issuer rotated its keys since we fetched them.
		if keys, err = is.keySet(ctx, v.now, true); err != nil {
			return nil, ref.wrap(ErrUnavailable, err, "keys of issuer %q", is.cfg.Name)
		}
		key, err = selectKey(keys, kid, alg)
	}
	if err != nil {
		return nil, ref.wrap(ErrUntrusted, err, "issuer %q, kid %s", is.cfg.Name, clip(kid))
	}

	// The signature, by go-jose, limited to the one algorithm and key.
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return nil, ref.fail(ErrInvalid, "not a JWS go-jose accepts")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, ref.fail(ErrUntrusted, "bad signature (issuer %q, kid %s)", is.cfg.Name, clip(kid))
	}
	if !bytes.Equal(payload, raw[1]) {
		return nil, ref.fail(ErrInvalid, "go-jose verified another payload")
	}

	// Claims, now that they are the issuer's.
	if !audienceHas(claims["aud"], is.cfg.Audience) {
		return nil, ref.fail(ErrUntrusted, "aud is not %q", is.cfg.Audience)
	}
	exp, err := numericDate(claims, "exp", true)
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "claims")
	}
	iat, err := numericDate(claims, "iat", true)
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "claims")
	}
	nbf, err := numericDate(claims, "nbf", false)
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "claims")
	}
	if !iat.Before(exp) {
		return nil, ref.fail(ErrInvalid, "exp is not after iat")
	}
	if life := exp.Sub(iat); life > v.maxLifetime {
		return nil, ref.fail(ErrExpired, "lives %s (exp-iat), more than the %s allowed", life, v.maxLifetime)
	}
	now := v.now()
	expiry := exp.Add(v.leeway)
	switch {
	case !now.Before(expiry):
		return nil, ref.fail(ErrExpired, "expired at %s", exp.UTC().Format(time.RFC3339))
	case iat.After(now.Add(v.leeway)):
		return nil, ref.fail(ErrExpired, "issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	case !nbf.IsZero() && nbf.After(now.Add(v.leeway)):
		return nil, ref.fail(ErrExpired, "not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	sub, err := stringClaim(claims, is.subject)
	if err != nil {
		return nil, ref.wrap(ErrInvalid, err, "subject")
	}
	subject := is.cfg.Name + ":" + sub
	clientID := subject
	if c := is.cfg.ClientIDClaim; c != "" {
		val, err := stringClaim(claims, c)
		if err != nil {
			return nil, ref.wrap(ErrInvalid, err, "client id")
		}
		clientID = is.cfg.Name + ":" + val
	}
	var useKey string
	if _, ok := claims["jti"]; ok {
		jti, err := stringClaim(claims, "jti")
		if err != nil {
			return nil, ref.wrap(ErrInvalid, err, "jti")
		}
		useKey = "oidc:" + iss + ":jti:" + jti
	} else {
		h := sha256.Sum256([]byte(tok[:len(segs[0])+1+len(segs[1])]))
		useKey = "oidc:" + iss + ":sha256:" + hex.EncodeToString(h[:])
	}
	return &Identity{
		Kind:     KindOIDC,
		Subject:  subject,
		ClientID: clientID,
		Issuer:   is.cfg.Name,
		Claims:   claims,
		UseKey:   useKey,
		Expiry:   expiry,
	}, nil
}

// audienceHas reports whether aud, a string or an array of strings, is or
// holds want.
func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// maxNumericDate bounds the dates we accept (about the year 36812), so that
// conversions cannot overflow.
const maxNumericDate = 1 << 40

// numericDate reads an RFC 7519 NumericDate claim: a non-negative JSON
// number of seconds, possibly fractional. An absent optional claim is the
// zero time.
func numericDate(claims map[string]any, name string, required bool) (time.Time, error) {
	v, ok := claims[name]
	if !ok {
		if required {
			return time.Time{}, fmt.Errorf("no %s", name)
		}
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("%s is not a number", name)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// stringClaim reads a claim that must be a non-empty printable string.
func stringClaim(claims map[string]any, name string) (string, error) {
	s, ok := claims[name].(string)
	if !ok {
		return "", fmt.Errorf("claim %s is missing or not a string", clip(name))
	}
	if err := checkClaimText(s); err != nil {
		return "", fmt.Errorf("claim %s: %w", clip(name), err)
	}
	return s, nil
}

// checkClaimText accepts a non-empty string of at most maxClaimSize bytes
// without control or format characters or U+FFFD (which encoding/json puts
// in place of invalid escapes: two different tokens must not give the same
// identity). Unlike request fields, spaces are allowed.
func checkClaimText(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxClaimSize {
		return fmt.Errorf("%d bytes, at most %d allowed", len(s), maxClaimSize)
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == '\u2028' || c == '\u2029' || c == utf8.RuneError {
			return fmt.Errorf("%s holds a control or format character or U+FFFD", clip(s))
		}
	}
	return nil
}
