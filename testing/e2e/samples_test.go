package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// TestSamples: the sample runs under the sample policies (built-in checks
// and a Rego rule), decided alike by the webhook and by `tollgate check`.
func TestSamples(t *testing.T) {
	checkSamples(t, startGuarded(t))
}

// checkSamples admits every sample run through the API server and runs the
// real `tollgate check` binary on the same files and cluster state, and
// requires the same decision, message and stamp from both.
func checkSamples(t *testing.T, env *envtest.Env) {
	ctx := t.Context()
	root := filepath.Join(envtest.Root(), "testing", "samples")
	for _, d := range readDocs(t, filepath.Join(root, "policies")) {
		p := &v1alpha1.ClusterRunPolicy{}
		if err := yaml.Unmarshal(d.Raw, p); err != nil {
			t.Fatal(err)
		}
		applyPolicy(t, env.Client, p)
	}
	var expected map[string][]string
	data, err := os.ReadFile(filepath.Join(root, "expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &expected); err != nil {
		t.Fatal(err)
	}

	// The real CLI, built from this checkout, on the whole samples directory.
	bin := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
	build.Dir = envtest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tollgate: %v\n%s", err, out)
	}
	check := exec.Command(bin, "check", "-o", "json", "--as", Alice, "--policy", filepath.Join(root, "policies"),
		"--tekton-controller-users", envtest.TektonController, "--trusted-users", envtest.Signer,
		"--cluster-state", filepath.Join(root, "cluster"), filepath.Join(root, "runs"))
	out, err := check.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("tollgate check: %v\n%s", err, out)
	}
	var results []struct {
		Allowed  bool            `json:"allowed"`
		Decision policy.Decision `json:"decision"`
		Digest   string          `json:"specDigest"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("tollgate check -o json: %v\n%s", err, out)
	}
	offline := map[string]int{}
	for i, r := range results {
		offline[r.Decision.Subject] = i
	}
	alice := env.As(t, Alice)

	docs := readDocs(t, filepath.Join(root, "runs"))
	if len(docs) != len(expected) {
		t.Fatalf("%d sample runs, %d expectations", len(docs), len(expected))
	}
	for _, d := range docs {
		t.Run(d.Name, func(t *testing.T) {
			want, ok := expected[d.Name]
			if !ok {
				t.Fatalf("no expectation for %s", d.Name)
			}
			i, ok := offline[d.Kind+" "+d.Namespace+"/"+d.Name]
			if !ok {
				t.Fatalf("tollgate check printed no decision for %s %s/%s", d.Kind, d.Namespace, d.Name)
			}
			r := results[i]
			var rules []string
			for _, v := range r.Decision.Denials {
				if !slices.Contains(rules, v.Rule) {
					rules = append(rules, v.Rule)
				}
			}
			if !slices.Equal(rules, want) && !(len(rules) == 0 && len(want) == 0) {
				t.Errorf("tollgate check denies with rules %v, expected.yaml says %v", rules, want)
			}

			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(d.Raw); err != nil {
				t.Fatal(err)
			}
			err = alice.Create(ctx, u)
			if r.Allowed != r.Decision.Allowed() {
				t.Fatalf("tollgate check says allowed=%v with %d denials", r.Allowed, len(r.Decision.Denials))
			}
			if r.Allowed {
				if err != nil {
					t.Fatalf("tollgate check allows it, the webhook denied it: %v", err)
				}
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(u.GroupVersionKind())
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
					t.Fatal(err)
				}
				if stamp := got.GetAnnotations()[specdigest.Annotation]; stamp != r.Digest {
					t.Errorf("webhook stamped %s, tollgate check computed %s", stamp, r.Digest)
				}
				return
			}
			if err == nil {
				t.Fatalf("tollgate check denies it, the webhook admitted it:\n%s", r.Decision.Message())
			}
			if !strings.Contains(err.Error(), r.Decision.Message()) {
				t.Errorf("the webhook's denial differs from tollgate check's.\nwebhook: %v\ncheck:   %s", err, r.Decision.Message())
			}
		})
	}
}

func readDocs(t *testing.T, dir string) []runs.Document {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []runs.Document
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := runs.ParseDocuments(data, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d...)
	}
	return out
}
