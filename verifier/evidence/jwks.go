package evidence

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// issuer is a configured OIDC issuer and its cached keys.
type issuer struct {
	cfg     OIDCIssuer
	algs    []string
	subject string // the subject claim
	client  *http.Client

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   time.Time     // last successful fetch; zero = never
	attempted time.Time     // last fetch, successful or not
	lastErr   error         // of the last fetch
	inflight  chan struct{} // closed when the running fetch ends
}

func newIssuer(o OIDCIssuer, client *http.Client) *issuer {
	is := &issuer{cfg: o, algs: o.Algorithms, subject: o.SubjectClaim, client: client}
	if len(is.algs) == 0 {
		is.algs = algorithms()
	}
	if is.subject == "" {
		is.subject = "sub"
	}
	return is
}

// keySet returns the issuer's current keys. It fetches them when none were
// fetched yet or the last fetch is JWKSRefreshInterval old and, with
// unknownKid, when the last fetch attempt is JWKSMinInterval old. Fetches
// are never closer than JWKSMinInterval: within it, a failed fetch's error
// is returned again. Concurrent callers share one fetch. Errors are plain:
// the caller wraps them.
func (is *issuer) keySet(ctx context.Context, now func() time.Time, unknownKid bool) ([]jose.JSONWebKey, error) {
	for {
		is.mu.Lock()
		t := now()
		fresh := !is.fetched.IsZero() && !t.Before(is.fetched) && t.Sub(is.fetched) < JWKSRefreshInterval
		recent := !is.attempted.IsZero() && !t.Before(is.attempted) && t.Sub(is.attempted) < JWKSMinInterval
		switch {
		case fresh && (!unknownKid || recent):
			keys := is.keys
			is.mu.Unlock()
			return keys, nil
		case recent:
			err := is.lastErr
			is.mu.Unlock()
			if err == nil { // cannot happen: a recent success is fresh
				err = errors.New("no keys")
			}
			return nil, err
		}
		if ch := is.inflight; ch != nil {
			is.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for the keys: %w", ctx.Err())
			}
		}
		ch := make(chan struct{})
		is.inflight = ch
		is.mu.Unlock()

		// The fetch serves every waiter, so one caller giving up must not
		// fail it for the others.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
		keys, err := is.fetch(fctx)
		cancel()

		is.mu.Lock()
		is.attempted = now()
		if err == nil {
			is.keys, is.fetched = keys, is.attempted
		}
		is.lastErr = err
		is.inflight = nil
		close(ch)
		is.mu.Unlock()
		return keys, err
	}
}

// fetch reads the issuer's key set: from its JWKS file or URL, or from the
// jwks_uri of its discovery document.
func (is *issuer) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	src := is.cfg.JWKS
	if src == "" {
		u := strings.TrimSuffix(is.cfg.Issuer, "/") + "/.well-known/openid-configuration"
		doc, err := is.get(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		if src, err = parseDiscovery(doc, is.cfg.Issuer); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
	}
	var doc []byte
	var err error
	if isURL(src) {
		doc, err = is.get(ctx, src)
	} else {
		doc, err = readFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys, err := parseJWKS(doc)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", clip(src), err)
	}
	return keys, nil
}

func (is *issuer) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := is.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", clip(u), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", clip(u), err)
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", clip(u), MaxDocumentSize)
	}
	return b, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxDocumentSize)
	}
	return b, nil
}

// parseDiscovery returns the jwks_uri of an OpenID Provider Metadata
// document, which must name exactly the issuer we expect (OpenID Connect
// Discovery 1.0 §4.3) and a URL checkURL accepts.
func parseDiscovery(doc []byte, wantIssuer string) (string, error) {
	m, err := decodeObject(doc)
	if err != nil {
		return "", err
	}
	iss, _ := m["issuer"].(string)
	if iss != wantIssuer {
		return "", fmt.Errorf("document names issuer %s, want %q", clip(iss), wantIssuer)
	}
	u, ok := m["jwks_uri"].(string)
	if !ok {
		return "", errors.New("document has no jwks_uri string")
	}
	if err := checkURL(u, true); err != nil {
		return "", fmt.Errorf("jwks_uri: %w", err)
	}
	return u, nil
}

// parseJWKS returns the signature keys of a JWKS document: the public RSA,
// ECDSA and Ed25519 keys that have a kid and no "use" other than "sig".
// Keys of other types or that go-jose cannot parse are skipped (a set may
// hold keys for other purposes), but a document holding private or
// symmetric key material is refused whole: that issuer's keys are leaked,
// so nothing it signed can be trusted. It fails too on a document that is
// not {"keys": [...]}, has more than MaxJWKSKeys keys, or no usable key.
func parseJWKS(doc []byte) ([]jose.JSONWebKey, error) {
	m, err := decodeObject(doc)
	if err != nil {
		return nil, err
	}
	raw, ok := m["keys"].([]any)
	if !ok {
		return nil, errors.New(`not a {"keys": [...]} document`)
	}
	if len(raw) > MaxJWKSKeys {
		return nil, fmt.Errorf("%d keys, at most %d allowed", len(raw), MaxJWKSKeys)
	}
	var keys []jose.JSONWebKey
	for i, r := range raw {
		km, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("key %d is not an object", i)
		}
		if kty, _ := km["kty"].(string); kty == "oct" {
			return nil, fmt.Errorf("key %d is a symmetric key", i)
		}
		for _, p := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := km[p]; ok {
				return nil, fmt.Errorf("key %d holds private key material (%q)", i, p)
			}
		}
		b, err := json.Marshal(km)
		if err != nil {
			continue
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(b); err != nil {
			continue // a key type go-jose does not know: not one we verify with
		}
		if !k.IsPublic() {
			return nil, fmt.Errorf("key %d is not a public key", i)
		}
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || checkPublicKey(k.Key) != nil {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signature key")
	}
	return keys, nil
}

// selectKey returns the key of keys that the token's kid names and that
// fits alg. It fails with errUnknownKid when no key has the kid, and with
// another error when the kid is ambiguous or names a key of another type or
// algorithm.
func selectKey(keys []jose.JSONWebKey, kid, alg string) (crypto.PublicKey, error) {
	var named, fit int
	var key crypto.PublicKey
	for _, k := range keys {
		if k.KeyID != kid {
			continue
		}
		named++
		if (k.Algorithm == "" || k.Algorithm == alg) && keyFits(k.Key, alg) {
			fit++
			key = k.Key
		}
	}
	switch {
	case named == 0:
		return nil, errUnknownKid
	case fit == 0:
		return nil, fmt.Errorf("key %s is not for %s", clip(kid), alg)
	case fit > 1:
		return nil, fmt.Errorf("kid %s names %d %s keys", clip(kid), fit, alg)
	}
	return key, nil
}

var errUnknownKid = errors.New("unknown kid")

// keyFits reports whether key is of the type alg needs (which parseJWKS
// already bounded in size).
func keyFits(key crypto.PublicKey, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == "RS256"
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
