package runs

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestEvaluatePodTektonContainers: Tekton's own init containers without a
// security context (Tekton's default, set-security-context off) are denied
// under the restricted profile, and the fix names Tekton's feature flag —
// no step, stepTemplate or podTemplate reaches them — while a step's
// finding keeps the step's fix.
func TestEvaluatePodTektonContainers(t *testing.T) {
	restricted := &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "build-pod", Labels: map[string]string{LabelTaskRun: "build"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "prepare", Image: "entrypoint"}},
			Containers: []corev1.Container{{Name: "step-build", Image: "tools", SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true),
				Capabilities: restricted.Capabilities, SeccompProfile: restricted.SeccompProfile}}},
		}}
	d := EvaluatePod([]*Policy{BuiltinDefault()}, pod, PodOwner{TaskRun: "build"})
	var tekton, step int
	for _, v := range d.Denials {
		switch {
		case strings.Contains(v.Step, `init container "prepare"`) || strings.Contains(v.Field, "initContainers"):
			tekton++
			if !strings.Contains(v.Fix, "set-security-context") {
				t.Errorf("Tekton's container: fix %q", v.Fix)
			}
		default:
			step++
			if strings.Contains(v.Fix, "set-security-context") {
				t.Errorf("a step's finding names Tekton's flag: %q", v.Fix)
			}
		}
	}
	if tekton == 0 || step == 0 {
		t.Fatalf("findings: %d for Tekton's container, %d for the step: %+v", tekton, step, d.Denials)
	}
}
