package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// TestLayering holds the import lines of STYLE.md: policy/ is pure and
// imports neither the webhook, the signer nor a controller-runtime manager;
// the webhook does not import the signer; the signer not the webhook; the
// binary imports neither package testing nor the test harness.
func TestLayering(t *testing.T) {
	const mod = "github.com/tollgate-dev/tollgate/"
	rules := []struct {
		pkgs      string
		forbidden []string
	}{
		{"./policy/...", []string{mod + "webhook", mod + "signer", "sigs.k8s.io/controller-runtime/pkg/manager", "sigs.k8s.io/controller-runtime/pkg/cache"}},
		{"./webhook/...", []string{mod + "signer"}},
		{"./signer/...", []string{mod + "webhook"}},
		// The shipped binary carries no test harness: internal/controlplane
		// is shared with testing/envtest instead.
		{"./cmd/...", []string{mod + "testing"}},
	}
	for _, r := range rules {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", r.pkgs)
		cmd.Dir = envtest.Root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "matched no packages") || strings.Contains(string(out), "no such file or directory") {
				continue
			}
			t.Fatalf("go list %s: %v\n%s", r.pkgs, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range r.forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s imports %s", r.pkgs, dep)
				}
			}
		}
	}
	// Nor do the binary's own packages import package testing (some
	// dependencies do; that is theirs).
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./cmd/...")
	cmd.Dir = envtest.Root()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], mod) && slices.Contains(f[1:], "testing") {
			t.Errorf("%s, in the tollgate binary, imports package testing", f[0])
		}
	}
}
