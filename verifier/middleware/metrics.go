package middleware

// Metrics is told every decision of a [Middleware], to count them: set
// [Options.Metrics]. It is a small interface so that the middleware does
// not bring a metrics library to programs that need none; package
// github.com/frostmint/frostmint/verifier/middleware/prommetrics
// implements it for Prometheus (frostmint_verifier_decisions_total).
//
// Decision must be safe for concurrent use, fast, and must not block: it
// runs on every request, after the decision has been audited and before
// the handler runs or the rejection is written.
type Metrics interface {
	// Decision reports one request's decision: route is the route's name
	// (as in the audit record: [Route.Name], else the ServeMux pattern or
	// the gRPC method), and code is CodeOK for a request let through, else
	// the stable code of the rejection ("expired", "replayed",
	// "missing_token", "audit_unavailable", …). Both come from a bounded
	// set: neither carries anything of the token or the caller.
	Decision(route, code string)
}

// CodeOK is the code [Metrics] are given for a request let through.
const CodeOK = "ok"

// observe tells m.metrics of the decision err (nil: allowed) on route.
func (m *Middleware) observe(route string, err error) {
	if m.metrics == nil {
		return
	}
	code := CodeOK
	if err != nil {
		code = codeOf(err)
	}
	m.metrics.Decision(route, code)
}
