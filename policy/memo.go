package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/frostmint/frostmint/verifier/binding"
)

// Decision memo.
//
// Evaluating the default policy costs about a quarter of a millisecond, at
// the coordinator and again at every signer: the largest part of a mint's
// CPU after the signatures themselves. Yet a workload mints again and
// again for the same identity, audience and scopes, and a policy is a
// pure function of its input and its data: no network, no randomness (see
// capabilities), and data fixed for the life of an Engine (a reload makes
// a new Engine). The one input that changes between such mints is the
// time. So when the compiled policy provably never reads the time, an
// Engine remembers its decisions by the rest of the input: the decision it
// returns is the one it would compute, and every daemon still decides with
// its own policy.
//
// "Provably" is decided once, when the policy is compiled, and errs on the
// side of evaluating: the policy must not read input.time or
// input.time_unix, nor refer to input as a whole or with a computed key
// (which could reach them), nor replace input or data with the "with"
// keyword, and it may call only built-ins from pureBuiltins: none of them
// reads the clock (time.now_ns, io.jwt.decode_verify and the x509
// verification built-ins do, and are left out), the network, randomness
// or the environment. Any other policy is evaluated every time.

// memoSize bounds the decisions an Engine remembers. When it is full an
// arbitrary one is forgotten.
const memoSize = 4096

// pureBuiltins are the built-ins whose result depends on their arguments
// only. A policy calling any other one is not memoized.
var pureBuiltins = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range []string{
		// comparison, arithmetic, sets, membership
		"eq", "equal", "neq", "lt", "lte", "gt", "gte", "plus", "minus", "mul", "div", "rem",
		"and", "or", "abs", "round", "ceil", "floor", "internal.member_2", "internal.member_3",
		"numbers.range", "numbers.range_step", "intersection", "union",
		// aggregates and collections
		"count", "sum", "product", "max", "min", "sort", "all", "any",
		"array.concat", "array.slice", "array.reverse",
		"object.get", "object.keys", "object.union", "object.union_n", "object.remove", "object.filter", "object.subset",
		// types
		"is_string", "is_number", "is_boolean", "is_array", "is_set", "is_object", "is_null", "type_name", "to_number",
		// strings
		"concat", "contains", "endswith", "startswith", "format_int", "indexof", "indexof_n", "lower", "upper",
		"replace", "split", "sprintf", "substring", "trim", "trim_left", "trim_right", "trim_prefix", "trim_suffix",
		"trim_space", "strings.replace_n", "strings.reverse", "strings.any_prefix_match", "strings.any_suffix_match",
		"strings.count", "internal.template_string",
		"regex.match", "regex.is_valid", "regex.split", "regex.find_n", "regex.find_all_string_submatch_n",
		"regex.replace", "regex.template_match", "regex.globs_match", "glob.match", "glob.quote_meta",
		// encodings
		"json.marshal", "json.unmarshal", "json.is_valid", "base64.encode", "base64.decode", "base64url.encode",
		"base64url.encode_no_pad", "base64url.decode", "hex.encode", "hex.decode", "urlquery.encode", "urlquery.decode",
		// time arithmetic on given instants (not the clock)
		"time.parse_ns", "time.parse_rfc3339_ns", "time.parse_duration_ns", "time.date", "time.clock",
		"time.weekday", "time.add_date", "time.diff",
		// other pure helpers
		"units.parse", "units.parse_bytes", "semver.compare", "semver.is_valid", "net.cidr_contains",
		"net.cidr_intersects",
	} {
		m[name] = true
	}
	return m
}()

// timeFields are the input's members that carry the time.
var timeFields = []string{"time", "time_unix"}

// timeless reports whether the compiled modules never read the time (see
// the Decision memo), and if not, why.
func timeless(modules map[string]*ast.Module) (bool, string) {
	why := ""
	for _, m := range modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if why != "" || len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
				return why != ""
			}
			if len(r) < 2 {
				why = "refers to input as a whole"
				return true
			}
			key, ok := r[1].Value.(ast.String)
			if !ok {
				why = "reads input with a computed key"
				return true
			}
			if slices.Contains(timeFields, string(key)) {
				why = "reads input." + string(key)
			}
			return why != ""
		})
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if why != "" {
				return true
			}
			if len(e.With) > 0 {
				why = "uses with"
				return true
			}
			if !e.IsCall() {
				return false
			}
			op := e.Operator()
			if len(op) > 0 && op[0].Equal(ast.DefaultRootDocument) {
				return false // a function of the policy: its body is walked too
			}
			if name := op.String(); !pureBuiltins[name] {
				why = "calls " + name
			}
			return why != ""
		})
		if why == "" {
			// Built-ins called as terms (x := count(s)) rather than as
			// expressions.
			ast.WalkTerms(m, func(t *ast.Term) bool {
				if why != "" {
					return true
				}
				c, ok := t.Value.(ast.Call)
				if !ok || len(c) == 0 {
					return false
				}
				op, ok := c[0].Value.(ast.Ref)
				if !ok || (len(op) > 0 && op[0].Equal(ast.DefaultRootDocument)) {
					return false
				}
				if name := op.String(); !pureBuiltins[name] {
					why = "calls " + name
				}
				return why != ""
			})
		}
		if why != "" {
			return false, why
		}
	}
	return true, ""
}

// memo remembers decisions by their input without its time.
type memo struct {
	mu sync.Mutex
	m  map[string]Decision
}

// memoKey encodes every part of in that reaches the policy except the
// time: two inputs with the same key render as the same Rego input, up
// to time and time_unix. It fails (and the decision is not memoized) for
// claims that do not encode, and for a string that is not valid UTF-8:
// encoding/json writes every invalid byte as \ufffd, so "a\xfe" and
// "a\xff" would share a key while the policy sees them apart (the
// check also turns away, needlessly but soundly, a string holding the
// text \ufffd).
func memoKey(in Input) (string, bool) {
	b, err := json.Marshal(struct {
		Caller   Caller           `json:"c"`
		Audience string           `json:"a"`
		Scopes   []string         `json:"s"`
		TTL      time.Duration    `json:"t"`
		Binding  *binding.Binding `json:"b"`
		SignerID int              `json:"i"`
	}{in.Caller, in.Request.Audience, in.Request.Scopes, in.Request.TTL, in.Request.Binding, in.SignerID})
	if err != nil || bytes.Contains(b, []byte(`\ufffd`)) {
		return "", false
	}
	return string(b), true
}

// get returns the decision remembered for key, with its own Reasons (a
// caller may append to them).
func (m *memo) get(key string) (Decision, bool) {
	m.mu.Lock()
	d, ok := m.m[key]
	m.mu.Unlock()
	d.Reasons = slices.Clone(d.Reasons)
	return d, ok
}

// put remembers d for key.
func (m *memo) put(key string, d Decision) {
	d.Reasons = slices.Clone(d.Reasons)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]Decision)
	}
	if _, ok := m.m[key]; !ok && len(m.m) >= memoSize {
		for k := range m.m {
			delete(m.m, k)
			break
		}
	}
	m.m[key] = d
}

// memoState describes the memo state, for logs.
func (e *Engine) memoState() string {
	if e.memo != nil {
		return "memoized (the policy never reads the time)"
	}
	return fmt.Sprintf("evaluated every time (the policy %s)", e.noMemo)
}
