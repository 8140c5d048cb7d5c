// Package keysource keeps a verifier's copy of an issuer's public keys
// fresh, without letting anyone make it hammer the issuer.
//
// A [verifier.Verifier] looks keys up by kid through a [jwks.KeySet]. A
// fixed set ([jwks.Static], [jwks.Load]) is fine until the issuer rotates its
// key; then every token of the new key is refused until the verifier is
// restarted. A [Source] is a KeySet that refetches the issuer's JWKS:
//
//   - in the background, every [Config.Refresh] (5 minutes by default), from
//     [Source.Run];
//   - on demand, when a token names a kid the source does not know, at most
//     once per [Config.MinInterval] (30 seconds by default). Lookups of
//     unknown kids within that interval fail at once, without I/O, and
//     concurrent lookups share one fetch: a stream of tokens with garbage
//     kids costs the issuer at most one fetch per interval and per verifier.
//
// A known kid is answered from an immutable map behind an atomic pointer: no
// lock, no I/O and no allocation.
//
// # Discovery
//
// By default the JWKS is found the way OpenID Connect Discovery 1.0 finds
// it: GET <issuer>/.well-known/openid-configuration, which must be 200 OK,
// at most [MaxDiscoverySize] bytes, one JSON object with no duplicate member,
// whose "issuer" is exactly [Config.Issuer] (byte for byte: no trailing
// slash is added or removed, as §4.3 requires) and whose "jwks_uri" is an
// https URL (see below); then GET jwks_uri, parsed strictly by [jwks.Parse].
// Discovery is redone on every refresh rather than cached: it costs one
// small GET per refresh, it follows the issuer if it moves its JWKS, and the
// issuer's claim to the keys is checked each time keys are replaced.
// [Config.JWKSURL] skips discovery; [Config.File] reads a JWKS file once and
// never refreshes, for offline use.
//
// Keys are only ever fetched over https, or over plain http from a loopback
// host (localhost, 127.0.0.0/8, ::1) for tests and local sidecars: keys
// fetched in the clear could be replaced by anyone on the path. A fetch that
// starts on https must end on https, through redirects and through
// discovery: an https issuer cannot point at an http jwks_uri, even on
// loopback.
//
// # Failures
//
// The source fails closed, and favours availability only where that cannot
// let a forged token through:
//
//   - Until one fetch has succeeded, every lookup fails with
//     [ErrUnavailable]. [New] does not fail when the issuer is unreachable
//     (it may come up later); [Source.Ready] and [Source.LastError] are
//     there for readiness probes.
//   - A failed refresh keeps the last good keys, for as long as refreshes
//     keep failing; [Source.Run] retries with backoff, from MinInterval up
//     to Refresh. An issuer being down must not take its API owners down
//     with it, and a key rotation only adds a kid: tokens of the old key
//     stay valid until they expire anyway (within token.MaxTTL). The
//     consequence is that removing a key from the JWKS (a compromised key,
//     say) takes effect at the next successful refresh, within Refresh; a
//     verifier cut off from its issuer keeps trusting the keys it last saw,
//     and LastError says so.
//   - A successful refresh replaces the whole set: kids the issuer no longer
//     publishes are forgotten at once.
//
// An issuer should publish a new key at least Refresh before it signs with
// it; the on-demand fetch only shortens the window in which a token of a
// brand new key is refused.
package keysource
