package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// value renders in as the Rego input document:
//
//	{
//	  "caller":    {"subject", "client_id", "kind", "issuer" (if set), "claims" (if any)},
//	  "request":   {"audience", "scopes" (always an array), "ttl_seconds",
//	                "binding" (only when the caller binds the token to one request:
//	                {"method", "authority", "path", "body_bound"})},
//	  "time":      RFC 3339 in UTC with nanoseconds,
//	  "time_unix": Unix seconds,
//	  "signer_id": number,
//	}
//
// It builds the AST directly instead of round-tripping through JSON: this is
// on every mint's path.
func (in Input) value() (ast.Value, error) {
	caller := ast.NewObject(
		ast.Item(ast.StringTerm("subject"), ast.StringTerm(in.Caller.Subject)),
		ast.Item(ast.StringTerm("client_id"), ast.StringTerm(in.Caller.ClientID)),
		ast.Item(ast.StringTerm("kind"), ast.StringTerm(in.Caller.Kind)),
	)
	if in.Caller.Issuer != "" {
		caller.Insert(ast.StringTerm("issuer"), ast.StringTerm(in.Caller.Issuer))
	}
	if len(in.Caller.Claims) > 0 {
		claims, err := ast.InterfaceToValue(in.Caller.Claims)
		if err != nil {
			return nil, fmt.Errorf("caller claims: %w", err)
		}
		caller.Insert(ast.StringTerm("claims"), ast.NewTerm(claims))
	}

	scopes := make([]*ast.Term, len(in.Request.Scopes))
	for i, s := range in.Request.Scopes {
		scopes[i] = ast.StringTerm(s)
	}
	request := ast.NewObject(
		ast.Item(ast.StringTerm("audience"), ast.StringTerm(in.Request.Audience)),
		ast.Item(ast.StringTerm("scopes"), ast.ArrayTerm(scopes...)),
		ast.Item(ast.StringTerm("ttl_seconds"), durationSeconds(in.Request.TTL)),
	)
	if b := in.Request.Binding; b != nil {
		bo := ast.NewObject(
			ast.Item(ast.StringTerm("method"), ast.StringTerm(b.Method)),
			ast.Item(ast.StringTerm("authority"), ast.StringTerm(b.Authority)),
			ast.Item(ast.StringTerm("path"), ast.StringTerm(b.Path)),
			ast.Item(ast.StringTerm("body_bound"), ast.BooleanTerm(b.BodySHA256 != "")),
		)
		request.Insert(ast.StringTerm("binding"), ast.NewTerm(bo))
	}

	return ast.NewObject(
		ast.Item(ast.StringTerm("caller"), ast.NewTerm(caller)),
		ast.Item(ast.StringTerm("request"), ast.NewTerm(request)),
		ast.Item(ast.StringTerm("time"), ast.StringTerm(in.Time.UTC().Format(time.RFC3339Nano))),
		ast.Item(ast.StringTerm("time_unix"), ast.NumberTerm(json.Number(strconv.FormatInt(in.Time.Unix(), 10)))),
		ast.Item(ast.StringTerm("signer_id"), ast.NumberTerm(json.Number(strconv.Itoa(in.SignerID)))),
	), nil
}

// durationSeconds renders d in seconds: an integer when d is whole seconds,
// a decimal otherwise.
func durationSeconds(d time.Duration) *ast.Term {
	if d%time.Second == 0 {
		return ast.NumberTerm(json.Number(strconv.FormatInt(int64(d/time.Second), 10)))
	}
	return ast.NumberTerm(json.Number(strconv.FormatFloat(d.Seconds(), 'f', -1, 64)))
}

// maxTTLSeconds bounds max_ttl_seconds so that it converts to a
// time.Duration without overflow (about 292 years).
const maxTTLSeconds = math.MaxInt64 / int64(time.Second)

// decodeDecision checks that v, the decision document as returned by the
// rego package, is exactly
//
//	{"allow": bool, "reasons": [string], "max_ttl_seconds": number >= 0,
//	 "requires_approval": bool}
//
// and converts it. Extra keys are ignored; anything missing or mistyped is
// an error.
func decodeDecision(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", typeName(v))
	}
	allow, err := field[bool](obj, "allow")
	if err != nil {
		return Decision{}, err
	}
	approval, err := field[bool](obj, "requires_approval")
	if err != nil {
		return Decision{}, err
	}
	rawReasons, err := field[[]any](obj, "reasons")
	if err != nil {
		return Decision{}, err
	}
	reasons := make([]string, len(rawReasons))
	for i, r := range rawReasons {
		s, ok := r.(string)
		if !ok {
			return Decision{}, fmt.Errorf("reasons[%d] is %s, want a string", i, typeName(r))
		}
		reasons[i] = s
	}
	rawTTL, ok := obj["max_ttl_seconds"]
	if !ok {
		return Decision{}, errors.New(`missing key "max_ttl_seconds"`)
	}
	maxTTL, err := seconds(rawTTL)
	if err != nil {
		return Decision{}, fmt.Errorf("max_ttl_seconds: %w", err)
	}
	return Decision{
		Allow:            allow,
		Reasons:          reasons,
		MaxTTL:           maxTTL,
		RequiresApproval: approval,
	}, nil
}

func field[T any](obj map[string]any, key string) (T, error) {
	var zero T
	raw, ok := obj[key]
	if !ok {
		return zero, fmt.Errorf("missing key %q", key)
	}
	v, ok := raw.(T)
	if !ok {
		return zero, fmt.Errorf("%s is %s, want %T", key, typeName(raw), zero)
	}
	return v, nil
}

// seconds converts a non-negative JSON number of seconds to a Duration,
// rounding down to the nanosecond.
func seconds(v any) (time.Duration, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("is %s, want a number", typeName(v))
	}
	if i, err := n.Int64(); err == nil {
		if i < 0 || i > maxTTLSeconds {
			return 0, fmt.Errorf("%d out of range [0, %d]", i, maxTTLSeconds)
		}
		return time.Duration(i) * time.Second, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > float64(maxTTLSeconds) {
		return 0, fmt.Errorf("%s out of range [0, %d]", n, maxTTLSeconds)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
