// Package coordinator is the Mint API server. For each request it
// authenticates the caller by its mTLS client certificate (the certificate's
// SPIFFE ID becomes sub and client_id), asks policy, builds the token, and
// collects t signature shares from the signers over mutually authenticated
// TLS 1.3, then aggregates them into one Ed25519 signature that it checks
// before answering.
//
// Round one of FROST is done ahead of time: a [pool] per signer keeps
// commitments fetched in batches, so a mint is one round trip to t signers
// in parallel. A signer that fails, is slow, restarted (its commitments are
// gone) or returns a bad share is left out and the mint is retried with
// another quorum; with fewer than t signers reachable the mint fails fast
// with an error that names what is missing.
//
// The coordinator holds no secret: it cannot sign alone, and every signer
// checks what it signs.
package coordinator
