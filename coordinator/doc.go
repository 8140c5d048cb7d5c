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
// with an error that names what is missing. A signer that has not answered
// within hedge_after is not waited for: another quorum without it is asked
// at once, with commitments of its own, and the first complete set of
// shares makes the token (hedging; see [Config.HedgeAfter]).
//
// The coordinator holds no secret: it cannot sign alone, and every signer
// checks what it signs.
//
// # Observability
//
// Next to the JWKS on http_listen, GET /metrics serves the coordinator's
// Prometheus metrics ([Metrics]: mints by outcome and reason, each stage's
// latency, per-signer health, pool depth and Sign latency, retries,
// cheaters, approvals, the active kid) and GET /readyz answers 200 only
// when there is an active key and at least t signers are healthy with
// pooled commitments ([Server.Ready]). With a "tracing" section in the
// config (or [WithTracerProvider]) each mint is traced — coordinator.Mint
// with a child span per stage (authenticate, policy, approval, fanout,
// sign_share per signer, aggregate, audit) — and the W3C trace context
// goes to the signers in the gRPC metadata, so their spans join the same
// trace. Spans carry request ids, signer ids, codes and the kid, never a
// token or evidence.
package coordinator
