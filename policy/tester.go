package policy

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego unit tests (rules named test_* in any module) of
// the policy in fsys: every .rego file, test modules included, and every
// data.json, loaded as WithFiles loads a directory. Tests run with the same
// restrictions as Evaluate (no non-deterministic built-ins, built-in errors
// are errors). Skipped tests (todo_test_*) count as neither passed nor
// failed.
//
// err is non-nil when the tests could not be run (wrapping ErrLoad or
// ErrCompile), or when some failed: then it wraps ErrTestsFailed and names
// each failed test, and passed and failed are still set. Zero tests is not
// an error; callers that expect tests check passed+failed.
func RunTests(ctx context.Context, fsys fs.FS) (passed, failed int, err error) {
	var src sources
	if err := loadFS(fsys, "", true, &src); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	modules, data, err := src.parse()
	if err != nil {
		return 0, 0, err
	}

	compiler := ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)
	results, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(inmem.NewFromObject(data)).
		SetDefaultRegoVersion(ast.RegoV1).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		RunTests(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrCompile, err)
	}

	var failures []string
	for r := range results {
		switch {
		case r.Skip:
		case r.Pass():
			passed++
		default:
			failed++
			msg := fmt.Sprintf("%s.%s (%s)", r.Package, r.Name, r.Location)
			if r.Error != nil {
				msg += ": " + r.Error.Error()
			}
			if len(r.Output) > 0 {
				msg += "\n" + strings.TrimRight(string(r.Output), "\n")
			}
			failures = append(failures, msg)
		}
	}
	if err := ctx.Err(); err != nil {
		return passed, failed, err
	}
	if failed > 0 {
		sort.Strings(failures)
		return passed, failed, fmt.Errorf("%w: %d of %d:\n%s", ErrTestsFailed, failed, passed+failed, strings.Join(failures, "\n"))
	}
	return passed, failed, nil
}
