package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/frostmint/frostmint/verifier/binding"
)

// DecisionQuery is the document every policy must define.
const DecisionQuery = "data.frostmint.mint.decision"

var (
	// ErrLoad reports policy files that could not be found, read or
	// understood as modules and data.
	ErrLoad = errors.New("policy: load failed")
	// ErrCompile reports a policy that does not parse or compile.
	ErrCompile = errors.New("policy: compile failed")
	// ErrEvaluation reports an evaluation that produced no well-formed
	// decision. It is never accompanied by an allowing Decision.
	ErrEvaluation = errors.New("policy: evaluation failed")
	// ErrTestsFailed reports Rego unit tests that failed or errored.
	ErrTestsFailed = errors.New("policy: rego tests failed")
)

// defaultBundle holds the default policy, its data and its unit tests.
//
//go:embed bundle
var defaultBundle embed.FS

// DefaultBundle returns the embedded default bundle: mint.rego, data.json
// and the Rego unit tests, at the root of the returned file system.
func DefaultBundle() fs.FS {
	sub, err := fs.Sub(defaultBundle, "bundle")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Input is what policy sees for one mint request.
type Input struct {
	Caller   Caller    `json:"caller"`
	Request  Request   `json:"request"`
	Time     time.Time `json:"-"`         // rendered into input as "time" (RFC 3339) and "time_unix"
	SignerID int       `json:"signer_id"` // 0 at the coordinator
}

// Caller is the authenticated identity asking to mint.
type Caller struct {
	// Subject is the caller's identity: a SPIFFE ID for "x509-svid"
	// callers (spiffe://dev.frostmint.local/ci/deployer), "<issuer>:<sub
	// claim>" for "oidc" callers (github:repo:octo/app:ref:refs/heads/main).
	Subject  string `json:"subject"`
	ClientID string `json:"client_id"`
	// Kind is how the caller authenticated: "x509-svid" (mTLS client
	// certificate) or "oidc" (an ID token).
	Kind string `json:"kind"`
	// Issuer names the trusted OIDC issuer that vouched for an "oidc"
	// caller, by its short configured name ("github", "k8s"). Empty for
	// certificate callers, and then absent from the input.
	Issuer string `json:"issuer,omitempty"`
	// Claims are extra facts about the caller: for "oidc" callers every
	// claim of the verified ID token.
	Claims map[string]any `json:"claims,omitempty"`
}

// Request is what the caller asks for.
type Request struct {
	Audience string        `json:"audience"`
	Scopes   []string      `json:"scopes"`
	TTL      time.Duration `json:"-"` // rendered as "ttl_seconds"
	// Binding is the request the token is bound to, if any; rendered as
	// "binding": {"method", "authority", "path", "body_bound"}.
	Binding *binding.Binding `json:"-"`
}

// Decision is the policy's answer for one Input.
type Decision struct {
	Allow            bool
	Reasons          []string      // why denied (or notes when allowed); never nil-vs-empty significant
	MaxTTL           time.Duration // 0 means "no policy limit" (the hard cap of 15m still applies elsewhere)
	RequiresApproval bool
}

// Option configures New.
type Option func(*options)

type options struct {
	paths    []string
	useFiles bool
	bundles  []bundleOption
	now      func() time.Time
	memo     bool
}

// WithFiles loads the policy from disk instead of the embedded bundle. Each
// path is a .rego module, a .json data document (mounted at the root of
// data), or a directory that is walked for .rego modules and data.json
// documents (a data.json in subdirectory a/b is mounted at data.a.b, as in
// an OPA bundle; files and directories whose names start with "." are
// skipped). Files named *_test.rego are ignored for evaluation. Use
// several WithFiles, or several paths, to combine e.g. the default
// mint.rego with a site-specific data.json.
func WithFiles(paths ...string) Option {
	return func(o *options) {
		o.useFiles = true
		o.paths = append(o.paths, paths...)
	}
}

// WithoutMemo makes the Engine evaluate the policy for every decision,
// even when it could remember them (see Engine.Memoized): for measuring
// the policy's cost.
func WithoutMemo() Option {
	return func(o *options) { o.memo = false }
}

// WithClock sets the clock used for an Input whose Time is zero. The
// default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Engine evaluates one loaded, compiled policy. It is safe for concurrent
// use.
type Engine struct {
	query rego.PreparedEvalQuery
	// admission is AdmissionQuery, nil when the policy does not define it.
	admission *rego.PreparedEvalQuery
	hash      string
	now       func() time.Time
	// memo remembers decisions when the policy never reads the time (see
	// memo.go); nil otherwise, and noMemo says why.
	memo   *memo
	noMemo string
}

// New loads and compiles the policy (the embedded default bundle unless
// WithFiles or WithBundle is given), prepares the decision query and checks
// the policy against sample inputs. Errors wrap ErrLoad, ErrCompile,
// ErrEvaluation or (WithBundle) ErrSignature.
func New(ctx context.Context, opts ...Option) (*Engine, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}

	var src *sources
	switch {
	case len(o.bundles) == 1:
		if src, err = loadBundle(o.bundles[0].dir, o.bundles[0].verify); err != nil {
			return nil, err
		}
	case o.useFiles:
		if src, err = loadPaths(o.paths); err != nil {
			return nil, err
		}
	default:
		src = &sources{}
		if err := loadFS(DefaultBundle(), "bundle", false, src); err != nil {
			return nil, fmt.Errorf("%w: embedded bundle: %w", ErrLoad, err)
		}
	}
	modules, data, err := src.parse()
	if err != nil {
		return nil, err
	}

	store := inmem.NewFromObject(data)
	regoOpts := []func(*rego.Rego){
		rego.Query(DecisionQuery),
		rego.Store(store),
		rego.Capabilities(capabilities()),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range modules {
		regoOpts = append(regoOpts, rego.ParsedModule(m))
	}
	var compiler *ast.Compiler
	regoOpts = append(regoOpts, rego.CompilerHook(func(c *ast.Compiler) { compiler = c }))
	query, err := rego.New(regoOpts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}

	admission, err := prepareAdmission(ctx, compiler, []func(*rego.Rego){
		rego.Compiler(compiler), rego.Store(store), rego.Capabilities(capabilities()),
		rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true),
	})
	if err != nil {
		return nil, err
	}
	e := &Engine{query: query, admission: admission, hash: src.hash(), now: o.now}
	switch ok, why := timeless(compiler.Modules); {
	case !o.memo:
		e.noMemo = "memo turned off"
	case ok:
		e.memo = &memo{}
	default:
		e.noMemo = why
	}
	if err := e.selfCheck(ctx, o.embedded()); err != nil {
		return nil, err
	}
	return e, nil
}

// newOptions applies opts and checks the combination.
func newOptions(opts []Option) (*options, error) {
	o := &options{now: time.Now, memo: true}
	for _, opt := range opts {
		opt(o)
	}
	if o.now == nil {
		return nil, fmt.Errorf("%w: WithClock(nil)", ErrLoad)
	}
	if len(o.bundles) > 1 {
		return nil, fmt.Errorf("%w: more than one WithBundle", ErrLoad)
	}
	if len(o.bundles) > 0 && o.useFiles {
		return nil, fmt.Errorf("%w: WithBundle and WithFiles cannot be combined", ErrLoad)
	}
	return o, nil
}

// embedded reports whether the embedded default bundle is used.
func (o *options) embedded() bool { return !o.useFiles && len(o.bundles) == 0 }

// capabilities are this OPA version's, less the non-deterministic built-ins
// (http.send, rand.intn, uuid.rfc4122, opa.runtime, net.lookup_ip_addr,
// io.jwt.encode_sign...): every signer must reach the same decision from the
// same input. time.now_ns stays; Evaluate pins it to Input.Time.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0]
	for _, b := range c.Builtins {
		if b.Nondeterministic && b.Name != ast.NowNanos.Name {
			continue
		}
		kept = append(kept, b)
	}
	c.Builtins = kept
	return c
}

// sampleAllowed is a request the default bundle must allow: the demo.
func sampleAllowed() Input {
	return Input{
		Caller: Caller{
			Subject:  "spiffe://dev.frostmint.local/dev/cli",
			ClientID: "frostmint-dev-cli",
			Kind:     "x509-svid",
		},
		Request: Request{
			Audience: "https://api.example.com",
			Scopes:   []string{"read", "write"},
			TTL:      5 * time.Minute,
		},
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// sampleDenied is a request the default bundle must deny: an untrusted
// trust domain.
func sampleDenied() Input {
	in := sampleAllowed()
	in.Caller.Subject = "spiffe://untrusted.example/dev/cli"
	return in
}

// selfCheck evaluates the sample inputs. Every policy must produce a
// well-formed decision; the default bundle must also decide them correctly.
func (e *Engine) selfCheck(ctx context.Context, isDefault bool) error {
	allowed, err := e.Evaluate(ctx, sampleAllowed())
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	if !isDefault {
		return nil
	}
	if !allowed.Allow {
		return fmt.Errorf("%w: self-check: default bundle denies the dev caller: %q", ErrEvaluation, allowed.Reasons)
	}
	denied, err := e.Evaluate(ctx, sampleDenied())
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	if denied.Allow || len(denied.Reasons) == 0 {
		return fmt.Errorf("%w: self-check: default bundle allows an untrusted caller", ErrEvaluation)
	}
	return nil
}

// Hash identifies the loaded policy: the hex SHA-256 over the evaluated
// module sources and data documents, sorted by their path relative to the
// directory they were loaded from (test modules excluded; .manifest and
// .signatures.json are not policy content). The embedded bundle, WithFiles
// on a copy of its directory and WithBundle on a signed copy all hash the
// same.
func (e *Engine) Hash() string { return e.hash }

// Memoized reports whether the Engine remembers its decisions by the
// input without the time, which it does when the policy provably never
// reads the time (see memo.go), and otherwise why not.
func (e *Engine) Memoized() (bool, string) { return e.memo != nil, e.noMemo }

// Evaluate decides one request. Any failure to produce a well-formed
// decision is an error wrapping ErrEvaluation, and the Decision returned
// with an error never allows. A memoized Engine returns the decision it
// made for the same input (but the time) before, if it remembers one;
// failures are never remembered.
func (e *Engine) Evaluate(ctx context.Context, in Input) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	if in.Time.IsZero() {
		in.Time = e.now()
	}
	key := ""
	if e.memo != nil {
		if k, ok := memoKey(in); ok {
			if d, ok := e.memo.get(k); ok {
				return d, nil
			}
			key = k
		}
	}
	d, err := e.evaluate(ctx, in)
	if err == nil && key != "" {
		e.memo.put(key, d)
	}
	return d, err
}

// evaluate runs the policy on in.
func (e *Engine) evaluate(ctx context.Context, in Input) (Decision, error) {
	input, err := in.value()
	if err != nil {
		return Decision{}, fmt.Errorf("%w: input: %w", ErrEvaluation, err)
	}
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(in.Time))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Decision{}, fmt.Errorf("%w: %w", ErrEvaluation, ctxErr)
		}
		return Decision{}, fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("%w: %s is undefined", ErrEvaluation, DecisionQuery)
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %s: %w", ErrEvaluation, DecisionQuery, err)
	}
	return d, nil
}
