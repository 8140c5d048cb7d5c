// Package verifier checks frostmint access tokens for a resource server.
//
// A frostmint token is an ordinary EdDSA (Ed25519) JWT of the profile that
// package token defines; that the signature was made by a threshold of
// signers with FROST is invisible here. What this package adds to the
// profile is everything that needs a trust decision, a clock or the request
// at hand: which issuers and keys are trusted (see package jwks), whether
// the token is within its lifetime, whether it is for this audience and
// carries the scopes a request needs, whether it is bound to this very
// request (see package binding), and whether it was seen before.
//
// [Verifier.Check] checks a token against the [Config] and the
// [Requirements] of one request (its route's audience and scopes, whether
// the token may be reused, how to check a request binding);
// [Verifier.Verify] is Check with scopes only.
//
// Both fail closed: every check must pass, any doubt (an unknown key, a
// replay store that cannot answer, a request binding nobody checks) is a
// refusal, and every refusal is an [*Error] with a stable [Code] that
// callers map to an HTTP status ([Code.HTTPStatus]), a gRPC code
// ([Code.GRPCCode]) or a metric without matching strings. The checks run in
// an order chosen so that nothing the token says is trusted before its
// signature is:
//
//  1. the token's structure, header and claims are checked (malformed,
//     bad_header, missing_claim, ttl_exceeds_cap);
//  2. its issuer and key are located (untrusted_issuer, unknown_key);
//  3. the signature is verified (bad_signature);
//  4. only then are the times (expired, issued_in_future, not_yet_valid,
//     ttl_exceeds_cap), the audience (wrong_audience) and the scopes
//     (insufficient_scope) looked at;
//  5. then the request binding: a token bound to a request (claim req) is
//     accepted only for that request, and a route may require bound tokens
//     (binding_required, binding_mismatch, body_too_large);
//  6. the replay cache comes last (replayed, replay_store_unavailable), so
//     that tokens that fail any other check never take room in it.
//
// Because frostmint tokens are short-lived bearer tokens meant for one use,
// a Verifier refuses a token it has already accepted once (code
// [CodeReplayed]), unless the route says the token is [Reusable]. With
// several verifier processes, share the replay store between them (a
// [ReplayCache] backed by Redis, say) or a token can be replayed once per
// process.
package verifier
