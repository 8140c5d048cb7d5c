// Package gateway is an authenticating reverse proxy: it checks frostmint
// access tokens in front of services that cannot check them themselves
// (code nobody may change, a vendor's binary, a service in another
// language), and forwards only the requests whose token passes.
//
// # Why a gateway
//
// Package middleware protects Go handlers in-process. A service that
// cannot link it would otherwise have to reimplement the verifier, and get
// some part of it wrong: accepting a replayed token, leaking why a token
// was refused, trusting an identity header a client made up. The gateway
// is the middleware's checks, in a process of their own, with the routing
// and header hygiene that putting them in front of another server needs.
// Every refusal is the middleware's ([middleware.WriteError]): the same
// status codes, challenges, JSON bodies and audit records.
//
// # What a request goes through
//
//  1. X-Request-Id: the client's value when it is sane (1 to 128
//     characters of A-Z a-z 0-9 . _ -), else a fresh random one; it is on
//     every response, the forwarded request, the log and the audit record.
//  2. Path hygiene: a path with an empty ("//"), "." or ".." segment, a
//     backslash, a ";" or a control character (after percent-decoding) is
//     refused with 400 bad_path. Servers disagree on such paths (some
//     collapse "//", resolve dot segments, read "\" as "/" or drop
//     ";params"), so routing on them could send a request to a lax route
//     that the upstream then serves as a strict one.
//  3. Routing: among the routes whose methods include the request's (an
//     empty list means any), the one with the longest path_prefix that
//     matches wins. Prefixes match whole segments: "/api" matches "/api"
//     and "/api/x" but not "/apix"; "/api/" matches "/api/x" only; "/"
//     matches everything. Matching is case-sensitive. No route: 404
//     {"error":"no_route",…}. There is no unauthenticated route: a path
//     that must be public does not belong behind the gateway.
//  4. Authentication with the route's audience, scopes, replay mode and
//     binding requirement ([middleware.Middleware.Authenticate]): 401
//     (missing, invalid, expired, replayed, wrongly bound token), 403
//     (insufficient scope), 413 (bound body too large), 503 (replay store
//     or audit log unavailable).
//  5. Forwarding: Authorization is removed, and so is every header whose
//     name starts with "X-Frostmint-" in any case (with "_" read as "-",
//     as CGI-style servers do), before the gateway adds its own:
//     X-Frostmint-Subject, X-Frostmint-Client-Id, X-Frostmint-Issuer,
//     X-Frostmint-Scope (the granted scopes, space-separated),
//     X-Frostmint-Token-Id, X-Frostmint-Expiry (Unix seconds) and
//     X-Request-Id. An upstream may trust those headers as long as only the
//     gateway can reach it. A token whose identity could not be sent
//     unchanged in a header (a control character in sub, say) is refused
//     with 403 identity_not_forwardable rather than mangled. X-Forwarded-For, -Host and -Proto are set by
//     the gateway (incoming ones are dropped; X-Forwarded-Proto is believed
//     only with trust_forwarded_proto). The Host header is the upstream's;
//     the client's is in X-Forwarded-Host. The path is forwarded as
//     received (percent-encoding kept), after the upstream URL's own path.
//  6. The upstream's answer is streamed back as it comes (bodies are never
//     buffered, except a body a token binds, up to max_binding_body),
//     trailers included. An upstream that cannot be reached gives 502
//     {"error":"bad_gateway",…}; the cause goes to the log only.
//
// # Protocols
//
// Without tls the gateway serves cleartext HTTP/1.1 and h2c (HTTP/2 with
// prior knowledge), so gRPC clients can use it with insecure credentials
// behind a TLS terminator; with tls it serves HTTP/1.1 and HTTP/2 over TLS.
// WebSocket and other HTTP/1.1 upgrades pass through once authenticated.
//
// An upstream is http://, https:// or h2c://. h2c:// means cleartext
// HTTP/2 with prior knowledge, which gRPC servers speak: the scheme is in
// the URL rather than in a separate route flag so that one string says
// everything about how to reach an upstream and the two cannot disagree.
// Upgrades (WebSocket) need an HTTP/1.1 upstream (http:// or https://).
//
// # Replay
//
// Routes are single_use by default: a token passes once, on any single-use
// route of any gateway sharing the replay store. A reusable route neither
// checks nor records use (a token may pass there until it expires, and
// once more on a single-use route), and so needs no replay store. With replay.redis every gateway
// process shares one Redis (package redisreplay), which should run with
// appendonly yes and appendfsync always, or a Redis restart forgets which
// tokens were used. Without it the store is in the process's memory, which
// is only correct for a SINGLE gateway process: behind several, each token
// could be used once per process. When Redis cannot answer, every request
// on a single-use route is refused (503) until it can; the gateway
// reconnects by itself.
//
// # Configuration
//
// One JSON object; durations are Go duration strings; unknown keys are an
// error, and [Config.Validate] reports every problem at once:
//
//	{
//	  "listen": "0.0.0.0:8443",
//	  "tls": {"cert": "gw.crt", "key": "gw.key"},
//	  "admin_listen": "127.0.0.1:9090",
//	  "issuers": [{"issuer": "https://frostmint.example", "jwks": "https://frostmint.example/.well-known/jwks.json"}],
//	  "audience": "https://api.example",
//	  "leeway": "30s",
//	  "replay": {"redis": {"addr": "redis:6379", "password_file": "/run/secrets/redis", "db": 0, "key_prefix": "frostmint:replay:"}},
//	  "audit_log": "/var/log/frostmint/gateway.audit",
//	  "upstream": "http://127.0.0.1:8080",
//	  "max_binding_body": 1048576,
//	  "trust_forwarded_proto": false,
//	  "shutdown_timeout": "10s",
//	  "routes": [
//	    {"name": "read", "path_prefix": "/api/", "methods": ["GET", "HEAD"], "scopes": ["read"]},
//	    {"name": "write", "path_prefix": "/api/", "methods": ["POST", "PUT", "DELETE"], "scopes": ["write"], "require_binding": true},
//	    {"name": "events", "path_prefix": "/events", "scopes": ["read"], "replay": "reusable"},
//	    {"name": "grpc", "path_prefix": "/payments.v1.Payments/", "methods": ["POST"], "upstream": "h2c://127.0.0.1:9000", "audience": "payments", "scopes": ["payments:write"]}
//	  ]
//	}
//
// issuers[].jwks is a URL (https, or http to a loopback host; refreshed in
// the background) or a file (read once); empty means OpenID discovery from
// the issuer. audit_log, when set, records every decision, allow and deny:
// the middleware's records (daemon "verifier", with the route's name) and,
// under the same daemon name, the gateway's own refusals (no_route,
// bad_path, identity_not_forwardable); a decision that cannot be recorded
// refuses the request with 503 audit_unavailable.
//
// # Operations
//
// admin_listen serves GET /healthz (200 while the process serves) and GET
// /readyz (200 when every issuer's keys are loaded and the replay store
// answers; 503 with the problems otherwise, and from the moment the
// gateway starts stopping). [Gateway.Run] stops when its context ends:
// readiness turns false, the listeners close, requests in flight and
// upgraded connections get shutdown_timeout to finish, and are cut after.
//
// admin_listen also serves GET /metrics, the gateway's Prometheus metrics
// (on a registry of its own; see [WithRegistry]):
//
//	frostmint_verifier_decisions_total{code,route}    every request: code "ok" (forwarded) or the rejection's code;
//	                                                  route "none" for a request that matched no route
//	frostmint_replay_cache_entries                    entries of the in-memory replay cache (absent with Redis)
//	frostmint_gateway_upstream_seconds{route,status}  time to the upstream's response headers; status "2xx"…"5xx" or "error"
//
// with the Go runtime (go_*) and process (process_*) metrics.
//
// [Main] is the command line (frostmint gateway, services/gateway):
// --config FILE, or a single route from flags alone. It logs JSON lines to
// standard error, or text with --log-format text.
package gateway
