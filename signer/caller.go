package signer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/frostmint/frostmint/policy"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/evidence"
)

// Callers configures which caller evidence is trusted. The coordinator and
// every signer carry the same section, and each verifies evidence itself.
type Callers struct {
	// TrustBundle is a PEM file of the CAs that caller certificates chain
	// to; empty means no certificate callers.
	TrustBundle string `json:"trust_bundle,omitempty"`
	// OIDC lists the trusted OIDC issuers.
	OIDC []evidence.OIDCIssuer `json:"oidc,omitempty"`
	// MaxAge is how far a certificate proof's timestamp may be from now
	// (default 2m).
	MaxAge Duration `json:"max_age,omitempty"`
}

// Validate reports every problem at once.
func (c Callers) Validate() error {
	var errs []error
	if c.TrustBundle == "" && len(c.OIDC) == 0 {
		errs = append(errs, errors.New("callers: a trust_bundle or at least one oidc issuer is required"))
	}
	if c.MaxAge < 0 || time.Duration(c.MaxAge) > 10*time.Minute {
		errs = append(errs, errors.New("callers.max_age must be in [0, 10m]"))
	}
	return errors.Join(errs...)
}

// Verifier builds the evidence verifier of this configuration.
func (c Callers) Verifier(ctx context.Context, now func() time.Time) (*evidence.Verifier, error) {
	// A nil HTTPClient gets the evidence package's default, which refuses
	// redirects to plain http.
	cfg := evidence.Config{OIDC: c.OIDC, MaxAge: time.Duration(c.MaxAge), Now: now}
	if c.TrustBundle != "" {
		pem, err := os.ReadFile(c.TrustBundle)
		if err != nil {
			return nil, fmt.Errorf("callers: %w", err)
		}
		cfg.Roots = x509.NewCertPool()
		if !cfg.Roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("callers: no certificate in %s", c.TrustBundle)
		}
	}
	return evidence.New(ctx, cfg)
}

// CallerEvidence takes a caller's MintRequest apart into the request the
// caller made and its evidence, as [evidence.Verifier.Verify] wants them.
func CallerEvidence(r *mintv1.MintRequest) (evidence.Request, evidence.Evidence, error) {
	if r == nil {
		return evidence.Request{}, evidence.Evidence{}, fmt.Errorf("%w: no caller request", evidence.ErrInvalid)
	}
	req := evidence.Request{Audience: r.GetAudience(), Scopes: r.GetScopes(), Nonce: r.GetNonce()}
	if r.GetTtl() != nil {
		if err := r.GetTtl().CheckValid(); err != nil {
			return req, evidence.Evidence{}, fmt.Errorf("%w: ttl: %w", evidence.ErrInvalid, err)
		}
		d := r.GetTtl().AsDuration()
		if d <= 0 || d%time.Second != 0 {
			return req, evidence.Evidence{}, fmt.Errorf("%w: ttl must be a positive whole number of seconds", evidence.ErrInvalid)
		}
		req.TTLSeconds = int64(d / time.Second)
	}
	if r.GetRequestedAt() != nil {
		if err := r.GetRequestedAt().CheckValid(); err != nil {
			return req, evidence.Evidence{}, fmt.Errorf("%w: requested_at: %w", evidence.ErrInvalid, err)
		}
		req.Timestamp = r.GetRequestedAt().AsTime()
	}
	if b := r.GetBinding(); b != nil {
		req.Binding = &binding.Binding{Method: b.GetMethod(), Authority: b.GetAuthority(), Path: b.GetPath(), BodySHA256: b.GetBodySha256()}
		if err := req.Binding.Validate(); err != nil {
			return req, evidence.Evidence{}, fmt.Errorf("%w: binding: %w", evidence.ErrInvalid, err)
		}
	}
	var ev evidence.Evidence
	switch e := r.GetEvidence().(type) {
	case *mintv1.MintRequest_Certificate:
		ev.CertChain, ev.Signature = e.Certificate.GetChain(), e.Certificate.GetSignature()
	case *mintv1.MintRequest_OidcToken:
		ev.OIDCToken = e.OidcToken
	default:
		return req, ev, fmt.Errorf("%w: the request carries no evidence (a certificate proof or an OIDC token)", evidence.ErrInvalid)
	}
	return req, ev, nil
}

// PolicyInput is the policy input for a caller proven by id asking for req;
// ttl is the lifetime being judged.
func PolicyInput(id *evidence.Identity, req evidence.Request, ttl time.Duration, now time.Time, signerID int) policy.Input {
	return policy.Input{
		Caller: policy.Caller{Subject: id.Subject, ClientID: id.ClientID, Kind: string(id.Kind),
			Issuer: id.Issuer, Claims: id.Claims},
		Request:  policy.Request{Audience: req.Audience, Scopes: req.Scopes, TTL: ttl, Binding: req.Binding},
		Time:     now,
		SignerID: signerID,
	}
}
