package rego

import (
	"context"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Test runs the test_ rules of the modules the way `opa test` does, with
// the built-in library loaded (not its tests: those run in this package's
// Go tests) and the same capabilities as admission. An
// error means a module does not parse or compile.
func Test(ctx context.Context, modules []Module, filter string) ([]*tester.Result, error) {
	all := map[string]*ast.Module{}
	for _, m := range append(Library(), modules...) {
		if _, dup := all[m.Name]; dup {
			continue
		}
		pm, err := Parse(m)
		if err != nil {
			return nil, err
		}
		all[m.Name] = pm
	}
	c := ast.NewCompiler().WithCapabilities(Capabilities()).WithEnablePrintStatements(true)
	r := tester.NewRunner().SetCompiler(c).CapturePrintOutput(true).RaiseBuiltinErrors(true)
	if filter != "" {
		r = r.Filter(filter)
	}
	ch, err := r.Run(ctx, all)
	if err != nil {
		return nil, err
	}
	var out []*tester.Result
	for res := range ch {
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Describe renders one result as `opa test` does.
func Describe(r *tester.Result) string {
	return strings.TrimSpace(r.String())
}
