package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrFetch means a JWKS document could not be fetched: a URL [Load] refuses,
// a status other than 200 OK, or a redirect off https.
var ErrFetch = errors.New("jwks: fetch failed")

// defaultTimeout bounds a fetch made with the client [Load] makes itself.
const defaultTimeout = 30 * time.Second

// Load reads and parses ([Parse]) a JWKS document from src, which is either
// a file path or an http:// or https:// URL.
//
// A URL is fetched with a GET bound to ctx, with client, or when client is
// nil with a fresh client that times out after 30 seconds. Only https URLs
// are accepted, except http URLs whose host is a loopback address
// ("localhost", 127.0.0.0/8, ::1), for local sidecars and tests: keys
// fetched in the clear could be replaced by anyone on the path. Redirects
// are followed as client does, but a fetch that started on https must end on
// https. The response must be 200 OK and its body at most [MaxSize] bytes.
//
// Load fails with an error wrapping [ErrFetch] for a refused URL scheme or
// host, a status other than 200 or a redirect off https; wrapping the
// underlying error for I/O failures (including ctx's); and wrapping
// [ErrInvalid] for a document over [MaxSize] or one [Parse] refuses.
func Load(ctx context.Context, src string, client *http.Client) (*Static, error) {
	var (
		data []byte
		err  error
	)
	if isURL(src) {
		data, err = fetch(ctx, src, client)
	} else {
		data, err = readFile(src)
	}
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", src, err)
	}
	return s, nil
}

// isURL reports whether src is meant as a URL rather than a path: anything
// with a scheme separator is, so that "file://…" or "ftp://…" is refused
// rather than read as a relative path.
func isURL(src string) bool {
	return strings.Contains(src, "://")
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer f.Close()
	return readLimited(f, path)
}

func readLimited(r io.Reader, src string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: reading %s: %w", src, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("jwks: %s: %w: document over %d bytes", src, ErrInvalid, MaxSize)
	}
	return data, nil
}

func fetch(ctx context.Context, src string, client *http.Client) ([]byte, error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a URL", ErrFetch, src)
	}
	if err := checkURL(u); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, u.Redacted(), err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetching %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: status %d", ErrFetch, u.Redacted(), resp.StatusCode)
	}
	if resp.Request == nil || resp.Request.URL == nil {
		return nil, fmt.Errorf("%w: %s: no final request", ErrFetch, u.Redacted())
	}
	if final := resp.Request.URL; u.Scheme == "https" && final.Scheme != "https" {
		return nil, fmt.Errorf("%w: %s: redirected off https to %s", ErrFetch, u.Redacted(), final.Redacted())
	} else if err := checkURL(final); err != nil {
		return nil, fmt.Errorf("after redirects: %w", err)
	}
	return readLimited(resp.Body, u.Redacted())
}

// checkURL applies the scheme and host policy of [Load] to u.
func checkURL(u *url.URL) error {
	switch {
	case u.Host == "":
		return fmt.Errorf("%w: %s: no host", ErrFetch, u.Redacted())
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%w: %s: plain http is only allowed to a loopback host", ErrFetch, u.Redacted())
	default:
		return fmt.Errorf("%w: %s: scheme %q not allowed", ErrFetch, u.Redacted(), u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
