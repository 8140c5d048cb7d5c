package keysource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// discoveryPath is where an issuer serves its OpenID Provider Metadata,
// relative to the issuer (OpenID Connect Discovery 1.0 §4).
const discoveryPath = "/.well-known/openid-configuration"

// discoveryURL returns the discovery URL of issuer.
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + discoveryPath
}

// discover fetches and checks the discovery document of issuer and returns
// its jwks_uri. Every error wraps [ErrDiscovery].
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	src := discoveryURL(issuer)
	doc, err := get(ctx, client, src)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	return parseDiscovery(doc, issuer)
}

// get fetches the document at src, which must be acceptable ([checkURL]),
// answer 200 OK from an acceptable final URL (on https if src is) and be at
// most [MaxDiscoverySize] bytes.
func get(ctx context.Context, client *http.Client, src string) ([]byte, error) {
	u, err := checkURL(src)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clip(u.Redacted()), err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err // *url.Error names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", clip(u.Redacted()), resp.StatusCode)
	}
	if resp.Request == nil || resp.Request.URL == nil {
		return nil, fmt.Errorf("%s: no final request", clip(u.Redacted()))
	}
	final := resp.Request.URL
	if u.Scheme == "https" && final.Scheme != "https" {
		return nil, fmt.Errorf("%s: redirected off https to %s", clip(u.Redacted()), clip(final.Redacted()))
	}
	if err := checkParsedURL(final); err != nil {
		return nil, fmt.Errorf("%s: redirected: %w", clip(u.Redacted()), err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxDiscoverySize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clip(u.Redacted()), err)
	}
	if len(data) > MaxDiscoverySize {
		return nil, fmt.Errorf("%s: document over %d bytes", clip(u.Redacted()), MaxDiscoverySize)
	}
	return data, nil
}

// parseDiscovery checks an OpenID Provider Metadata document and returns its
// jwks_uri. The document must be at most [MaxDiscoverySize] bytes of UTF-8,
// exactly one JSON object with no duplicate member (so that no two parsers
// can read a different issuer or jwks_uri out of it), whose "issuer" is a
// string equal to issuer and whose "jwks_uri" is a string that [checkURL]
// accepts, and is https unless issuer is a plain http URL. Other members are ignored. Every error
// wraps [ErrDiscovery].
func parseDiscovery(data []byte, issuer string) (string, error) {
	if len(data) > MaxDiscoverySize {
		return "", fmt.Errorf("%w: document over %d bytes", ErrDiscovery, MaxDiscoverySize)
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return "", fmt.Errorf("%w: not a JSON document", ErrDiscovery)
	}
	m, err := object(data)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	iss, err := stringMember(m, "issuer")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	if iss != issuer {
		return "", fmt.Errorf("%w: document names issuer %s, want %s", ErrDiscovery, clip(iss), clip(issuer))
	}
	raw, err := stringMember(m, "jwks_uri")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	u, err := checkURL(raw)
	if err != nil {
		return "", fmt.Errorf("%w: jwks_uri: %w", ErrDiscovery, err)
	}
	if iu, err := url.Parse(issuer); (err != nil || iu.Scheme != "http") && u.Scheme != "https" {
		return "", fmt.Errorf("%w: jwks_uri %s of an https issuer is not https", ErrDiscovery, clip(u.Redacted()))
	}
	return raw, nil
}

// stringMember returns the string member name of m.
func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	v, ok := m[name]
	if !ok {
		return "", fmt.Errorf("no %q member", name)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`)) {
		return "", fmt.Errorf("member %q is not a string", name)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("member %q is not a string", name)
	}
	return s, nil
}

// object decodes a JSON object whose members are unique. data is known to
// be one valid JSON value.
func object(data []byte) (map[string]json.RawMessage, error) {
	errNotObject := errors.New("not a JSON object")
	dec := json.NewDecoder(bytes.NewReader(data))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		k, ok := t.(string)
		if !ok {
			return nil, errNotObject
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate member %s", clip(k))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errNotObject
		}
		m[k] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}
