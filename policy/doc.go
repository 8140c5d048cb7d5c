// Package policy decides whether a caller may mint a token, by evaluating a
// Rego policy (Open Policy Agent) over the caller's identity and its request.
//
// # Why Rego, and why here
//
// Who may mint which scopes for which audience changes far more often than
// the signing code, and it is read by people who are not Go programmers. A
// small declarative policy with its own unit tests keeps those rules in one
// reviewable place, and one bundle hash (Engine.Hash) names exactly which
// rules were in force.
//
// # Where policy runs
//
// The coordinator evaluates policy first. It has the authenticated caller
// in hand, so it can answer fast and clearly: a denied caller gets its
// reasons at once, without any signer round trip or signing work, and an
// allowed one learns the lifetime limit (Decision.MaxTTL) and whether a
// human must approve.
//
// The coordinator alone must not be the authority, though: a compromised
// coordinator could simply skip the check. So every signer evaluates the
// same policy over the same request before it contributes a signature
// share, and refuses to sign what its own evaluation denies. A token exists
// only if a threshold of signers agreed with the policy; the coordinator's
// evaluation is only the fast path. For that to work the evaluation must be
// a pure function of the Input and the bundle's data: network and random
// built-ins are unavailable to policies, and the Rego clock (time.now_ns)
// reads Input.Time instead of the machine's clock. A signer compares its
// Hash with the coordinator's and refuses on a mismatch, so the two never
// silently judge by different rules.
//
// # Callers
//
// A Caller is either a workload with an mTLS client certificate (Kind
// "x509-svid", Subject its SPIFFE ID) or the bearer of a verified OIDC ID
// token (Kind "oidc", Issuer the short name of the trusted issuer such as
// "github" or "k8s", Subject "<issuer>:<sub claim>", Claims every claim of
// the token). Policy decides on the claims (a GitHub repository and ref, a
// Kubernetes namespace and service account) rather than on the subject
// string, whose layout the token issuer may let users change. The default
// bundle denies kinds and issuers it has no rules for.
//
// # Failing closed
//
// The policy exposes data.frostmint.mint.decision. Evaluate returns an
// allowing Decision only when that document is a well-formed
// object with allow set to true. A policy that does not compile makes New
// fail (ErrCompile); an evaluation error, an undefined decision, a missing
// key or a wrongly typed value makes Evaluate fail (ErrEvaluation). Built-in
// errors (for example startswith on a number) are evaluation errors too,
// not silently undefined.
//
// # The default bundle
//
// The package embeds a default bundle (bundle/mint.rego with its data in
// bundle/data.json and unit tests in bundle/mint_test.rego). Who may mint
// what is data: trust domains and grants for certificate callers, GitHub
// repositories (with their branches, environments and scopes) and
// Kubernetes service accounts for OIDC callers, lifetime limits by scope
// prefix. Operators edit data.json, not Rego. See bundle/mint.rego for the
// rules and the exact input and decision shapes.
//
// # Policy from disk, signed
//
// WithFiles replaces the embedded bundle with policy files from disk;
// WithBundle with an OPA bundle directory, optionally signed. A signer's
// key share is worth less than the policy that tells it when to use it: if
// whoever can write the policy directory on a signer's machine could also
// widen the policy, the threshold would protect little. With a
// BundleVerification every daemon accepts only a bundle signed (SignBundle,
// or `opa sign`) by the policy key, which need not live on any of them, and
// refuses anything else with ErrSignature. Signatures are checked by OPA's
// bundle package, so bundles stay usable with OPA's own tools. Signing does
// not change Hash: it names the policy, not who vouched for it.
//
// # Hot reload
//
// A Reloader polls the policy's files and swaps in a new Engine when their
// content changes, only after the new policy passed every check New makes
// (compilation, signature, sample requests); a broken update leaves the
// last good policy in force and is reported by LastError. Requests already
// evaluating keep the Engine they started with.
package policy
