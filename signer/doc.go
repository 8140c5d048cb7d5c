// Package signer is the signer daemon: it holds one FROST key share, unsealed
// into memory only, and answers the coordinator's two rounds over mutually
// authenticated TLS 1.3.
//
// A signer trusts no one with its share. It accepts only clients whose
// certificate chains to the cluster CA and names an allowed coordinator;
// it generates every nonce itself, keeps nonces in memory only, lets each
// sign once and expires the unused ones; and before it signs it checks the
// message itself: it must be the signing input of a token of our profile
// (see package token), for our issuer and group key, issued now, living no
// longer than the hard cap. A coordinator that is taken over therefore
// cannot make this signer sign a long-lived token or anything that is not a
// token.
//
// # Observability
//
// With metrics_listen set, a signer serves GET /metrics ([Metrics]: signs by
// outcome and reason, Sign latency, outstanding nonces, key epochs loaded,
// the policy hash), GET /healthz and GET /readyz (200 only when its policy
// is loaded, it holds a key epoch and its audit log is writable: see
// [Server.Ready]) over plain HTTP. With a "tracing" section (or
// [WithTracerProvider]) each Sign is a span, signer.Sign with a
// signer.judge child, continuing the coordinator's trace from the W3C
// trace context of the call.
package signer
