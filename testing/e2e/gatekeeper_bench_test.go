package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/benchdata"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
)

// gatekeeperTemplate is the comparison: a ConstraintTemplate whose
// Rego requires CPU and memory limits on every inline step of a
// PipelineRun and forbids privileged steps, and a constraint matching
// PipelineRuns.
const gatekeeperTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: tektonsteps
spec:
  crd:
    spec:
      names:
        kind: TektonSteps
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package tektonsteps

        steps[s] {
          s := input.review.object.spec.pipelineSpec.tasks[_].taskSpec.steps[_]
        }

        violation[{"msg": msg}] {
          s := steps[_]
          not s.computeResources.limits.cpu
          msg := sprintf("step %v has no CPU limit", [s.name])
        }

        violation[{"msg": msg}] {
          s := steps[_]
          not s.computeResources.limits.memory
          msg := sprintf("step %v has no memory limit", [s.name])
        }

        violation[{"msg": msg}] {
          s := steps[_]
          s.securityContext.privileged == true
          msg := sprintf("step %v is privileged", [s.name])
        }
`

const gatekeeperConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: TektonSteps
metadata:
  name: tekton-steps
spec:
  match:
    kinds:
      - apiGroups: ["tekton.dev"]
        kinds: ["PipelineRun"]
`

// BenchmarkGatekeeperProcess measures OPA Gatekeeper v3.20.1 (bin/gatekeeper,
// built from the Go module proxy by `make bench-compare`) the way
// BenchmarkWebhookProcess measures `tollgate webhook`: the process against
// the harness's API server, its webhook (--operation=webhook) driven over
// TLS by one HTTP/2 keep-alive client, the same PipelineRun reviews
// (benchdata: allowed, and denied for one privileged step), C=1 and C=8;
// the policy is the template above (limits and privileged).
func BenchmarkGatekeeperProcess(b *testing.B) {
	bin := filepath.Join(envtest.Root(), "bin", "gatekeeper")
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("bin/gatekeeper is not built: run `make bench-compare` (it builds OPA Gatekeeper v3.20.1 from the Go module proxy once): %v", err)
	}
	env := prepareGuarded(b, namespace("gatekeeper-system", nil))
	ctx := b.Context()
	applyYAML(b, env.Client, gatekeeperCRDs(b)...)
	templates := &unstructured.UnstructuredList{}
	templates.SetAPIVersion("templates.gatekeeper.sh/v1")
	templates.SetKind("ConstraintTemplateList")
	for deadline := time.Now().Add(time.Minute); env.Client.List(ctx, templates) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("Gatekeeper's CRDs were not served within a minute")
		}
	}
	// Gatekeeper owns its status objects by its Pod (POD_NAME): the Pod it
	// would run in (nothing runs it here).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "gatekeeper-system", Name: "gatekeeper-bench"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "openpolicyagent/gatekeeper:v3.20.1"}}}}
	if err := env.Client.Create(ctx, pod); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	kubeconfig := writeKubeconfig(b, env, filepath.Join(dir, "kubeconfig"), "")
	port := proc.FreePort(b)
	health := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(b))
	p := proc.New("gatekeeper", bin, "--operation=webhook", "--operation=generate", "--host=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--cert-dir="+env.CertDir, "--disable-cert-rotation", "--health-addr="+health, "--metrics-addr=0",
		"--enable-k8s-native-validation=false", "--shutdown-delay=0", "--log-level=ERROR")
	p.Cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=gatekeeper-system", "POD_NAME=gatekeeper-bench")
	p.Run(b)
	p.WaitFor(b, "ready", proc.HTTPOK("http://"+health+"/readyz"))

	// The constraint's kind exists once the template is ingested.
	applyYAML(b, env.Client, []byte(gatekeeperTemplate))
	constraint := decodeYAML(b, []byte(gatekeeperConstraint))[0]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := env.Client.Create(ctx, constraint.DeepCopy())
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if time.Now().After(deadline) {
			crd := &unstructured.Unstructured{}
			crd.SetAPIVersion("apiextensions.k8s.io/v1")
			crd.SetKind("CustomResourceDefinition")
			gerr := env.Client.Get(ctx, client.ObjectKey{Name: "tektonsteps.constraints.gatekeeper.sh"}, crd)
			st, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			b.Fatalf("creating the constraint: %v (CRD: %v %v)", err, gerr, st)
		}
	}

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	post := newPoster(addr, env.CAData)
	allow := benchdata.Review(benchdata.PipelineRun(false, nil), Alice)
	deny := benchdata.Review(benchdata.PipelineRun(true, nil), Alice)
	// Gatekeeper enforces the constraint once its controller has read it.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r, proto, err := post("/v1/admit", deny)
		if err == nil && !r.Allowed {
			if proto != "HTTP/2.0" {
				b.Fatalf("served over %s, want HTTP/2", proto)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("Gatekeeper never denied the privileged step: %v %+v", err, r)
		}
	}
	if r, _, err := post("/v1/admit", allow); err != nil || !r.Allowed {
		b.Fatalf("Gatekeeper did not allow the allowed body: %v %+v", err, r)
	}
	pid := p.Cmd.Process.Pid
	for _, conc := range []int{1, 8} {
		for _, c := range []struct {
			name    string
			body    []byte
			allowed bool
		}{{"validate-allow", allow, true}, {"validate-deny", deny, false}} {
			b.Run(fmt.Sprintf("%s/C=%d", c.name, conc), func(b *testing.B) {
				loadRow(b, post, "/v1/admit", c.body, c.allowed, conc, pid, nil)
			})
		}
	}
}

// gatekeeperCRDs reads Gatekeeper's CRDs from its module (the version
// testing/tools/gatekeeper builds).
func gatekeeperCRDs(b *testing.B) [][]byte {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/open-policy-agent/gatekeeper/v3")
	cmd.Dir = filepath.Join(envtest.Root(), "testing", "tools", "gatekeeper")
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("finding Gatekeeper's module: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "charts", "gatekeeper", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no CRDs in Gatekeeper's module: %v", err)
	}
	var docs [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		docs = append(docs, raw)
	}
	return docs
}

// decodeYAML reads the objects of a YAML (or JSON) stream.
func decodeYAML(t testing.TB, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("decoding YAML: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// applyYAML creates the objects of YAML documents.
func applyYAML(b *testing.B, c client.Client, docs ...[]byte) {
	for _, d := range docs {
		for _, u := range decodeYAML(b, d) {
			if err := c.Create(b.Context(), u); err != nil && !apierrors.IsAlreadyExists(err) {
				b.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
	}
}
