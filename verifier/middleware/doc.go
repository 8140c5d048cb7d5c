// Package middleware protects HTTP handlers and gRPC services with
// frostmint access tokens.
//
// A [verifier.Verifier] answers one question: is this token good for this
// audience, these scopes, this request? Every API owner then writes the
// same fifty lines around it (find the token, pick the status code, word
// the challenge, keep internal detail out of the response, record the
// decision, put the caller where the handler can find it), and each is
// easy to get subtly wrong: a token taken from a query string ends up in
// access logs, a 500 leaks a replay store's address, a decision is acted
// upon before it is audited. This package is those lines, written once and
// tested against real signed tokens.
//
// # Protecting a handler
//
//	mw, err := middleware.New(middleware.Options{Verifier: v})
//	if err != nil { … }
//	mux.Handle("POST /payments", mw.Require(middleware.Route{Scopes: []string{"payments:write"}})(payments))
//
// Require returns a func(http.Handler) http.Handler, so it fits net/http's
// ServeMux and routers such as chi alike (with chi, r.With(mw.Require(rt))
// or a Group's Use, where the route pattern, the default route name, is
// known). A request reaches the
// handler only when its token passes every check of [verifier.Verifier.Check]
// for the [Route], and the decision has been recorded when an [Auditor] is
// configured; the handler then finds the caller with [FromContext].
//
// # What a client sees
//
// The token is taken only from one "Authorization: Bearer <token>" header
// (the scheme is case-insensitive). Query strings, form fields and cookies
// are never looked at: tokens there leak into logs and browser history.
// Every response carries X-Request-Id. A rejection is, by code:
//
//	missing_token                  401  WWW-Authenticate: Bearer realm="frostmint"
//	insufficient_scope             403  WWW-Authenticate: Bearer realm="frostmint", error="insufficient_scope", scope="<route scopes>"
//	replay_store_unavailable       503  Retry-After: 1
//	audit_unavailable              503
//	body_too_large                 413
//	any other code (expired, …)    401  WWW-Authenticate: Bearer realm="frostmint", error="invalid_token", error_description="<code>"
//
// with Content-Type: application/json, Cache-Control: no-store and the body
//
//	{"error":"<code>","message":"<fixed message for the code>","request_id":"<id>"}
//
// The message depends on the code only: the verifier's reason, which may
// quote the token's claims, goes to the log (under the request id) and the audit
// log, never to the client. [WriteError] writes exactly this, so a gateway
// that calls [Middleware.Authenticate] itself answers identically.
//
// # Failing closed
//
// Any doubt is a refusal: a replay store that cannot answer (503), an audit
// log that cannot be written (503, and the handler is not called), a gRPC
// method for which the rules return no route (Unauthenticated), a
// request-bound token on gRPC, where binding is not defined
// (binding_mismatch), an error the middleware does not know (500). A route
// whose scopes are not RFC 6749 scope-tokens could never be satisfied:
// Require panics on it at setup, as http.ServeMux does on a bad pattern.
//
// # Request binding
//
// A token whose claim "req" binds it to one HTTP request (package binding)
// is accepted only for that request: method, authority (with the scheme of
// [Options.Scheme] for the default port), path and, when bound, the SHA-256
// of the body, which is read up to [Options.MaxBindingBody] and restored for
// the handler. A route with RequireBinding accepts bound tokens only.
//
// # gRPC
//
// [Middleware.UnaryServerInterceptor] and [Middleware.StreamServerInterceptor]
// apply the same checks to gRPC calls, with the token in the
// "authorization" metadata and the route chosen per method by [MethodRules].
// They answer Unauthenticated, PermissionDenied or Unavailable with a fixed
// message "<code>: <message>", and set the "x-request-id" header metadata.
//
// # Metrics
//
// [Options.Metrics] is told every decision: the route and "ok" or the
// rejection's code (see [Metrics]). The interface is one method, so the
// middleware brings no metrics library along; package
// verifier/middleware/prommetrics implements it for Prometheus
// (frostmint_verifier_decisions_total{code,route}) and also exposes an
// in-memory replay cache's size (frostmint_replay_cache_entries).
package middleware
