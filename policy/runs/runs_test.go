package runs

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/rbac"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

var ids = Identities{TektonControllers: []string{"system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"}, Trusted: []string{"system:serviceaccount:tollgate-system:tollgate-signer"}}

// cluster is a small cluster: namespace ns with service account builder
// (within the ceiling) and admin (bound to a wide role), Task build.
func cluster() *StaticCluster {
	return NewStaticCluster(StaticObjects{
		Namespaces:      []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}},
		ServiceAccounts: []corev1.ServiceAccount{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "builder"}}, {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "admin"}}},
		RBAC: rbac.Objects{
			ClusterRoles: []rbacv1.ClusterRole{
				{ObjectMeta: metav1.ObjectMeta{Name: DefaultCeilingClusterRole}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "wide"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}},
			},
			RoleBindings: []rbacv1.RoleBinding{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "admin-wide"},
				RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "wide"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "admin"}},
			}},
		},
	})
}

const safeStep = `{"name":"s","image":"img@sha256:0000000000000000000000000000000000000000000000000000000000000000",
 "securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}},
 "computeResources":{"limits":{"cpu":"1","memory":"1Gi"}}}`

func taskRunJSON(sa, taskSpec string) string {
	return `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ns"},"spec":{"serviceAccountName":"` + sa + `","taskSpec":` + taskSpec + `}}`
}

// facts are a CREATE review by alice in namespace ns.
func facts(ps []*Policy, kind string, raw []byte) Facts {
	return Facts{Review: Review{Kind: kind, Namespace: "ns", Operation: OpCreate, User: "alice", Object: raw}, Policies: ps, Identities: ids}
}

func admit(t *testing.T, c Cluster, ps []*Policy, kind, raw string) *Admission {
	t.Helper()
	if ps == nil {
		ps = []*Policy{BuiltinDefault()}
	}
	a, err := Admit(context.Background(), c, facts(ps, kind, []byte(raw)))
	if err != nil {
		t.Fatalf("admit: %v", err)
	}
	return a
}

func rules(d policy.Decision) []string {
	var out []string
	for _, v := range d.Denials {
		if !slices.Contains(out, v.Rule) {
			out = append(out, v.Rule)
		}
	}
	return out
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name      string
		kind, raw string
		want      []string // denied rules, in order
		contains  string
	}{
		{"safe TaskRun is allowed", KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`]}`), nil, ""},
		{"default SA", KindTaskRun, taskRunJSON("default", `{"steps":[`+safeStep+`]}`), []string{"serviceAccount"}, `service account "default"`},
		{"no SA", KindTaskRun, taskRunJSON("", `{"steps":[`+safeStep+`]}`), []string{"serviceAccount"}, `no service account is named`},
		{"SA missing", KindTaskRun, taskRunJSON("ghost", `{"steps":[`+safeStep+`]}`), []string{"serviceAccount"}, `does not exist`},
		{"SA over the ceiling", KindTaskRun, taskRunJSON("admin", `{"steps":[`+safeStep+`]}`), []string{"serviceAccount"}, `through RoleBinding ns/admin-wide (ClusterRole wide): * *.*`},
		{"privileged step", KindTaskRun, taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"runAsNonRoot":true`, `"runAsNonRoot":true,"privileged":true`, 1)+`]}`), []string{"podSecurity"}, `step "s" (spec.taskSpec.steps[0].securityContext) privileged`},
		{"a Task volume with no source is an emptyDir, as the API server defaults it before PSA", KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`],"volumes":[{"name":"scratch"}]}`), nil, ""},
		{"a hostPath volume is still denied", KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`],"volumes":[{"name":"host","hostPath":{"path":"/"}}]}`), []string{"podSecurity"}, `restricted volume type "hostPath"`},
		{"no limits", KindTaskRun, taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{"memory":"1Gi"}`, 1)+`]}`), []string{"resources"}, `no cpu limit`},
		{"limits from stepTemplate count", KindTaskRun, taskRunJSON("builder", `{"stepTemplate":{"computeResources":{"limits":{"cpu":"1","memory":"1Gi"}}},"steps":[`+strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{}`, 1)+`]}`), nil, ""},
		{"limits from stepSpecs count", KindTaskRun, strings.Replace(taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{}`, 1)+`]}`), `"serviceAccountName"`, `"stepSpecs":[{"name":"s","computeResources":{"limits":{"cpu":"2","memory":"1Gi"}}}],"serviceAccountName"`, 1), nil, ""},
		{"git branch", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"git","params":[{"name":"url","value":"https://x/y.git"},{"name":"revision","value":"v1.2.3"}]}}}`, []string{"pinnedRefs"}, `not a full commit SHA`},
		{"git commit", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"git","params":[{"name":"url","value":"https://x/y.git"},{"name":"revision","value":"` + strings.Repeat("ab", 20) + `"}]}}}`, nil, ""},
		{"bundle by tag", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"bundles","params":[{"name":"bundle","value":"reg/x:1"},{"name":"name","value":"t"}]}}}`, []string{"pinnedRefs"}, `not pinned by digest`},
		{"bundle by digest", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"bundles","params":[{"name":"bundle","value":"reg/x@sha256:` + strings.Repeat("0", 64) + `"},{"name":"name","value":"t"}]}}}`, nil, ""},
		{"http resolver is not allowed", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"http","params":[{"name":"url","value":"https://x/t.yaml"}]}}}`, []string{"pinnedRefs"}, `resolver "http", which is not allowed`},
		{"git path climbing out with ..", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"git","params":[{"name":"url","value":"https://x/y.git"},{"name":"pathInRepo","value":"tasks/../../etc/t.yaml"},{"name":"revision","value":"` + strings.Repeat("ab", 20) + `"}]}}}`, []string{"pinnedRefs"}, `".." path segment`},
		{"percent-encoded ..", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"git","params":[{"name":"url","value":"https://x/y.git"},{"name":"pathInRepo","value":"tasks/%2E%2E/t.yaml"},{"name":"revision","value":"` + strings.Repeat("ab", 20) + `"}]}}}`, []string{"pinnedRefs"}, `".." path segment`},
		{"param with whitespace", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"hub","params":[{"name":"name","value":"a b"},{"name":"version","value":"0.9"}]}}}`, []string{"pinnedRefs"}, `outside the allowed set`},
		{"forged chains annotation", KindTaskRun, strings.Replace(taskRunJSON("builder", `{"steps":[`+safeStep+`]}`), `"name":"tr"`, `"name":"tr","annotations":{"chains.tekton.dev/signed":"true"}`, 1), []string{"specIntegrity"}, `reserved`},
		{"transparency opt-in is the user's", KindTaskRun, strings.Replace(taskRunJSON("builder", `{"steps":[`+safeStep+`]}`), `"name":"tr"`, `"name":"tr","annotations":{"chains.tekton.dev/transparency-upload":"true"}`, 1), nil, ""},
		{"cluster Task is fetched and checked", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder","taskRef":{"name":"missing"}}}`, nil, ""},
		{"neither taskRef nor taskSpec", KindTaskRun, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":{"serviceAccountName":"builder"}}`, []string{"error"}, "neither taskRef nor taskSpec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Admit(context.Background(), cluster(), facts([]*Policy{BuiltinDefault()}, tc.kind, []byte(tc.raw)))
			if slices.Equal(tc.want, []string{"error"}) {
				if err == nil || !strings.Contains(err.Error(), tc.contains) {
					t.Fatalf("err = %v, want one containing %q", err, tc.contains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rules(a.Decision)); diff != "" {
				t.Errorf("denied rules (-want +got):\n%s\n%s", diff, a.Decision.Message())
			}
			if tc.contains != "" && !strings.Contains(a.Decision.Message(), tc.contains) {
				t.Errorf("message does not contain %q:\n%s", tc.contains, a.Decision.Message())
			}
		})
	}
}

func TestOfflineSkipsClusterChecks(t *testing.T) {
	a := admit(t, nil, nil, KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`]}`))
	if !a.Decision.Allowed() {
		t.Fatalf("denied: %s", a.Decision.Message())
	}
	if len(a.Decision.Skipped) == 0 || !strings.Contains(a.Decision.Skipped[0].Reason, "not checked") {
		t.Errorf("cluster checks not reported as skipped: %+v", a.Decision.Skipped)
	}
}

func TestWarnModeAndExemptions(t *testing.T) {
	raw := taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{}`, 1)+`]}`)
	warn, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "warn"}, Spec: v1alpha1.ClusterRunPolicySpec{Resources: v1alpha1.ResourcesCheck{Mode: v1alpha1.Warn}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := admit(t, cluster(), []*Policy{warn}, KindTaskRun, raw)
	if !a.Decision.Allowed() || len(a.Decision.Warnings) != 1 {
		t.Errorf("Warn mode: allowed=%v warnings=%v", a.Decision.Allowed(), a.Decision.Warnings)
	}
	exempt, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "exempt"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Exemptions: []v1alpha1.Exemption{{Namespaces: []string{"ns"}, Checks: []v1alpha1.CheckName{v1alpha1.CheckResources}, Reason: "legacy builds, ticket OPS-1"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a = admit(t, cluster(), []*Policy{exempt}, KindTaskRun, raw)
	if !a.Decision.Allowed() || len(a.Decision.Exempted) != 1 || !strings.Contains(a.Decision.Exempted[0].Reason, "OPS-1") {
		t.Errorf("exemption: allowed=%v exempted=%+v", a.Decision.Allowed(), a.Decision.Exempted)
	}
	// Two policies apply together: the stricter one decides.
	a = admit(t, cluster(), []*Policy{exempt, BuiltinDefault()}, KindTaskRun, raw)
	if a.Decision.Allowed() {
		t.Error("an exemption in one policy allowed what another policy denies")
	}
}

func TestCompileErrors(t *testing.T) {
	p := &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1alpha1.ClusterRunPolicySpec{
		PodSecurity: v1alpha1.PodSecurityCheck{Mode: "Sometimes", Level: "privileged", Version: "v2"},
		Resources: v1alpha1.ResourcesCheck{
			DefaultLimits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			MaxLimits:     corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), "nvidia.com/gpu": resource.MustParse("1")},
		},
		PinnedRefs: v1alpha1.PinnedRefsCheck{AllowedResolvers: []string{"ftp"}},
		Exemptions: []v1alpha1.Exemption{{Namespaces: []string{"x"}}},
	}}
	_, err := Compile(t.Context(), p, nil)
	if err == nil {
		t.Fatal("an invalid policy compiled")
	}
	for _, want := range []string{`spec.podSecurity.mode: "Sometimes"`, `spec.podSecurity.level: "privileged"`, `spec.podSecurity.version: "v2"`, `"nvidia.com/gpu"`, `unknown resolver "ftp"`, `spec.exemptions[0].reason: required`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
}

func TestBuiltinDefault(t *testing.T) {
	got := BuiltinDefault().Spec
	want := v1alpha1.ClusterRunPolicySpec{
		ServiceAccount: v1alpha1.ServiceAccountCheck{Mode: v1alpha1.Enforce, CeilingClusterRole: "tollgate-run-ceiling"},
		PodSecurity:    v1alpha1.PodSecurityCheck{Mode: v1alpha1.Enforce, Level: "restricted", Version: "latest"},
		Resources:      v1alpha1.ResourcesCheck{Mode: v1alpha1.Enforce},
		PinnedRefs:     v1alpha1.PinnedRefsCheck{Mode: v1alpha1.Enforce, AllowedResolvers: []string{"hub", "git", "bundles", "cluster"}, MaxParamLength: 512},
		SpecIntegrity:  v1alpha1.SpecIntegrityCheck{Mode: v1alpha1.Enforce},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the documented default policy changed (-want +got):\n%s", diff)
	}
}

func TestMutateDefaultsAndStamp(t *testing.T) {
	p, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: v1alpha1.ClusterRunPolicySpec{Resources: v1alpha1.ResourcesCheck{
		DefaultLimits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"pr"},"spec":{"taskRunTemplate":{"serviceAccountName":"builder"},"pipelineSpec":{"tasks":[{"name":"a","taskSpec":{"steps":[` +
		strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{"memory":"1Gi"}`, 1) + `],"sidecars":[{"name":"db","image":"pg","securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}}]}}]}}}`
	a := admit(t, cluster(), []*Policy{p}, KindPipelineRun, raw)
	if !a.Decision.Allowed() {
		t.Fatalf("denied after defaulting: %s", a.Decision.Message())
	}
	wantDefaults := []string{
		`task "a" step "s": spec.pipelineSpec.tasks[0].taskSpec.steps[0].computeResources.limits.cpu = 500m`,
		`task "a" sidecar "db": spec.pipelineSpec.tasks[0].taskSpec.sidecars[0].computeResources.limits.cpu = 500m`,
		`task "a" sidecar "db": spec.pipelineSpec.tasks[0].taskSpec.sidecars[0].computeResources.limits.memory = 256Mi`,
	}
	if diff := cmp.Diff(wantDefaults, a.Mutation.Defaulted); diff != "" {
		t.Errorf("defaults written (-want +got):\n%s", diff)
	}
	got, err := specdigest.OfObject(a.Mutation.Object)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(a.Mutation.Object, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Metadata.Annotations[specdigest.Annotation] != got {
		t.Errorf("stamp %q is not the digest of the mutated spec %q", meta.Metadata.Annotations[specdigest.Annotation], got)
	}
	// Mutating again (a reinvocation) changes nothing.
	again := admit(t, cluster(), []*Policy{p}, KindPipelineRun, string(a.Mutation.Object))
	if string(again.Mutation.Object) != string(a.Mutation.Object) {
		t.Errorf("mutation is not idempotent:\n%s\n%s", a.Mutation.Object, again.Mutation.Object)
	}
}

func TestIntegrityUpdates(t *testing.T) {
	created := admit(t, cluster(), nil, KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`]}`)).Mutation.Object
	ps := []*Policy{BuiltinDefault()}
	update := func(user, sub string, mutate func(map[string]any)) policy.Decision {
		var m map[string]any
		if err := json.Unmarshal(created, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		newRaw, _ := json.Marshal(m)
		f := &Facts{Review: Review{Kind: KindTaskRun, Namespace: "ns", Operation: OpUpdate, SubResource: sub, User: user, Object: newRaw, OldObject: created},
			Policies: ps, Identities: ids}
		if err := f.Gather(context.Background(), nil); err != nil {
			t.Fatalf("gather: %v", err)
		}
		return Decide(context.Background(), f).Decision
	}
	spec := func(m map[string]any) map[string]any { return m["spec"].(map[string]any) }
	ann := func(m map[string]any) map[string]any {
		return m["metadata"].(map[string]any)["annotations"].(map[string]any)
	}
	for _, tc := range []struct {
		name    string
		user    string
		sub     string
		mutate  func(map[string]any)
		allowed bool
	}{
		{"labels may change", "alice", "", func(m map[string]any) { m["metadata"].(map[string]any)["labels"] = map[string]any{"a": "b"} }, true},
		{"cancel is allowed", "alice", "", func(m map[string]any) { spec(m)["status"] = "TaskRunCancelled" }, true},
		{"spec change is denied", "alice", "", func(m map[string]any) { spec(m)["serviceAccountName"] = "admin" }, false},
		{"spec change by the signer is denied too", ids.Trusted[0], "", func(m map[string]any) { spec(m)["serviceAccountName"] = "admin" }, false},
		{"removing the stamp is denied", "alice", "", func(m map[string]any) { delete(ann(m), specdigest.Annotation) }, false},
		{"signer writes chains annotations", ids.Trusted[0], "", func(m map[string]any) { ann(m)["chains.tekton.dev/signed"] = "true" }, true},
		{"a user writing tollgate.dev annotations is denied", "alice", "", func(m map[string]any) { ann(m)["tollgate.dev/anything"] = "x" }, false},
		{"status by a user is denied", "alice", "status", func(map[string]any) {}, false},
		{"status by Tekton is allowed", ids.TektonControllers[0], "status", func(map[string]any) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := update(tc.user, tc.sub, tc.mutate)
			if d.Allowed() != tc.allowed {
				t.Errorf("allowed = %v, want %v: %s", d.Allowed(), tc.allowed, d.Message())
			}
		})
	}
}

// FuzzAdmit: any bytes, as either kind, are decided or refused with an
// error; nothing panics, and an allowed run is always stamped with the digest
// of its (mutated) spec.
func FuzzAdmit(f *testing.F) {
	f.Add(true, []byte(taskRunJSON("builder", `{"steps":[`+safeStep+`]}`)))
	f.Add(false, []byte(`{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"p"},"spec":{"taskRunTemplate":{"serviceAccountName":"builder"},"pipelineSpec":{"tasks":[{"name":"a","taskSpec":{"steps":[`+safeStep+`]}},{"name":"b","taskRef":{"resolver":"hub","params":[{"name":"version","value":"0.9"}]}}],"finally":[{"name":"f","taskRef":{"name":"build"}}]},"taskRunSpecs":[{"pipelineTaskName":"a","serviceAccountName":"admin","podTemplate":{"hostNetwork":true}}]}}`))
	f.Add(false, []byte(`{"spec":{"pipelineRef":{"name":"x"}}}`))
	f.Add(true, []byte(`{"spec":{"taskSpec":{"stepTemplate":{"image":"x","securityContext":{"privileged":true}},"steps":[{"name":"a","ref":{"name":"sa"}}]}}}`))
	f.Fuzz(func(t *testing.T, taskRun bool, raw []byte) {
		kind := KindPipelineRun
		if taskRun {
			kind = KindTaskRun
		}
		a, err := Admit(context.Background(), cluster(), facts([]*Policy{BuiltinDefault()}, kind, raw))
		if err != nil {
			return
		}
		if a.Decision.Allowed() {
			d, err := specdigest.OfObject(a.Mutation.Object)
			if err != nil || d != a.Mutation.Digest {
				t.Fatalf("allowed run stamped %s, spec digests to %s (%v)", a.Mutation.Digest, d, err)
			}
		}
	})
}

// Tekton decodes runs case-sensitively (client-go); so must we, or a
// case-variant key ("SecurityContext") could overwrite what Tekton will run
// with a harmless-looking value in what we check.
func TestDecodeIsCaseSensitive(t *testing.T) {
	raw := `{"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[{"name":"s","image":"i",
		"securityContext":{"privileged":true},"SecurityContext":{"privileged":false}}]}}}`
	_, tr, err := Decode(KindTaskRun, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	sc := tr.Spec.TaskSpec.Steps[0].SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Fatalf("decoded securityContext %+v: a case-variant key overrode the one Tekton reads", sc)
	}
}

// The fields of one exemption narrow it: namespace AND pipeline AND task
// must all match (they used to widen it, so naming a task in one namespace
// exempted that task name everywhere).
func TestExemptionFieldsNarrow(t *testing.T) {
	raw := taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"limits":{"cpu":"1","memory":"1Gi"}`, `"limits":{}`, 1)+`]}`)
	for _, c := range []struct {
		name   string
		e      v1alpha1.Exemption
		exempt bool
	}{
		{"namespace and task both match", v1alpha1.Exemption{Namespaces: []string{"ns"}, Tasks: []string{"tr"}}, true},
		{"the task matches in another namespace", v1alpha1.Exemption{Namespaces: []string{"other"}, Tasks: []string{"tr"}}, false},
		{"the namespace matches for another task", v1alpha1.Exemption{Namespaces: []string{"ns"}, Tasks: []string{"other"}}, false},
		{"a pipeline exemption does not cover a standalone TaskRun", v1alpha1.Exemption{Namespaces: []string{"ns"}, Pipelines: []string{"release"}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.e.Reason, c.e.Checks = "ticket OPS-2", []v1alpha1.CheckName{v1alpha1.CheckResources}
			p, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.ClusterRunPolicySpec{Exemptions: []v1alpha1.Exemption{c.e}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := admit(t, cluster(), []*Policy{p}, KindTaskRun, raw)
			if a.Decision.Allowed() != c.exempt {
				t.Errorf("allowed=%v, want %v (exempted %+v, denials %v)", a.Decision.Allowed(), c.exempt, a.Decision.Exempted, a.Decision.Denials)
			}
		})
	}
}

// A git host allow-list denies references to other hosts, by url or by
// serverURL, and keeps the pinning rule.
func TestAllowedGitHosts(t *testing.T) {
	p, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "git"}, Spec: v1alpha1.ClusterRunPolicySpec{
		PinnedRefs: v1alpha1.PinnedRefsCheck{AllowedGitHosts: []string{"github.com"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := func(params string) string {
		return `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ns"},"spec":{"serviceAccountName":"builder","taskRef":{"resolver":"git","params":[` + params + `,{"name":"revision","value":"` + strings.Repeat("ab", 20) + `"}]}}}`
	}
	for name, c := range map[string]struct {
		params  string
		allowed bool
	}{
		"allowed host":            {`{"name":"url","value":"https://github.com/acme/tasks.git"}`, true},
		"other host":              {`{"name":"url","value":"https://evil.example/acme/tasks.git"}`, false},
		"userinfo trick":          {`{"name":"url","value":"https://github.com@evil.example/acme/tasks.git"}`, false},
		"scp-like other host":     {`{"name":"url","value":"git@evil.example:acme/tasks.git"}`, false},
		"serverURL of other host": {`{"name":"serverURL","value":"https://evil.example"},{"name":"org","value":"acme"},{"name":"repo","value":"tasks"}`, false},
		"no url: the default":     {`{"name":"org","value":"acme"},{"name":"repo","value":"tasks"}`, false},
	} {
		a := admit(t, cluster(), []*Policy{p}, KindTaskRun, ref(c.params))
		denied := false
		for _, v := range a.Decision.Denials {
			if v.Rule == "pinnedRefs" && strings.Contains(v.Message, "allowed git hosts") {
				denied = true
			}
		}
		if denied == c.allowed {
			t.Errorf("%s: denied=%v, want allowed=%v (%v)", name, denied, c.allowed, a.Decision.Denials)
		}
	}
}
