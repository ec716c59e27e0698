package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// TestDemo runs `make demo KEYLESS=1`'s walk-through (tollgate dev as a
// real process, then every step of the scenario, then the keyless act with
// the real Fulcio and Rekor) and holds it to exit 0.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tollgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
	build.Dir = envtest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tollgate: %v\n%s", err, out)
	}
	demo := exec.Command("go", "run", "./testing/demo", "-tollgate", bin, "-keyless")
	demo.Dir = envtest.Root()
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, out)
	}
	for _, step := range []string{"✓ denied before any Pod exists", "✓ Tekton v", "ran the PipelineRun: Succeeded", "✓ chains.tekton.dev/signed=true on the PipelineRun", "✓ cosign verify-attestation", "✓ the signed image is admitted and pinned",
		"✓ built, pushed, signed and attested", "✓ Tollgate's own image is admitted and pinned", "✓ a rebuild with one file added, pushed but not signed, is denied",
		"✓ chains.tekton.dev/signed=true on the TaskRun build-and-push-keyless", "✓ cosign verify --certificate-identity", "✓ cosign verify-attestation --certificate-identity",
		"✓ rekor-cli search", "✓ the keylessly signed image is admitted and pinned", "✓ the image signed with a key (act 5) is denied", "every step behaved as shown"} {
		if !strings.Contains(string(out), step) {
			t.Errorf("the demo did not print %q:\n%s", step, out)
		}
	}
}
