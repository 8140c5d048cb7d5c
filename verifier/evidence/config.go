package evidence

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults and limits of a [Config].
const (
	// DefaultMaxAge is the certificate proof window when Config.MaxAge is 0.
	DefaultMaxAge = 2 * time.Minute
	// MaxMaxAge is the largest Config.MaxAge allowed.
	MaxMaxAge = 10 * time.Minute
	// DefaultLeeway is the OIDC clock leeway when Config.Leeway is 0.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest Config.Leeway allowed.
	MaxLeeway = 5 * time.Minute
	// DefaultMaxOIDCLifetime caps exp-iat of an ID token when
	// Config.MaxOIDCLifetime is 0.
	DefaultMaxOIDCLifetime = time.Hour
	// MaxMaxOIDCLifetime is the largest Config.MaxOIDCLifetime allowed.
	MaxMaxOIDCLifetime = 24 * time.Hour
	// JWKSRefreshInterval is how long an issuer's fetched keys are used:
	// after it, the next verification fetches them again, and does not use
	// the old ones if that fails.
	JWKSRefreshInterval = 15 * time.Minute
	// JWKSMinInterval is the least time between two fetches of one issuer's
	// keys (a token naming an unknown kid fetches again only after it, and
	// so does a failed fetch).
	JWKSMinInterval = 30 * time.Second
	// FetchTimeout bounds one discovery-and-JWKS fetch.
	FetchTimeout = 10 * time.Second
	// MaxDocumentSize bounds a discovery document or a JWKS.
	MaxDocumentSize = 1 << 20
	// MaxJWKSKeys bounds the keys of a JWKS.
	MaxJWKSKeys = 100
)

// algorithms returns the ID token signature algorithms a [Verifier]
// supports, the default of OIDCIssuer.Algorithms.
func algorithms() []string { return []string{"RS256", "ES256", "EdDSA"} }

// OIDCIssuer is one trusted OIDC issuer of ID tokens (GitHub Actions, a
// Kubernetes cluster, …).
type OIDCIssuer struct {
	Name          string   `json:"name"`                      // short name, prefix of subjects: [a-z0-9-]+
	Issuer        string   `json:"issuer"`                    // exact iss; https URL (http allowed only for loopback hosts, for tests)
	Audience      string   `json:"audience"`                  // required aud value
	JWKS          string   `json:"jwks,omitempty"`            // file path or URL; empty = discovery via <issuer>/.well-known/openid-configuration -> jwks_uri
	Algorithms    []string `json:"algorithms,omitempty"`      // subset of RS256, ES256, EdDSA; default all three
	SubjectClaim  string   `json:"subject_claim,omitempty"`   // default "sub"
	ClientIDClaim string   `json:"client_id_claim,omitempty"` // claim whose value (prefixed "<name>:") becomes client_id
}

// Config says which evidence a [Verifier] trusts.
type Config struct {
	Roots           *x509.CertPool   // trust bundle for certificate callers; nil = no certificate callers
	OIDC            []OIDCIssuer     // trusted OIDC issuers
	MaxAge          time.Duration    // certificate proof window around Timestamp (default 2m, max 10m)
	Leeway          time.Duration    // OIDC exp/nbf/iat leeway (default 30s, max 5m)
	MaxOIDCLifetime time.Duration    // refuse ID tokens whose exp-iat exceeds this (default 1h, max 24h): they are bearer credentials
	Now             func() time.Time // clock; nil = time.Now
	HTTPClient      *http.Client     // for discovery/JWKS; nil = a client with a 10s timeout that refuses redirects to non-https URLs
}

// Validate reports every problem of c at once, as an errors.Join of errors
// that each wrap [ErrConfig]; nil means [New] accepts c. Zero durations mean
// their defaults. Problems: neither roots nor OIDC issuers (nothing could
// be verified); an empty root pool; a negative duration or one above its
// limit; an OIDC issuer with a bad or duplicate name (names must match
// [a-z0-9-]+, at most 64 bytes, and "spiffe" is reserved so that no OIDC
// subject can look like a SPIFFE ID), a bad or duplicate issuer URL (https,
// or http on a loopback host; no user, query or fragment; no issuer may be
// another one followed by ':'), an empty or non-printable audience, a bad
// JWKS URL, an unknown or repeated algorithm, or a bad claim name.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Roots == nil && len(c.OIDC) == 0 {
		bad("no certificate roots and no OIDC issuer: no evidence could ever verify")
	}
	if c.Roots != nil && c.Roots.Equal(x509.NewCertPool()) {
		bad("the root pool is empty")
	}
	for _, d := range []struct {
		name   string
		v, max time.Duration
	}{
		{"max_age", c.MaxAge, MaxMaxAge},
		{"leeway", c.Leeway, MaxLeeway},
		{"max_oidc_lifetime", c.MaxOIDCLifetime, MaxMaxOIDCLifetime},
	} {
		if d.v < 0 || d.v > d.max {
			bad("%s %s is out of range [0, %s]", d.name, d.v, d.max)
		}
	}
	names := map[string]bool{}
	var issuers []string
	for i, o := range c.OIDC {
		what := fmt.Sprintf("oidc[%d]", i)
		if !validName(o.Name) {
			bad("%s: name %s must match [a-z0-9-]+ (at most 64 bytes)", what, clip(o.Name))
		} else if o.Name == "spiffe" {
			bad("%s: name \"spiffe\" is reserved", what)
		} else if names[o.Name] {
			bad("%s: name %q is used twice", what, o.Name)
		}
		names[o.Name] = true
		if err := checkURL(o.Issuer, false); err != nil {
			bad("%s: issuer: %v", what, err)
		} else {
			for _, other := range issuers {
				switch {
				case other == o.Issuer:
					bad("%s: issuer %q is configured twice", what, o.Issuer)
				case strings.HasPrefix(other, o.Issuer+":"), strings.HasPrefix(o.Issuer, other+":"):
					bad("%s: issuer %q extends %q with ':', which would make use keys ambiguous", what, o.Issuer, other)
				}
			}
			issuers = append(issuers, o.Issuer)
		}
		if err := checkText(o.Audience, MaxAudienceSize); err != nil {
			bad("%s: audience: %v", what, err)
		}
		if isURL(o.JWKS) {
			if err := checkURL(o.JWKS, true); err != nil {
				bad("%s: jwks: %v", what, err)
			}
		}
		for j, a := range o.Algorithms {
			if !slices.Contains(algorithms(), a) {
				bad("%s: algorithm %s is not one of %s", what, clip(a), strings.Join(algorithms(), ", "))
			} else if slices.Contains(o.Algorithms[:j], a) {
				bad("%s: algorithm %s is listed twice", what, a)
			}
		}
		if o.Algorithms != nil && len(o.Algorithms) == 0 {
			bad("%s: algorithms is empty (omit it for the default)", what)
		}
		for _, cl := range []struct{ name, v string }{{"subject_claim", o.SubjectClaim}, {"client_id_claim", o.ClientIDClaim}} {
			if cl.v != "" {
				if err := checkText(cl.v, 256); err != nil {
					bad("%s: %s: %v", what, cl.name, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isURL tells a JWKS URL from a file path.
func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// checkURL accepts an absolute https URL, or an http URL of a loopback host
// (for tests). A query is allowed only when query is true (an issuer has
// none).
func checkURL(raw string, query bool) error {
	if raw == "" {
		return errors.New("empty URL")
	}
	if len(raw) > 2048 || strings.ContainsAny(raw, " \t\r\n#") {
		return fmt.Errorf("%s is not a plain URL", clip(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL", clip(raw))
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%s is not an https URL", clip(raw))
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%s has no host", clip(raw))
	case u.User != nil:
		return fmt.Errorf("%s holds user information", clip(raw))
	case !query && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Errorf("%s has a query", clip(raw))
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return fmt.Errorf("%s: http is allowed only for loopback hosts", clip(raw))
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDefaults returns c with its zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.MaxOIDCLifetime == 0 {
		c.MaxOIDCLifetime = DefaultMaxOIDCLifetime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout: FetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return checkURL(req.URL.String(), true)
			},
		}
	}
	return c
}
