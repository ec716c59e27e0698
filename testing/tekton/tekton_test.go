package tekton

import (
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// TestTaskRun: Tekton's controller runs a TaskRun of two steps on the node
// stand-in to success, with the result the second step wrote.
func TestTaskRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and Tekton")
	}
	env := envtest.Start(t, envtest.Options{})
	tk := Start(t, env, Options{})
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "hello"}, Spec: pipelinev1.TaskRunSpec{
		TaskSpec: &pipelinev1.TaskSpec{
			Results: []pipelinev1.TaskResult{{Name: "greeting"}},
			Steps: []pipelinev1.Step{
				{Name: "one", Image: ShellImage, Script: "echo one > /workspace/one.txt"},
				{Name: "two", Image: ShellImage, Script: "printf 'hello %s' \"$(cat /workspace/one.txt)\" > $(results.greeting.path)"},
			}}}}
	if err := env.Client.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	done := controlplane.Eventually(ctx, 2*time.Minute, 200*time.Millisecond, func() bool {
		if env.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr) != nil {
			return false
		}
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		return c != nil && c.Status != corev1.ConditionUnknown
	})
	if !done {
		t.Fatalf("the TaskRun did not finish: %+v\ncontroller:\n%s", tr.Status, tk.ControllerOutput())
	}
	if c := tr.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("the TaskRun failed: %+v\n%s", c, tk.Node.Logs())
	}
	if len(tr.Status.Results) != 1 || tr.Status.Results[0].Value.StringVal != "hello one" {
		t.Errorf("results: %+v", tr.Status.Results)
	}
}

func TestMountsText(t *testing.T) {
	m := mounts{{"/workspace/source", "/d/src"}, {"/tekton/results", "/d/res"}, {"/workspace", "/d/ws"}, {"/tekton", "/d/c/tekton"}}
	for in, want := range map[string]string{
		"cd /workspace/source && ls":         "cd /d/src && ls",
		`printf x > "/tekton/results/IMAGE"`: `printf x > "/d/res/IMAGE"`,
		"/workspace/other/x":                 "/d/ws/other/x",
		"/workspace2/x /tekton-internal/y":   "/workspace2/x /tekton-internal/y",
		"/tmp/volumes/tekton/x":              "/tmp/volumes/tekton/x",
		"A=/tekton/termination":              "A=/d/c/tekton/termination",
		"/tekton":                            "/d/c/tekton",
	} {
		if got := m.text(in); got != want {
			t.Errorf("text(%q) = %q, want %q", in, got, want)
		}
	}
}
