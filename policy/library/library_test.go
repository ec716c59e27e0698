package library_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/rego"
)

func modules(t *testing.T) []rego.Module {
	t.Helper()
	var out []rego.Module
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, rego.Module{Name: p, Source: string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLibraryTestsPass(t *testing.T) {
	results, err := rego.Test(t.Context(), modules(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Fatalf("only %d tests ran", len(results))
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s", rego.Describe(r))
		}
	}
}

// TestEveryRuleIsDocumentedAndEnforceable: each rule file carries a title,
// a description and how to fix, has a test beside it, and compiles into
// something the webhook enforces.
func TestEveryRuleIsDocumentedAndEnforceable(t *testing.T) {
	mods := modules(t)
	have := map[string]bool{}
	for _, m := range mods {
		have[m.Name] = true
	}
	rules := 0
	for _, m := range mods {
		if strings.HasSuffix(m.Name, "_test.rego") {
			continue
		}
		rules++
		for _, want := range []string{"# METADATA", "# title:", "# description:", "#   fix:"} {
			if !strings.Contains(m.Source, want) {
				t.Errorf("%s has no %q", m.Name, want)
			}
		}
		if !have[strings.TrimSuffix(m.Name, ".rego")+"_test.rego"] {
			t.Errorf("%s has no test beside it", m.Name)
		}
		if _, err := rego.Compile(t.Context(), []rego.Module{m}, rego.DefaultOptions()); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
	}
	if rules < 6 {
		t.Errorf("%d rules, want the six the library promises", rules)
	}
}
