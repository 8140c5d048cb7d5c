package policy

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// AdmissionQuery is the optional document that decides whether the
// coordinator uses a signer, given its attestation (see
// "Signer admission" in bundle/mint.rego).
const AdmissionQuery = "data.frostmint.mint.admit_signer"

// AdmissionInput is what the admission policy sees for one signer.
type AdmissionInput struct {
	SignerID int
	Identity string
	// Attestation is attest.Result.PolicyInput(): at least "attested"
	// (bool) and "measurement" (hex string).
	Attestation map[string]any
}

// Admission is the admission policy's answer.
type Admission struct {
	Admit   bool
	Reasons []string
}

// prepareAdmission prepares AdmissionQuery when the compiled policy
// defines it; a policy without it admits every signer.
func prepareAdmission(ctx context.Context, compiler *ast.Compiler, opts []func(*rego.Rego)) (*rego.PreparedEvalQuery, error) {
	if compiler == nil || len(compiler.GetRulesExact(ast.MustParseRef(AdmissionQuery))) == 0 {
		return nil, nil
	}
	q, err := rego.New(append(opts, rego.Query(AdmissionQuery))...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCompile, AdmissionQuery, err)
	}
	return &q, nil
}

// AdmitSigner decides whether the coordinator may use a signer. A policy
// without data.frostmint.mint.admit_signer admits every signer; one with
// it must produce {"admit": bool, "reasons": [string]}, and anything else
// is an error wrapping ErrEvaluation (the caller keeps the signer out).
func (e *Engine) AdmitSigner(ctx context.Context, in AdmissionInput) (Admission, error) {
	if e.admission == nil {
		return Admission{Admit: true}, nil
	}
	att := in.Attestation
	if att == nil {
		att = map[string]any{"attested": false, "measurement": ""}
	}
	input, err := ast.InterfaceToValue(map[string]any{
		"signer":      map[string]any{"id": in.SignerID, "identity": in.Identity},
		"attestation": att,
	})
	if err != nil {
		return Admission{}, fmt.Errorf("%w: admission input: %w", ErrEvaluation, err)
	}
	rs, err := e.admission.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Admission{}, fmt.Errorf("%w: %s: %w", ErrEvaluation, AdmissionQuery, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Admission{}, fmt.Errorf("%w: %s is undefined", ErrEvaluation, AdmissionQuery)
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Admission{}, fmt.Errorf("%w: %s is not an object", ErrEvaluation, AdmissionQuery)
	}
	admit, ok := obj["admit"].(bool)
	if !ok {
		return Admission{}, fmt.Errorf("%w: %s.admit is not a boolean", ErrEvaluation, AdmissionQuery)
	}
	var reasons []string
	if rr, ok := obj["reasons"].([]any); ok {
		for _, r := range rr {
			s, ok := r.(string)
			if !ok {
				return Admission{}, fmt.Errorf("%w: %s.reasons holds a non-string", ErrEvaluation, AdmissionQuery)
			}
			reasons = append(reasons, s)
		}
	} else if obj["reasons"] != nil {
		return Admission{}, fmt.Errorf("%w: %s.reasons is not an array", ErrEvaluation, AdmissionQuery)
	}
	return Admission{Admit: admit, Reasons: reasons}, nil
}
