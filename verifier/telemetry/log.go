package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Log formats of [NewLogger].
const (
	LogJSON = "json"
	LogText = "text"
)

// DefaultLogFormat is the daemons' log format unless told otherwise.
const DefaultLogFormat = LogJSON

// redacted replaces the value of an attribute that names a credential.
const redacted = "[redacted]"

// secretKeys are substrings of attribute keys whose values are never
// logged. The daemons do not log such values; this is the net under them.
var secretKeys = []string{
	"token", "authorization", "password", "passphrase", "secret", "evidence",
	"signature", "share", "nonce", "private", "credential", "cookie",
}

// allowedKeys are attribute keys that contain such a substring but carry
// no secret.
var allowedKeys = map[string]bool{
	"token_id":  true, // the jti: public in the token and the audit log
	"nonce_ttl": true,
	"nonces":    true, // a count
}

// CheckLogFormat reports whether f is a known log format ("" is the
// default).
func CheckLogFormat(f string) error {
	switch f {
	case "", LogJSON, LogText:
		return nil
	}
	return fmt.Errorf("telemetry: log format %q: want %q or %q", f, LogJSON, LogText)
}

// NewLogger returns a logger writing to w in format f ("json", the
// default when f is empty, or "text") at level and above. Attribute values
// whose keys name a credential are redacted.
func NewLogger(w io.Writer, f string, level slog.Leveler) (*slog.Logger, error) {
	if err := CheckLogFormat(f); err != nil {
		return nil, err
	}
	o := &slog.HandlerOptions{Level: level, ReplaceAttr: redact}
	if f == LogText {
		return slog.New(slog.NewTextHandler(w, o)), nil
	}
	return slog.New(slog.NewJSONHandler(w, o)), nil
}

// redact is the handlers' ReplaceAttr.
func redact(_ []string, a slog.Attr) slog.Attr {
	if SecretKey(a.Key) {
		return slog.String(a.Key, redacted)
	}
	return a
}

// SecretKey reports whether values under the attribute key k are redacted
// by the loggers of [NewLogger].
func SecretKey(k string) bool {
	k = strings.ToLower(k)
	if allowedKeys[k] {
		return false
	}
	if k == "pin" {
		return true
	}
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
