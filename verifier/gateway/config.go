package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/keysource"
	"github.com/frostmint/frostmint/verifier/redisreplay"
)

// Defaults and bounds of a [Config].
const (
	// DefaultShutdownTimeout is how long Run waits for requests in flight
	// when it stops, unless the config says otherwise.
	DefaultShutdownTimeout = 10 * time.Second
	// MaxShutdownTimeout bounds shutdown_timeout.
	MaxShutdownTimeout = 10 * time.Minute
	// DefaultMaxBindingBody is the largest body hashed to check a request
	// binding, unless the config says otherwise.
	DefaultMaxBindingBody = 1 << 20
	// MaxMaxBindingBody bounds max_binding_body: a bound body is held in
	// memory while it is checked.
	MaxMaxBindingBody = 64 << 20
	// maxRouteName bounds a route's name, which goes into logs and audit
	// records.
	maxRouteName = 64
)

// ErrConfig means a [Config] is not usable. Every error of
// [Config.Validate], [LoadConfig] and [ParseConfig] wraps it.
var ErrConfig = errors.New("gateway: invalid config")

// Duration is a time.Duration written in JSON as a Go duration string
// ("10s", "1m30s").
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Replay values of a route.
const (
	// ReplaySingleUse: a token is accepted once, on any route (the default).
	ReplaySingleUse = "single_use"
	// ReplayReusable: a token may be presented again until it expires.
	ReplayReusable = "reusable"
)

// Config configures a [Gateway]. It is read from JSON ([LoadConfig]) over
// [Default]; unknown keys are an error.
type Config struct {
	// Listen is the address of the proxy, host:port. Required.
	Listen string `json:"listen"`
	// TLS, when set, serves HTTPS (HTTP/1.1 and HTTP/2) with this
	// certificate; otherwise the proxy serves cleartext HTTP/1.1 and h2c
	// (HTTP/2 with prior knowledge, for gRPC), and TLS must be terminated
	// in front of it.
	TLS *TLSFiles `json:"tls,omitempty"`
	// AdminListen, when set, serves /healthz (liveness) and /readyz
	// (readiness) on this address. Keep it off the public network.
	AdminListen string `json:"admin_listen,omitempty"`
	// Issuers are the trusted token issuers, at least one.
	Issuers []IssuerConfig `json:"issuers"`
	// Audience is the audience of routes that name none.
	Audience string `json:"audience,omitempty"`
	// Leeway is the clock skew tolerated on exp, nbf and iat (30s, at most
	// 5m).
	Leeway Duration `json:"leeway"`
	// Replay is where used single-use tokens are remembered. Empty means
	// in this process's memory, which is only correct with ONE gateway
	// process: with several, a token could be used once per process.
	Replay ReplayConfig `json:"replay"`
	// AuditLog, when set, is an append-only audit log (package
	// policy/audit) of every decision, allow and deny; a request whose
	// decision cannot be recorded is refused with 503.
	AuditLog string `json:"audit_log,omitempty"`
	// Upstream is the upstream of routes that name none: http://, https://
	// or h2c:// (cleartext HTTP/2 with prior knowledge, for gRPC).
	Upstream string `json:"upstream,omitempty"`
	// MaxBindingBody is the largest body read to check a request binding
	// (1 MiB); a bound request with a larger body is refused (413).
	MaxBindingBody int64 `json:"max_binding_body"`
	// TrustForwardedProto makes the gateway believe an incoming
	// X-Forwarded-Proto of "http" or "https" about the scheme the client
	// used (for request binding and the X-Forwarded-Proto it sends on).
	// Only set it when every client reaches the gateway through a proxy
	// that sets that header.
	TrustForwardedProto bool `json:"trust_forwarded_proto,omitempty"`
	// ShutdownTimeout is how long requests in flight (and upgraded
	// connections) get to finish when the gateway stops (10s).
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// Routes say which requests are let through, and to where. At least
	// one; a request that matches none is refused (404).
	Routes []RouteConfig `json:"routes"`
}

// TLSFiles names a PEM certificate chain and its private key.
type TLSFiles struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	// Issuer is the exact iss claim of the issuer's tokens.
	Issuer string `json:"issuer"`
	// JWKS is where the issuer's keys are: an https URL (http only to a
	// loopback host), refreshed in the background, or a file, read once.
	// Empty means OpenID Connect discovery from Issuer.
	JWKS string `json:"jwks,omitempty"`
}

// ReplayConfig says where single-use tokens are remembered.
type ReplayConfig struct {
	// Redis, when set, is a Redis server shared by every gateway process.
	Redis *RedisConfig `json:"redis,omitempty"`
}

// RedisConfig is the shared replay store (package redisreplay). Run Redis
// with appendonly yes and appendfsync always, or a restart forgets which
// tokens were used.
type RedisConfig struct {
	// Addr is host:port. Required.
	Addr string `json:"addr"`
	// Username is the Redis ACL user, if any (it needs SET and PING).
	Username string `json:"username,omitempty"`
	// PasswordFile holds the password (a trailing newline is ignored). A
	// password is never written in the config itself.
	PasswordFile string `json:"password_file,omitempty"`
	// DB is the database number.
	DB int `json:"db,omitempty"`
	// KeyPrefix prefixes every key (default "frostmint:replay:").
	KeyPrefix string `json:"key_prefix,omitempty"`
}

// RouteConfig is one route.
type RouteConfig struct {
	// Name names the route in logs and audit records. Required, unique.
	Name string `json:"name"`
	// PathPrefix selects requests by path, segment-wise: "/api" matches
	// "/api" and "/api/…" but not "/apix"; "/api/" matches "/api/…" only;
	// "/" matches every path. The route with the longest matching prefix
	// among those allowing the method wins.
	PathPrefix string `json:"path_prefix"`
	// Methods are the HTTP methods of the route; empty means any.
	Methods []string `json:"methods,omitempty"`
	// Upstream overrides the config's Upstream for this route.
	Upstream string `json:"upstream,omitempty"`
	// Audience overrides the config's Audience for this route.
	Audience string `json:"audience,omitempty"`
	// Scopes must all be granted by the token. Empty means any token for
	// the audience.
	Scopes []string `json:"scopes,omitempty"`
	// Replay is "single_use" (the default) or "reusable".
	Replay string `json:"replay,omitempty"`
	// RequireBinding accepts only tokens bound to the request (claim
	// "req", package binding).
	RequireBinding bool `json:"require_binding,omitempty"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		Leeway:          Duration(verifier.DefaultLeeway),
		MaxBindingBody:  DefaultMaxBindingBody,
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
	}
}

// LoadConfig reads the JSON config at path over [Default]. It does not
// validate it; see [Config.Validate].
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes one JSON object over [Default]. Unknown keys and
// trailing data are errors. It does not validate.
func ParseConfig(data []byte) (Config, error) {
	c := Default()
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	return c, nil
}

// Validate reports every problem of c at once, as an errors.Join of errors
// that each wrap [ErrConfig]; nil if c is usable. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}

	if c.Listen == "" {
		bad("listen is required")
	} else if err := checkAddr(c.Listen); err != nil {
		bad("listen: %v", err)
	}
	if c.TLS != nil && (c.TLS.Cert == "" || c.TLS.Key == "") {
		bad("tls: cert and key are both required")
	}
	if c.AdminListen != "" {
		if err := checkAddr(c.AdminListen); err != nil {
			bad("admin_listen: %v", err)
		} else if _, port, _ := net.SplitHostPort(c.Listen); c.AdminListen == c.Listen && port != "0" {
			bad("admin_listen must differ from listen")
		}
	}

	if len(c.Issuers) == 0 {
		bad("issuers: at least one issuer is required")
	}
	seen := map[string]bool{}
	for i, iss := range c.Issuers {
		if iss.Issuer != "" && seen[iss.Issuer] {
			bad("issuers[%d]: duplicate issuer %q", i, iss.Issuer)
		}
		seen[iss.Issuer] = true
		if err := iss.keySource().Validate(); err != nil {
			for _, e := range unjoin(err) {
				bad("issuers[%d]: %v", i, e)
			}
		}
	}

	if c.Leeway < 0 || time.Duration(c.Leeway) > verifier.MaxLeeway {
		bad("leeway %s not in [0, %s]", time.Duration(c.Leeway), verifier.MaxLeeway)
	}
	if r := c.Replay.Redis; r != nil {
		password := "" // read by New; only whether there is one matters here
		if r.PasswordFile != "" {
			password = "from password_file"
		}
		if err := r.cache(password).Validate(); err != nil {
			for _, e := range unjoin(err) {
				bad("replay.redis: %v", e)
			}
		}
	}
	if c.Upstream != "" {
		if _, _, err := parseUpstream(c.Upstream); err != nil {
			bad("upstream: %v", err)
		}
	}
	if c.MaxBindingBody <= 0 || c.MaxBindingBody > MaxMaxBindingBody {
		bad("max_binding_body %d not in [1, %d]", c.MaxBindingBody, MaxMaxBindingBody)
	}
	if c.ShutdownTimeout <= 0 || time.Duration(c.ShutdownTimeout) > MaxShutdownTimeout {
		bad("shutdown_timeout %s not in (0, %s]", time.Duration(c.ShutdownTimeout), MaxShutdownTimeout)
	}

	if len(c.Routes) == 0 {
		bad("routes: at least one route is required (a request that matches no route is refused)")
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		at := fmt.Sprintf("routes[%d] (%q)", i, r.Name)
		switch {
		case r.Name == "":
			bad("routes[%d]: name is required", i)
		case len(r.Name) > maxRouteName || strings.IndexFunc(r.Name, func(c rune) bool { return !isNameChar(c) }) >= 0:
			bad("%s: name must be 1..%d characters of A-Z a-z 0-9 . _ -", at, maxRouteName)
		case names[r.Name]:
			bad("%s: duplicate name", at)
		}
		names[r.Name] = true
		if err := checkPrefix(r.PathPrefix); err != nil {
			bad("%s: path_prefix: %v", at, err)
		}
		ms := map[string]bool{}
		for _, m := range r.Methods {
			if m == "" || len(m) > 32 || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
				bad("%s: method %q is not an upper-case method name", at, m)
			} else if ms[m] {
				bad("%s: method %s listed twice", at, m)
			}
			ms[m] = true
		}
		switch up := cmp.Or(r.Upstream, c.Upstream); {
		case up == "":
			bad("%s: no upstream (set upstream, or the default upstream)", at)
		case r.Upstream != "":
			if _, _, err := parseUpstream(r.Upstream); err != nil {
				bad("%s: upstream: %v", at, err)
			}
		}
		if cmp.Or(r.Audience, c.Audience) == "" {
			bad("%s: no audience (set audience, or the default audience)", at)
		}
		for _, s := range r.Scopes {
			if !isScopeToken(s) {
				bad("%s: scope %q is not a scope token (RFC 6749: printable ASCII, no space, quote or backslash)", at, s)
			}
		}
		if r.Replay != "" && r.Replay != ReplaySingleUse && r.Replay != ReplayReusable {
			bad("%s: replay %q is neither %q nor %q", at, r.Replay, ReplaySingleUse, ReplayReusable)
		}
	}
	// Two routes with one prefix must not both accept a method: which of
	// them a request takes would be an accident of order.
	for i, a := range c.Routes {
		for _, b := range c.Routes[i+1:] {
			if a.PathPrefix == b.PathPrefix && methodsOverlap(a.Methods, b.Methods) {
				bad("routes %q and %q: same path_prefix %q with overlapping methods", a.Name, b.Name, a.PathPrefix)
			}
		}
	}
	return errors.Join(errs...)
}

// keySource is the keysource config of an issuer: a JWKS value with a
// scheme is a URL, anything else a file.
func (i IssuerConfig) keySource() keysource.Config {
	kc := keysource.Config{Issuer: i.Issuer}
	switch {
	case strings.Contains(i.JWKS, "://"):
		kc.JWKSURL = i.JWKS
	case i.JWKS != "":
		kc.File = i.JWKS
	}
	return kc
}

// cache is the redisreplay config of r, with the password given.
func (r *RedisConfig) cache(password string) redisreplay.Config {
	return redisreplay.Config{
		Addr:      r.Addr,
		Username:  r.Username,
		Password:  password,
		DB:        r.DB,
		KeyPrefix: r.KeyPrefix,
	}
}

// parseUpstream parses an upstream URL. h2c:// means cleartext HTTP/2 with
// prior knowledge; the URL returned then has the http scheme.
func parseUpstream(raw string) (*url.URL, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("%q is not a URL", raw)
	}
	h2c := false
	switch u.Scheme {
	case "http", "https":
	case "h2c":
		h2c = true
		u.Scheme = "http"
	default:
		return nil, false, fmt.Errorf("%q: scheme must be http, https or h2c", raw)
	}
	switch {
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, false, fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return nil, false, fmt.Errorf("%q has user information", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, false, fmt.Errorf("%q has a query or a fragment", raw)
	}
	return u, h2c, nil
}

func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// checkPrefix accepts a path prefix in the canonical form requests must be
// in (see cleanPath), so that it can match at all.
func checkPrefix(p string) error {
	if p == "" {
		return errors.New("required")
	}
	if !cleanPath(p) {
		return fmt.Errorf("%q must start with / and have no empty, \".\" or \"..\" segment, backslash, semicolon or control character", p)
	}
	return nil
}

func methodsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, m := range a {
		if slices.Contains(b, m) {
			return true
		}
	}
	return false
}

// isScopeToken reports whether s is a scope-token of RFC 6749 §3.3.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isNameChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// unjoin splits an errors.Join into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
