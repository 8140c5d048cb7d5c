// Package oidctest runs a real, local OpenID Connect issuer of ID tokens,
// for tests: an HTTP server on 127.0.0.1 that serves a discovery document
// and a JWKS, and signs tokens with a real key (RS256 with RSA-2048, ES256 or
// EdDSA). Tokens it makes verify with any OIDC library, and with
// evidence.Verifier given the issuer in its configuration.
//
// It is an ordinary package (not a _test file) so that other packages' tests
// and end-to-end tests driving real binaries can use it. It never registers
// flags or global state.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// Issuer is a running local OIDC issuer.
type Issuer struct {
	// URL is the issuer: "http://127.0.0.1:<port>", the iss of its tokens.
	URL string

	alg  jose.SignatureAlgorithm
	srv  *http.Server
	done chan struct{}

	jwksRequests      atomic.Int64
	discoveryRequests atomic.Int64

	mu          sync.Mutex
	key         crypto.Signer
	kid         string
	now         func() time.Time
	unavailable bool
}

// Start starts an issuer signing with alg: "RS256" (an RSA-2048 key),
// "ES256" (P-256) or "EdDSA" (Ed25519). It serves
// /.well-known/openid-configuration and /jwks on 127.0.0.1 until Close. The
// key's kid is its RFC 7638 thumbprint. It fails on another alg, or when
// the key cannot be made or the port opened.
func Start(alg string) (*Issuer, error) {
	a := jose.SignatureAlgorithm(alg)
	i := &Issuer{alg: a, now: time.Now, done: make(chan struct{})}
	if err := i.RotateKey(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	i.URL = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	i.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(i.done)
		_ = i.srv.Serve(ln)
	}()
	return i, nil
}

// Close stops the server; its URL refuses connections from then on.
func (i *Issuer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := i.srv.Shutdown(ctx); err != nil {
		_ = i.srv.Close()
	}
	<-i.done
}

// Alg returns the issuer's signature algorithm.
func (i *Issuer) Alg() string { return string(i.alg) }

// KeyID returns the kid of the current key.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.kid
}

// PublicKey returns the current public key.
func (i *Issuer) PublicKey() crypto.PublicKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.key.Public()
}

// Config returns the evidence configuration that trusts this issuer under
// name for audience (keys by discovery).
func (i *Issuer) Config(name, audience string) evidence.OIDCIssuer {
	return evidence.OIDCIssuer{Name: name, Issuer: i.URL, Audience: audience}
}

// SetNow sets the clock that GitHubToken and KubernetesToken stamp tokens
// with (nil: time.Now).
func (i *Issuer) SetNow(now func() time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	i.now = now
}

// SetUnavailable makes the discovery and JWKS endpoints answer 503 (true)
// or serve again (false).
func (i *Issuer) SetUnavailable(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.unavailable = down
}

// JWKSRequests returns how many times the JWKS was requested.
func (i *Issuer) JWKSRequests() int { return int(i.jwksRequests.Load()) }

// DiscoveryRequests returns how many times the discovery document was
// requested.
func (i *Issuer) DiscoveryRequests() int { return int(i.discoveryRequests.Load()) }

// RotateKey replaces the key with a new one of the same algorithm and a new
// kid; the old key leaves the JWKS at once.
func (i *Issuer) RotateKey() error {
	var key crypto.Signer
	var err error
	switch i.alg {
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return fmt.Errorf("oidctest: unsupported algorithm %q (RS256, ES256 or EdDSA)", i.alg)
	}
	if err != nil {
		return fmt.Errorf("oidctest: %w", err)
	}
	jwk := jose.JSONWebKey{Key: key.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("oidctest: %w", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.key, i.kid = key, base64.RawURLEncoding.EncodeToString(tp)
	return nil
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.discoveryRequests.Add(1)
	i.mu.Lock()
	down := i.unavailable
	i.mu.Unlock()
	if down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.URL + "/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(i.alg)},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksRequests.Add(1)
	i.mu.Lock()
	down := i.unavailable
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: i.key.Public(), KeyID: i.kid, Algorithm: string(i.alg), Use: "sig",
	}}}
	i.mu.Unlock()
	if down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(b)
}

// Sign returns a compact JWS of claims, exactly as given (use int64 Unix
// seconds for iat, nbf and exp), with the header {"alg":…, "kid":…,
// "typ":"JWT"} and the issuer's current key. It fails when claims do not
// marshal to JSON.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("oidctest: claims: %w", err)
	}
	i.mu.Lock()
	key, kid := i.key, i.kid
	i.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: i.alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("oidctest: %w", err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("oidctest: %w", err)
	}
	return obj.CompactSerialize()
}

// SignRaw returns a compact JWS of payload, taken verbatim (duplicate
// members, odd numbers: anything), signed with the issuer's current key.
// The protected header is {"alg":<alg>, "kid":<kid>, "typ":"JWT"} with
// header's members added or replaced, and removed where header maps them to
// nil; it is signed as the issuer's algorithm whatever its alg says. It is
// for testing how verifiers treat odd tokens of a trusted issuer. It fails
// when header does not marshal to JSON.
func (i *Issuer) SignRaw(header map[string]any, payload []byte) (string, error) {
	i.mu.Lock()
	key, kid := i.key, i.kid
	i.mu.Unlock()
	h := map[string]any{"alg": string(i.alg), "kid": kid, "typ": "JWT"}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("oidctest: header: %w", err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, digest[:]); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	}
	if err != nil {
		return "", fmt.Errorf("oidctest: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// GitHubToken returns an ID token with the claims GitHub Actions puts in
// one (https://docs.github.com/actions/reference/openid-connect-reference):
// sub "repo:<repo>:ref:<ref>", or "repo:<repo>:environment:<environment>"
// when environment is set; repository, repository_owner, ref, ref_type,
// workflow, workflow_ref, job_workflow_ref, environment (when set),
// event_name, actor, run ids, a random jti, iat, nbf and exp = iat+ttl.
// It fails when repo is not "<owner>/<name>" or ttl is not positive.
func (i *Issuer) GitHubToken(aud string, repo, ref, workflow, environment string, ttl time.Duration) (string, error) {
	owner, _, ok := strings.Cut(repo, "/")
	if !ok || owner == "" {
		return "", fmt.Errorf("oidctest: repository %q is not <owner>/<name>", repo)
	}
	if ttl <= 0 {
		return "", errors.New("oidctest: ttl must be positive")
	}
	now := i.clock()
	sub := "repo:" + repo + ":ref:" + ref
	if environment != "" {
		sub = "repo:" + repo + ":environment:" + environment
	}
	refType := "branch"
	if strings.HasPrefix(ref, "refs/tags/") {
		refType = "tag"
	}
	file := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(workflow), " ", "-")) + ".yml"
	workflowRef := repo + "/.github/workflows/" + file + "@" + ref
	sha := randomHex(20)
	claims := map[string]any{
		"iss":                   i.URL,
		"aud":                   aud,
		"sub":                   sub,
		"jti":                   uuid(),
		"ref":                   ref,
		"ref_type":              refType,
		"ref_protected":         "false",
		"sha":                   sha,
		"repository":            repo,
		"repository_id":         "690412837",
		"repository_owner":      owner,
		"repository_owner_id":   "1234567",
		"repository_visibility": "private",
		"actor":                 owner,
		"actor_id":              "1234567",
		"run_id":                "9876543210",
		"run_number":            "42",
		"run_attempt":           "1",
		"workflow":              workflow,
		"workflow_ref":          workflowRef,
		"workflow_sha":          sha,
		"job_workflow_ref":      workflowRef,
		"job_workflow_sha":      sha,
		"event_name":            "push",
		"head_ref":              "",
		"base_ref":              "",
		"runner_environment":    "github-hosted",
		"iat":                   now.Unix(),
		"nbf":                   now.Unix(),
		"exp":                   now.Add(ttl).Unix(),
	}
	if environment != "" {
		claims["environment"] = environment
	}
	return i.Sign(claims)
}

// KubernetesToken returns a projected service account token's ID token:
// aud [aud], sub "system:serviceaccount:<namespace>:<serviceAccount>",
// "kubernetes.io": {"namespace", "serviceaccount": {"name", "uid"}, "pod":
// {"name", "uid"}, "node": {"name", "uid"}}, a random jti, iat, nbf and exp
// = iat+ttl. It fails when namespace or serviceAccount is empty or ttl is
// not positive.
func (i *Issuer) KubernetesToken(aud, namespace, serviceAccount string, ttl time.Duration) (string, error) {
	if namespace == "" || serviceAccount == "" {
		return "", errors.New("oidctest: namespace and service account are required")
	}
	if ttl <= 0 {
		return "", errors.New("oidctest: ttl must be positive")
	}
	now := i.clock()
	return i.Sign(map[string]any{
		"iss": i.URL,
		"aud": []string{aud},
		"sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"jti": uuid(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": serviceAccount, "uid": uuid()},
			"pod":            map[string]any{"name": serviceAccount + "-7c9d8f6b5-" + randomHex(3)[:5], "uid": uuid()},
			"node":           map[string]any{"name": "node-1", "uid": uuid()},
		},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
}

func (i *Issuer) clock() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.now()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uuid returns a random (version 4) UUID.
func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
