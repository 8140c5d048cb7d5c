package keysource

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultRefresh is the background refresh period when a [Config] sets
	// none.
	DefaultRefresh = 5 * time.Minute
	// MinRefresh is the shortest background refresh period a [Config] may
	// set.
	MinRefresh = 10 * time.Second
	// DefaultMinInterval is the least time between two fetches triggered by
	// unknown kids when a [Config] sets none.
	DefaultMinInterval = 30 * time.Second
	// MinMinInterval is the smallest MinInterval a [Config] may set.
	MinMinInterval = time.Second
	// FetchTimeout bounds every fetch (discovery and JWKS together),
	// whatever the HTTP client's own timeout.
	FetchTimeout = 10 * time.Second
	// MaxDiscoverySize bounds the size of a discovery document.
	MaxDiscoverySize = 1 << 20
	// maxRedirects bounds the redirects the default client follows.
	maxRedirects = 5
)

var (
	// ErrConfig means a [Config] is not usable. Every error of
	// [Config.Validate] wraps it, and so does every error of [New] and
	// [Issuers] about a configuration.
	ErrConfig = errors.New("keysource: invalid config")
	// ErrUnavailable means a [Source] has no keys yet: no fetch has
	// succeeded since it was made.
	ErrUnavailable = errors.New("keysource: keys unavailable")
	// ErrDiscovery means the discovery document could not be fetched or was
	// refused: not 200 OK, too large, not a JSON object, naming another
	// issuer, or a jwks_uri that is not an acceptable URL.
	ErrDiscovery = errors.New("keysource: discovery failed")
)

// Config configures a [Source].
type Config struct {
	// Issuer is the trusted issuer: the exact iss claim of its tokens.
	// Required. Unless JWKSURL or File is set, it is also where the keys
	// are discovered, at Issuer + "/.well-known/openid-configuration" (a
	// trailing slash of Issuer is not doubled), so it must then be an
	// acceptable URL: https, or http to a loopback host, with no user
	// information, query or fragment.
	Issuer string
	// JWKSURL, if set, is the URL of the issuer's JWKS, which skips
	// discovery. It must be an acceptable URL, as Issuer.
	JWKSURL string
	// File, if set, is a JWKS file read once by [New] and never refreshed,
	// for offline use. It excludes JWKSURL.
	File string
	// Refresh is the period of the background refresh of [Source.Run].
	// Zero means [DefaultRefresh]; otherwise it must be at least
	// [MinRefresh].
	Refresh time.Duration
	// MinInterval is the least time between the start of two fetches
	// triggered by a lookup of an unknown kid, and the first delay of
	// [Source.Run]'s retries after a failed fetch. Zero means
	// [DefaultMinInterval]; otherwise it must be at least [MinMinInterval].
	MinInterval time.Duration
	// HTTPClient fetches the discovery document and the JWKS. Nil means a
	// client with a 10s timeout that refuses redirects to URLs that are not
	// acceptable (see Issuer). Whatever the client, every URL fetched and
	// the final URL after redirects must be acceptable, a fetch that
	// started on https must end on https, and a fetch is abandoned after
	// [FetchTimeout].
	HTTPClient *http.Client
	// Now is the clock that MinInterval is measured on. Nil means time.Now.
	Now func() time.Time
	// Log, if set, receives a record of every failed fetch (Warn) and every
	// change of the key set (Info).
	Log *slog.Logger
}

// Validate reports every problem of c at once, as an errors.Join of errors
// that each wrap [ErrConfig]; nil if c is usable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Issuer == "" {
		bad("no issuer")
	}
	switch {
	case c.File != "" && c.JWKSURL != "":
		bad("issuer %q: both a JWKS file and a JWKS URL", c.Issuer)
	case c.File != "":
		if strings.Contains(c.File, "://") {
			bad("issuer %q: JWKS file %q is a URL; set JWKSURL instead", c.Issuer, c.File)
		}
	case c.JWKSURL != "":
		if _, err := checkURL(c.JWKSURL); err != nil {
			bad("issuer %q: JWKS URL: %v", c.Issuer, err)
		}
	case c.Issuer != "":
		if _, err := checkURL(c.Issuer); err != nil {
			bad("issuer %q is not a URL to discover keys at: %v", c.Issuer, err)
		}
	}
	if c.Refresh < 0 || (c.Refresh > 0 && c.Refresh < MinRefresh) {
		bad("issuer %q: refresh period %s is below %s", c.Issuer, c.Refresh, MinRefresh)
	}
	if c.MinInterval < 0 || (c.MinInterval > 0 && c.MinInterval < MinMinInterval) {
		bad("issuer %q: minimum interval %s is below %s", c.Issuer, c.MinInterval, MinMinInterval)
	}
	return errors.Join(errs...)
}

// checkURL parses raw and applies the URL policy: https, or http to a
// loopback host; a host; no user information, query or fragment. It returns
// the parsed URL.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a URL", clip(raw))
	}
	if err := checkParsedURL(u); err != nil {
		return nil, err
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, fmt.Errorf("%s has user information, a query or a fragment", clip(u.Redacted()))
	}
	return u, nil
}

// checkParsedURL applies the scheme and host part of the URL policy, which
// redirects must keep to as well.
func checkParsedURL(u *url.URL) error {
	switch {
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%s has no host", clip(u.Redacted()))
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s: plain http is only allowed to a loopback host", clip(u.Redacted()))
	default:
		return fmt.Errorf("%s: scheme %q is not https", clip(u.Redacted()), u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultClient is the client of a [Config] that sets none.
func defaultClient() *http.Client {
	return &http.Client{
		Timeout: FetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("redirect refused: more than %d redirects", maxRedirects)
			}
			if err := checkParsedURL(req.URL); err != nil {
				return fmt.Errorf("redirect refused: %w", err)
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect refused: off https to %s", clip(req.URL.Redacted()))
			}
			return nil
		},
	}
}

// clip bounds a string taken from a config, a document or a token before it
// goes into an error message.
func clip(s string) string {
	const max = 128
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
