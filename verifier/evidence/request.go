package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/token"
)

// Bounds of a [Request]; [Canonical] refuses anything outside them.
const (
	// MinNonceSize and MaxNonceSize bound the caller's nonce, in bytes.
	MinNonceSize = 16
	MaxNonceSize = 64
	// MaxAudienceSize bounds the audience, in bytes.
	MaxAudienceSize = 1024
	// MaxScopeSize bounds one scope, in bytes.
	MaxScopeSize = 256
	// MaxScopes bounds the number of scopes: a token carries at most as
	// many.
	MaxScopes = token.MaxScopes
	// maxUnix is 10000-01-01T00:00:00Z: timestamps stay within what a
	// protobuf Timestamp and RFC 3339 can carry.
	maxUnix = 253402300800
	// Minimum and maximum RSA key sizes, in bits, for signing and verifying.
	minRSABits = 2048
	maxRSABits = 8192
	// MaxSignatureSize bounds a certificate caller's signature (an RSA-8192
	// signature).
	MaxSignatureSize = maxRSABits / 8
)

// CanonicalPrefix is the first line of every v1 canonical request: it names
// the format, its version and its purpose, so that a signature over it can
// never be taken for a signature over anything else.
const CanonicalPrefix = "frostmint mint request v1\n"

// CanonicalPrefixV2 starts the canonical form of a request with a request
// binding (see [Canonical]).
const CanonicalPrefixV2 = "frostmint mint request v2\n"

// Request is what a caller asks for; it is what a certificate caller signs.
type Request struct {
	Audience   string
	Scopes     []string  // order as given by the caller
	TTLSeconds int64     // 0 = the coordinator's default
	Nonce      []byte    // 16..64 random bytes chosen by the caller
	Timestamp  time.Time // when the caller made the request (second precision)
	// Binding, when set, is the one HTTP request the token is to be bound
	// to (package binding); it is part of what the caller signs.
	Binding *binding.Binding
}

// NewRequest returns a request for audience and scopes with a fresh 32-byte
// nonce from crypto/rand and now truncated to the second, ready for
// [SignRequest]. It fails, with an error wrapping [ErrInvalid], when
// [Canonical] would refuse the result.
func NewRequest(audience string, scopes []string, ttlSeconds int64, now time.Time) (Request, error) {
	r := Request{
		Audience:   audience,
		Scopes:     slices.Clone(scopes),
		TTLSeconds: ttlSeconds,
		Nonce:      make([]byte, 32),
		Timestamp:  time.Unix(now.Unix(), 0).UTC(),
	}
	_, _ = rand.Read(r.Nonce) // crypto/rand.Read never fails
	if err := checkRequest(r, true); err != nil {
		return Request{}, err
	}
	return r, nil
}

// Canonical returns the exact bytes a certificate caller signs: the v1
// canonical encoding of r. It is six lines, each ended by a single LF (0x0A),
// in this order and with no other bytes:
//
//	frostmint mint request v1
//	audience <Audience>
//	scopes <Scopes[0]> <Scopes[1]> … <Scopes[n-1]>
//	ttl <TTLSeconds>
//	nonce <Nonce>
//	timestamp <Timestamp>
//
// where each label is followed by one space (0x20); the audience and the
// scopes are their UTF-8 bytes verbatim, the scopes in the caller's order
// separated by single spaces; TTLSeconds and Timestamp (as Unix seconds) are
// ASCII decimal without sign or leading zeros ("0" for zero); and the nonce is
// unpadded base64url (RFC 4648 §5). testdata/canonical-v1.txt pins an
// example.
//
// The encoding is unambiguous because no field may contain a space, a line
// break or any other separator: Canonical fails, with an error wrapping
// [ErrInvalid], on
//   - an empty audience or one longer than [MaxAudienceSize] bytes;
//   - no scope, more than [MaxScopes] scopes, an empty scope, one longer than
//     [MaxScopeSize] bytes, or the same scope twice;
//   - an audience or scope that is not valid UTF-8 or holds a white-space
//     character (unicode.IsSpace), a control character (Cc), a format
//     character (Cf: zero-width and bidirectional marks) or U+FFFD;
//   - a negative TTLSeconds;
//   - a nonce shorter than [MinNonceSize] or longer than [MaxNonceSize] bytes;
//   - a zero Timestamp, one not after 1970-01-01T00:00:00Z or not before the
//     year 10000, or one with a sub-second part (the encoding has second
//     precision, and two requests that differ must never encode alike:
//     truncate with time.Unix(t.Unix(), 0)).
//
// So two requests encode to the same bytes exactly when they have the same
// audience, scopes (in order), TTL, nonce and instant (time.Time.Equal).
//
// A request with a Binding is encoded as v2: the first line is
// "frostmint mint request v2", and a seventh line follows the timestamp:
//
//	binding <Method> <Authority> <Path> <BodySHA256, or - when the body is not bound>
//
// whose components are in the canonical form of package binding (checked
// with binding.Binding.Validate; none holds a space). A v1 and a v2
// encoding never coincide, so a binding cannot be stripped from a signed
// request.
func Canonical(r Request) ([]byte, error) {
	if err := checkRequest(r, true); err != nil {
		return nil, err
	}
	n := len(CanonicalPrefix) + len("audience \nscopes \nttl \nnonce \ntimestamp \n") +
		len(r.Audience) + 20 + base64.RawURLEncoding.EncodedLen(len(r.Nonce)) + 20
	for _, s := range r.Scopes {
		n += len(s) + 1
	}
	if r.Binding != nil {
		n += len(" binding    -\n") + len(r.Binding.Method) + len(r.Binding.Authority) + len(r.Binding.Path) + len(r.Binding.BodySHA256)
	}
	b := make([]byte, 0, n)
	if r.Binding != nil {
		b = append(b, CanonicalPrefixV2...)
	} else {
		b = append(b, CanonicalPrefix...)
	}
	b = append(b, "audience "...)
	b = append(b, r.Audience...)
	b = append(b, "\nscopes "...)
	for i, s := range r.Scopes {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	b = append(b, "\nttl "...)
	b = strconv.AppendInt(b, r.TTLSeconds, 10)
	b = append(b, "\nnonce "...)
	b = base64.RawURLEncoding.AppendEncode(b, r.Nonce)
	b = append(b, "\ntimestamp "...)
	b = strconv.AppendInt(b, r.Timestamp.Unix(), 10)
	b = append(b, '\n')
	if bd := r.Binding; bd != nil {
		b = append(b, "binding "...)
		b = append(b, bd.Method...)
		b = append(b, ' ')
		b = append(b, bd.Authority...)
		b = append(b, ' ')
		b = append(b, bd.Path...)
		b = append(b, ' ')
		if bd.BodySHA256 == "" {
			b = append(b, '-')
		} else {
			b = append(b, bd.BodySHA256...)
		}
		b = append(b, '\n')
	}
	return b, nil
}

// checkRequest checks r as Canonical does; without proof, the nonce and
// the timestamp (which only a certificate proof binds) are not looked at.
func checkRequest(r Request, proof bool) error {
	if err := checkText(r.Audience, MaxAudienceSize); err != nil {
		return fmt.Errorf("%w: request audience: %w", ErrInvalid, err)
	}
	switch {
	case len(r.Scopes) == 0:
		return fmt.Errorf("%w: request has no scope", ErrInvalid)
	case len(r.Scopes) > MaxScopes:
		return fmt.Errorf("%w: request has %d scopes, at most %d allowed", ErrInvalid, len(r.Scopes), MaxScopes)
	}
	for i, s := range r.Scopes {
		if err := checkText(s, MaxScopeSize); err != nil {
			return fmt.Errorf("%w: request scope %d: %w", ErrInvalid, i, err)
		}
		if slices.Contains(r.Scopes[:i], s) {
			return fmt.Errorf("%w: request scope %s is repeated", ErrInvalid, clip(s))
		}
	}
	if r.TTLSeconds < 0 {
		return fmt.Errorf("%w: request ttl %d is negative", ErrInvalid, r.TTLSeconds)
	}
	if r.Binding != nil {
		if err := r.Binding.Validate(); err != nil {
			return fmt.Errorf("%w: request binding: %w", ErrInvalid, err)
		}
	}
	if !proof {
		return nil
	}
	if n := len(r.Nonce); n < MinNonceSize || n > MaxNonceSize {
		return fmt.Errorf("%w: request nonce is %d bytes, want %d to %d", ErrInvalid, n, MinNonceSize, MaxNonceSize)
	}
	switch ts := r.Timestamp; {
	case ts.IsZero():
		return fmt.Errorf("%w: request has no timestamp", ErrInvalid)
	case ts.Unix() <= 0 || ts.Unix() >= maxUnix:
		return fmt.Errorf("%w: request timestamp %d is out of range", ErrInvalid, ts.Unix())
	case ts.Nanosecond() != 0:
		return fmt.Errorf("%w: request timestamp has a sub-second part (second precision only)", ErrInvalid)
	}
	return nil
}

// checkText checks a value that must be one non-empty word of printable
// text of at most max bytes.
func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("%d bytes, at most %d allowed", len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", clip(s))
	}
	for _, c := range s {
		if unicode.IsSpace(c) || unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == utf8.RuneError {
			return fmt.Errorf("%s holds white space, a control or format character, or U+FFFD", clip(s))
		}
	}
	return nil
}

// SignRequest is the caller side: it signs [Canonical](r) with the private
// key of the caller's certificate, so that the request cannot be altered on
// its way to the signers. By the key's type:
//   - Ed25519: pure Ed25519 (RFC 8032) over the canonical bytes;
//   - ECDSA on P-256: ECDSA with SHA-256, the signature ASN.1 DER encoded
//     (as crypto/ecdsa.SignASN1 makes it);
//   - RSA of 2048 to 8192 bits: RSASSA-PSS with SHA-256, MGF1 with SHA-256
//     and a salt as long as the hash (32 bytes).
//
// It fails, with an error wrapping [ErrInvalid], when Canonical refuses r or
// the key is of another type, curve or size; with the signer's own error
// when the key fails to sign; and with an error when the signature it made
// does not verify (a faulty key or signer), which it never returns.
func SignRequest(r Request, key crypto.Signer) ([]byte, error) {
	msg, err := Canonical(r)
	if err != nil {
		return nil, err
	}
	return SignStatement(msg, key)
}

// SignStatement signs msg with a certificate's key exactly as
// [SignRequest] signs a canonical request (same algorithms, same checks):
// for other signed statements of a certificate holder, such as a
// guardian's approval. It fails with an error wrapping [ErrInvalid] for an
// unsupported key.
func SignStatement(msg []byte, key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: no signing key", ErrInvalid)
	}
	pub := key.Public()
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var sig []byte
	var err error
	switch pub.(type) {
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, h[:], crypto.SHA256)
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: signing: %w", err)
	}
	if err := verifySignature(pub, msg, sig); err != nil {
		return nil, fmt.Errorf("evidence: the key made a signature that does not verify: %w", err)
	}
	return sig, nil
}

// VerifyStatement checks a signature made by [SignStatement]. It fails
// for an unsupported key or a signature that does not verify.
func VerifyStatement(pub crypto.PublicKey, msg, sig []byte) error {
	return verifySignature(pub, msg, sig)
}

// checkPublicKey accepts the key types a certificate caller may hold.
func checkPublicKey(pub crypto.PublicKey) error {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 public key of %d bytes", len(pub))
		}
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve != elliptic.P256() {
			return errors.New("ECDSA key not on P-256")
		}
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return errors.New("empty RSA key")
		}
		if n := pub.N.BitLen(); n < minRSABits || n > maxRSABits {
			return fmt.Errorf("RSA key of %d bits, want %d to %d", n, minRSABits, maxRSABits)
		}
	default:
		return fmt.Errorf("unsupported key type %T (Ed25519, ECDSA P-256 or RSA only)", pub)
	}
	return nil
}

// verifySignature checks sig over msg as SignRequest makes it.
func verifySignature(pub crypto.PublicKey, msg, sig []byte) error {
	if err := checkPublicKey(pub); err != nil {
		return err
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return fmt.Errorf("signature of %d bytes", len(sig))
	}
	bad := errors.New("signature does not verify")
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, msg, sig) {
			return bad
		}
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			return bad
		}
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, opts); err != nil {
			return bad
		}
	}
	return nil
}
