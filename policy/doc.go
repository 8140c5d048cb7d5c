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
// (the SPIFFE ID from its mTLS client certificate) in hand, so it can answer
// fast and clearly: a denied caller gets its reasons at once, without any
// signer round trip or signing work, and an allowed one learns the lifetime
// limit (Decision.MaxTTL) and whether a human must approve.
//
// The coordinator alone must not be the authority, though: a compromised
// coordinator could simply skip the check. Later every signer will evaluate
// the same policy over the same request before it contributes a signature
// share, and refuse to sign what its own evaluation denies. Then a token
// exists only if a threshold of signers agreed with the policy, and the
// coordinator's evaluation is only the fast path. For that to work the
// evaluation must be a pure function of the Input and the bundle's data:
// network and random built-ins are unavailable to policies, and the Rego
// clock (time.now_ns) reads Input.Time instead of the machine's clock. The
// coordinator and signers compare Engine.Hash to know they run the same
// bundle.
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
// bundle/data.json and unit tests in bundle/mint_test.rego). WithFiles
// replaces it with policy files from disk. See bundle/mint.rego for the
// rules and the exact input and decision shapes.
package policy
