package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// checkSamples admits every sample run through the API server and through
// runs.Admit (what `tollgate check` runs) with the same cluster state, and
// requires the same decision, message and stamp from both.
func checkSamples(t *testing.T, env *envtest.Env) {
	ctx := t.Context()
	root := filepath.Join(envtest.Root(), "testing", "samples")
	var expected map[string][]string
	data, err := os.ReadFile(filepath.Join(root, "expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &expected); err != nil {
		t.Fatal(err)
	}

	stateDocs := readDocs(t, filepath.Join(root, "cluster"))
	objs, err := runs.StateFromDocuments(stateDocs)
	if err != nil {
		t.Fatal(err)
	}
	static := runs.NewStaticCluster(objs)
	set := runs.NewSet(runs.BuiltinDefault())
	ids := runs.Identities{TektonControllers: []string{envtest.TektonController}, Trusted: []string{envtest.Signer}}
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
			labels, _ := static.NamespaceLabels(d.Namespace)
			offline, err := runs.Admit(ctx, static, set.ForNamespace(labels), d.Kind, d.Namespace, Alice, d.Raw, ids)
			if err != nil {
				t.Fatal(err)
			}
			var rules []string
			for _, v := range offline.Decision.Denials {
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
			if offline.Decision.Allowed() {
				if err != nil {
					t.Fatalf("tollgate check allows it, the webhook denied it: %v", err)
				}
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(u.GroupVersionKind())
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
					t.Fatal(err)
				}
				if stamp := got.GetAnnotations()[specdigest.Annotation]; stamp != offline.Mutation.Digest {
					t.Errorf("webhook stamped %s, tollgate check computed %s", stamp, offline.Mutation.Digest)
				}
				return
			}
			if err == nil {
				t.Fatalf("tollgate check denies it, the webhook admitted it:\n%s", offline.Decision.Message())
			}
			if !strings.Contains(err.Error(), offline.Decision.Message()) {
				t.Errorf("the webhook's denial differs from tollgate check's.\nwebhook: %v\ncheck:   %s", err, offline.Decision.Message())
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
