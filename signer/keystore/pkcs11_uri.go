package keystore

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// Errors of the PKCS#11 backend, beside [ErrConfig], [ErrUnseal] and
// [ErrFormat]. They are declared without a build constraint so callers can
// test for them whether or not the build has cgo.
var (
	// ErrPKCS11TokenNotFound means no token in the module has the URI's
	// label (and serial, when given).
	ErrPKCS11TokenNotFound = errors.New("pkcs11: token not found")
	// ErrPKCS11Login means the token refused the PIN, or the PIN differs
	// from the one this process already logged in to the token with.
	ErrPKCS11Login = errors.New("pkcs11: login failed (check the PIN source)")
	// ErrPKCS11KeyNotFound means the token holds no secret key with the
	// URI's object label.
	ErrPKCS11KeyNotFound = errors.New("pkcs11: key not found")
	// ErrPKCS11KeyAmbiguous means several secret keys share the object
	// label, so the one sealing the share cannot be told apart.
	ErrPKCS11KeyAmbiguous = errors.New("pkcs11: several keys share the label")
	// ErrPKCS11KeyExists means [InitPKCS11Key] found a key with the label
	// already; it never replaces one, as that would orphan every share
	// sealed under it.
	ErrPKCS11KeyExists = errors.New("pkcs11: a key with this label already exists")
	// ErrPKCS11KeyUnsuitable means the key is not a sensitive,
	// non-extractable AES-256 key allowed to encrypt and decrypt.
	ErrPKCS11KeyUnsuitable = errors.New("pkcs11: key unsuitable for sealing")
)

// Bounds of the URI attributes. A token label is a fixed 32-byte field and a
// serial 16 bytes in CK_TOKEN_INFO; the key label bound matches the sealed
// envelope's.
const (
	p11MaxTokenLabel = 32
	p11MaxSerial     = 16
)

// pkcs11Config is a parsed pkcs11: keystore URI, an RFC 7512 subset:
//
//	pkcs11:token=LABEL;object=KEY[;serial=SERIAL]?module-path=/abs/lib.so&pin-source=env:NAME|file:PATH
type pkcs11Config struct {
	Token     string // the token's label
	Serial    string // the token's serial number, to tell apart tokens sharing a label
	Object    string // CKA_LABEL of the AES key sealing the share
	Module    string // absolute path of the PKCS#11 library
	PINSource string // where the user PIN is read from: env:NAME or file:PATH
}

// parsePKCS11URI checks a pkcs11: URI. Every error wraps [ErrConfig] and
// names attributes, never their values where a secret could be: a PIN put
// in the URI by mistake must not end up in a log.
func parsePKCS11URI(u *url.URL) (pkcs11Config, error) {
	var c pkcs11Config
	if u.Scheme != "pkcs11" {
		return c, fmt.Errorf("%w: pkcs11: scheme is %q, want pkcs11", ErrConfig, u.Scheme)
	}
	if u.Opaque == "" || u.Host != "" || u.User != nil || u.Path != "" {
		return c, fmt.Errorf("%w: pkcs11: want pkcs11:token=LABEL;object=KEY?module-path=PATH&pin-source=SOURCE (no // or leading /)", ErrConfig)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return c, fmt.Errorf("%w: pkcs11: a fragment (#…) is not allowed", ErrConfig)
	}
	path, err := pkcs11Attributes(u.Opaque, ";", "path")
	if err != nil {
		return c, err
	}
	for _, name := range slices.Sorted(maps.Keys(path)) {
		v := path[name]
		switch name {
		case "token":
			c.Token = v
		case "object":
			c.Object = v
		case "serial":
			c.Serial = v
		default:
			return c, fmt.Errorf("%w: pkcs11: unsupported path attribute %q (want token, object and optionally serial)", ErrConfig, name)
		}
	}
	query, err := pkcs11Attributes(u.RawQuery, "&", "query")
	if err != nil {
		return c, err
	}
	if _, ok := query["pin-value"]; ok {
		return c, fmt.Errorf("%w: pkcs11: pin-value is refused: a PIN never goes in the URI; name it with pin-source=env:NAME or pin-source=file:PATH", ErrConfig)
	}
	for _, name := range slices.Sorted(maps.Keys(query)) {
		v := query[name]
		switch name {
		case "module-path":
			c.Module = v
		case "pin-source":
			c.PINSource = v
		default:
			return c, fmt.Errorf("%w: pkcs11: unsupported query attribute %q (want module-path and pin-source)", ErrConfig, name)
		}
	}
	switch {
	case c.Token == "":
		return c, fmt.Errorf("%w: pkcs11: token= (the token label) is required", ErrConfig)
	case len(c.Token) > p11MaxTokenLabel:
		return c, fmt.Errorf("%w: pkcs11: token label longer than %d bytes", ErrConfig, p11MaxTokenLabel)
	case len(c.Serial) > p11MaxSerial:
		return c, fmt.Errorf("%w: pkcs11: serial longer than %d bytes", ErrConfig, p11MaxSerial)
	case c.Object == "":
		return c, fmt.Errorf("%w: pkcs11: object= (the label of the AES key) is required", ErrConfig)
	case len(c.Object) > p11MaxKeyLabel:
		return c, fmt.Errorf("%w: pkcs11: object label longer than %d bytes", ErrConfig, p11MaxKeyLabel)
	case c.Module == "":
		return c, fmt.Errorf("%w: pkcs11: module-path= (the PKCS#11 library) is required", ErrConfig)
	case !filepath.IsAbs(c.Module):
		return c, fmt.Errorf("%w: pkcs11: module-path %q must be absolute, so the library loaded does not depend on the working directory or the loader's search path", ErrConfig, c.Module)
	}
	if err := SecretSource("pkcs11: pin-source", c.PINSource); err != nil {
		return c, err
	}
	return c, nil
}

// pkcs11Attributes splits name=value pairs separated by sep and
// percent-decodes the values. It does not use url.ParseQuery: RFC 7512
// values keep "+" literal, and a repeated or empty attribute is an error
// rather than something to pick from.
func pkcs11Attributes(s, sep, part string) (map[string]string, error) {
	attrs := map[string]string{}
	if s == "" {
		return attrs, nil
	}
	for _, kv := range strings.Split(s, sep) {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: pkcs11: %s attribute %d is not name=value", ErrConfig, part, len(attrs)+1)
		}
		if _, dup := attrs[name]; dup {
			return nil, fmt.Errorf("%w: pkcs11: %s attribute %q is repeated", ErrConfig, part, name)
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: pkcs11: %s attribute %q has a bad percent-encoding", ErrConfig, part, name)
		}
		if v == "" {
			return nil, fmt.Errorf("%w: pkcs11: %s attribute %q is empty", ErrConfig, part, name)
		}
		attrs[name] = v
	}
	return attrs, nil
}
