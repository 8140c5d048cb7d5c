package evidence

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"
)

// Kind is the form of a piece of evidence.
type Kind string

// The kinds of evidence.
const (
	KindCertificate Kind = "x509-svid"
	KindOIDC        Kind = "oidc"
)

// Evidence is the caller's original proof, forwarded untouched by the
// coordinator. Exactly one of the two forms is set: a certificate chain with
// a signature over the request, or an OIDC ID token.
type Evidence struct {
	CertChain [][]byte // DER, leaf first
	Signature []byte   // SignRequest output
	OIDCToken string   // a compact JWS ID token
}

// Identity is what the evidence proves.
type Identity struct {
	Kind Kind
	// Subject becomes the token's sub: the SPIFFE ID for certificates;
	// "<issuer name>:<subject claim>" for OIDC (e.g.
	// "github:repo:octo/app:ref:refs/heads/main",
	// "k8s:system:serviceaccount:prod:api").
	Subject string
	// ClientID becomes client_id: the same as Subject for certificates; for
	// OIDC, "<issuer name>:<value of the issuer's client_id_claim>" if one is
	// configured, else Subject. The prefix keeps client ids of different
	// issuers (and of certificates) apart, as it does subjects.
	ClientID string
	// Issuer is the OIDC issuer's name from the configuration ("github"),
	// or "" for certificates.
	Issuer string
	// Claims are, for OIDC, all the claims of the ID token (numbers as
	// json.Number), for policy: repository, ref, workflow, environment,
	// kubernetes.io, …; for certificates {"spiffe_id": string, "serial":
	// string (lowercase hex), "not_after": int64 (Unix seconds)}.
	Claims map[string]any
	// UseKey names this evidence for single use (see [UseStore]):
	// certificates "cert:<subject>:<base64url nonce>"; OIDC
	// "oidc:<issuer url>:jti:<jti>" or, without jti,
	// "oidc:<issuer url>:sha256:<hex SHA-256 of the JWS signing input>"
	// (the token without its signature, so that a re-encoded signature,
	// ECDSA's (r, n-s) say, is still the same evidence).
	UseKey string
	// Expiry is the first instant at which Verify refuses the evidence
	// anyway, so single-use memory may forget it from then on:
	// certificates Timestamp+MaxAge; OIDC exp+Leeway.
	Expiry time.Time
}

// Verifier checks caller evidence. It is safe for concurrent use.
type Verifier struct {
	roots       *x509.CertPool
	maxAge      time.Duration
	leeway      time.Duration
	maxLifetime time.Duration
	now         func() time.Time
	issuers     map[string]*issuer // by exact issuer URL
	chains      chainCache         // certificate chains that verified
}

// New returns a verifier of cfg. It fails, with errors wrapping [ErrConfig],
// when cfg.Validate does, and when an issuer's JWKS is a file that cannot be
// read or holds no usable key (files are read at once, so that a
// misconfiguration shows at start-up; they are read again like URLs are
// fetched again). Keys behind URLs are fetched lazily by Verify, so New does
// no network I/O. New stops early, with ctx's error, when ctx is done.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v := &Verifier{
		maxAge:      cfg.MaxAge,
		leeway:      cfg.Leeway,
		maxLifetime: cfg.MaxOIDCLifetime,
		now:         cfg.Now,
		issuers:     make(map[string]*issuer, len(cfg.OIDC)),
	}
	if cfg.Roots != nil {
		v.roots = cfg.Roots.Clone()
	}
	for _, o := range cfg.OIDC {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		is := newIssuer(o, cfg.HTTPClient)
		if o.JWKS != "" && !isURL(o.JWKS) {
			if _, err := is.keySet(ctx, v.now, false); err != nil {
				return nil, fmt.Errorf("%w: oidc issuer %q: %w", ErrConfig, o.Name, err)
			}
		}
		v.issuers[o.Issuer] = is
	}
	return v, nil
}

// Verify checks ev for req and returns the identity it proves. It does not
// check single use: record Identity.UseKey in a [UseStore] before minting.
//
// Certificates (CertChain and Signature set): req must pass [Canonical]; the
// chain (leaf first, at most [MaxChainLength] certificates) must verify to
// the roots for client authentication (ExtKeyUsageClientAuth, which the leaf
// must list explicitly) both now and at req.Timestamp; the leaf must not be
// a CA, must allow digital signatures and must hold exactly one SPIFFE URI
// SAN (mtls.IdentityOf); Signature must be the leaf key's signature over
// Canonical(req) as [SignRequest] makes it; and now must be within MaxAge of
// req.Timestamp: Timestamp-MaxAge <= now < Timestamp+MaxAge.
//
// OIDC (OIDCToken set): req's audience, scopes and TTL must pass the checks
// of Canonical (its nonce and timestamp are not looked at: an ID token is a
// bearer credential, not bound to the request). The token must be a compact
// JWS of at most [MaxTokenSize] bytes in canonical base64url, whose header
// holds alg, kid and at most typ ("JWT" or "application/jwt"), x5t and
// x5t#S256, and whose claims are a strict JSON object (no member twice). Its
// iss must be exactly a configured issuer; alg one of that issuer's
// algorithms; kid a key of the issuer's JWKS (fetched lazily and cached for
// [JWKSRefreshInterval]; an unknown kid fetches again, at most once per
// [JWKSMinInterval] per issuer) of the type alg needs; the signature must
// verify; aud must be or contain the issuer's audience; exp and iat must be
// present, with now < exp+Leeway, iat <= now+Leeway, nbf (if present) <=
// now+Leeway, iat < exp and exp-iat <= MaxOIDCLifetime; the subject claim
// (and the client id claim, if configured) a non-empty printable string;
// jti, if present, a non-empty printable string.
//
// It fails with an error wrapping exactly one of [ErrInvalid],
// [ErrUntrusted], [ErrExpired] or [ErrUnavailable], as their documentation
// describes; errors name a token only by a short hash prefix.
func (v *Verifier) Verify(ctx context.Context, req Request, ev Evidence) (*Identity, error) {
	cert := len(ev.CertChain) > 0 || len(ev.Signature) > 0
	oidc := ev.OIDCToken != ""
	switch {
	case cert && oidc:
		return nil, fmt.Errorf("%w: evidence holds both a certificate proof and an OIDC token", ErrInvalid)
	case oidc:
		return v.verifyOIDC(ctx, req, ev.OIDCToken)
	case cert:
		return v.verifyCertificate(req, ev.CertChain, ev.Signature)
	}
	return nil, fmt.Errorf("%w: no evidence", ErrInvalid)
}
