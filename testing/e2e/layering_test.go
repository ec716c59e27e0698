package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// TestLayering holds the import lines of STYLE.md: policy/ is pure and
// imports neither the webhook, the signer nor a controller-runtime manager;
// the webhook does not import the signer; the signer not the webhook.
func TestLayering(t *testing.T) {
	const mod = "github.com/tollgate-dev/tollgate/"
	rules := []struct {
		pkgs      string
		forbidden []string
	}{
		{"./policy/...", []string{mod + "webhook", mod + "signer", "sigs.k8s.io/controller-runtime/pkg/manager", "sigs.k8s.io/controller-runtime/pkg/cache"}},
		{"./webhook/...", []string{mod + "signer"}},
		{"./signer/...", []string{mod + "webhook"}},
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
}
