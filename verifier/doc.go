// Package verifier checks frostmint access tokens for a resource server.
//
// A frostmint token is an ordinary EdDSA (Ed25519) JWT of the profile that
// package token defines; that the signature was made by a threshold of
// signers with FROST is invisible here. What this package adds to the
// profile is everything that needs a trust decision or a clock: which
// issuers and keys are trusted (see package jwks), whether the token is
// within its lifetime, whether it is for this audience and carries the
// scopes a request needs, and whether it was seen before.
//
// [Verifier.Verify] fails closed: every check must pass, any doubt (an
// unknown key, a replay store that cannot answer) is a refusal, and every
// refusal is an [*Error] with a stable [Code] that callers can map to an
// HTTP status or a metric without matching strings. The checks run in an
// order chosen so that nothing the token says is trusted before its
// signature is: the token's structure and header are checked, its issuer
// and key are located, the signature is verified, and only then are the
// times, audience and scopes looked at. The replay cache comes last, so
// that tokens that fail any other check never take room in it.
//
// Because frostmint tokens are short-lived bearer tokens meant for one use,
// a Verifier refuses a token it has already accepted once (code
// [CodeReplayed]). With several verifier processes, share the replay store
// between them (a [ReplayCache] backed by Redis, say) or a token can be
// replayed once per process.
package verifier
