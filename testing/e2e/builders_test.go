package e2e

import (
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// restricted is a securityContext that meets the restricted profile.
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To[int64](65532),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func limits(cpu, mem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
	}}
}

// safeStep is a step every built-in check accepts.
func safeStep(name string) pipelinev1.Step {
	return pipelinev1.Step{
		Name:             name,
		Image:            "registry.example/tools@sha256:4e3c8e2c1d6a1b0e6f6c4f1a8e2c3d4b5a697886756453423120100f0e0d0c0b",
		Script:           "echo " + name,
		SecurityContext:  restricted(),
		ComputeResources: limits("500m", "256Mi"),
	}
}

// pipelineRun returns a PipelineRun with inline tasks of the given steps.
func pipelineRun(ns, name, sa string, tasks map[string][]pipelinev1.Step, order ...string) *pipelinev1.PipelineRun {
	pr := &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: pipelinev1.PipelineRunSpec{
			TaskRunTemplate: pipelinev1.PipelineTaskRunTemplate{ServiceAccountName: sa},
			PipelineSpec:    &pipelinev1.PipelineSpec{},
		},
	}
	for _, n := range order {
		pr.Spec.PipelineSpec.Tasks = append(pr.Spec.PipelineSpec.Tasks, pipelinev1.PipelineTask{
			Name:     n,
			TaskSpec: &pipelinev1.EmbeddedTask{TaskSpec: pipelinev1.TaskSpec{Steps: tasks[n]}},
		})
	}
	return pr
}

// taskRun returns a TaskRun with an inline spec of the given steps.
func taskRun(ns, name, sa string, steps ...pipelinev1.Step) *pipelinev1.TaskRun {
	return &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: pipelinev1.TaskRunSpec{
			ServiceAccountName: sa,
			TaskSpec:           &pipelinev1.TaskSpec{Steps: steps},
		},
	}
}
