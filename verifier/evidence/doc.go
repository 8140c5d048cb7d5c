// Package evidence verifies what a caller presents to mint a token, and
// says who the caller is.
//
// A frostmint coordinator receives a mint request and forwards it, with the
// caller's original evidence, to t signers. Each signer verifies the evidence
// itself and derives the token's sub and client_id from it: a compromised
// coordinator must not be able to mint in anybody else's name. This package
// is the one piece of code that the coordinator and every signer run for
// that, so they can never disagree on what evidence proves.
//
// # Evidence
//
// A caller proves its identity in one of two ways:
//
//   - An X.509-SVID: a certificate chain to a trusted root whose leaf holds
//     exactly one SPIFFE ID, and a signature by the leaf's key over the
//     [Canonical] encoding of the [Request] (audience, scopes, TTL, a random
//     nonce and a timestamp), made by [SignRequest]. Because the request is
//     signed, a coordinator cannot change what is asked for, and because the
//     timestamp is checked against a short window (Config.MaxAge), a proof
//     cannot be kept for later. The TLS handshake with the coordinator is not
//     evidence: signers never see it.
//   - An OIDC ID token (GitHub Actions, a Kubernetes service account, …),
//     checked against the keys that its issuer publishes. An ID token is a
//     bearer credential and is not bound to the request: whoever holds it,
//     a coordinator included, can choose what a mint with it asks for.
//     That is why ID tokens are accepted only with a short lifetime
//     (Config.MaxOIDCLifetime), why each mints at most one token, and why
//     policy should grant OIDC callers narrowly. Errors never hold a token,
//     only a short prefix of its hash.
//
// [Verifier.Verify] returns an [Identity]: the subject and client id of the
// token to mint, claims for policy, and a use key.
//
// # Single use
//
// A piece of evidence mints at most one token. Verify does not check that;
// the coordinator and each signer record Identity.UseKey in their
// [UseStore], bound to the token's jti, right before minting or signing. A
// retry of the same token (the coordinator trying another quorum) carries the
// same jti and passes; any other token is refused with [ErrReused]. Entries
// live until Identity.Expiry, after which Verify refuses the evidence anyway.
// When every two quorums share a signer (2t > n) this holds across the whole
// cluster even if the coordinator lies; otherwise the signers need a shared
// store.
//
// # Failing closed
//
// Every check must pass; anything unexpected is a refusal. Errors wrap one of
// a few sentinels ([ErrInvalid], [ErrUntrusted], [ErrExpired],
// [ErrUnavailable], [ErrReused], [ErrStoreFull], [ErrConfig]) for errors.Is.
// When an issuer's keys cannot be fetched, or were fetched more than
// [JWKSRefreshInterval] ago and cannot be fetched again, its tokens are
// refused with ErrUnavailable rather than checked against old keys. A full
// [MemoryUseStore] refuses new evidence rather than forget live entries.
//
// The JOSE work (compact JWS parsing, signature verification, JWK parsing)
// is github.com/go-jose/go-jose/v4's; this package adds strictness on top:
// canonical base64url only (so a token has one spelling), a header with
// nothing but alg, kid, typ, x5t and x5t#S256, no JSON member twice, keys
// used only for the algorithm their type fits.
//
// Package oidctest runs a real local OIDC issuer for tests, and package
// usestoretest is the conformance suite of UseStore implementations.
package evidence
