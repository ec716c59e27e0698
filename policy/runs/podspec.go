package runs

import (
	"fmt"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// container is one step or sidecar as Tekton would run it, with where it is written.
type container struct {
	// Label names it in messages: `step "build"` or `sidecar "db"`.
	Label string
	// Name is the step or sidecar name.
	Name string
	// Path locates it in SpecObject (or the run).
	Path *field.Path
	// FromRef is true for a step that refers to a StepAction: its container is
	// only known when Tekton resolves it.
	FromRef bool
	// C is the container after stepTemplate, stepSpecs/sidecarSpecs and task
	// compute resources are applied.
	C corev1.Container
}

// assembled is the Pod Tekton would build for a unit, as far as the user controls it.
type assembled struct {
	Pod        corev1.PodSpec // pod-level fields only; no containers
	Containers []container
}

// assemble merges a unit the way Tekton's Pod builder does: stepTemplate into
// steps, stepSpecs and sidecarSpecs over them, task-level compute resource
// limits onto every step, and the podTemplate's pod-level fields and volumes.
func assemble(u *Unit) (*assembled, error) {
	spec := u.Spec
	steps := append([]pipelinev1.Step(nil), spec.Steps...)
	steps, err := pipelinev1.MergeStepsWithStepTemplate(spec.StepTemplate, steps)
	if err != nil {
		return nil, fmt.Errorf("merging stepTemplate into steps: %w", err)
	}
	if len(u.StepSpecs) > 0 {
		if steps, err = pipelinev1.MergeStepsWithSpecs(steps, u.StepSpecs); err != nil {
			return nil, fmt.Errorf("applying stepSpecs: %w", err)
		}
	}
	sidecars := append([]pipelinev1.Sidecar(nil), spec.Sidecars...)
	sidecars, err = pipelinev1.MergeSidecarsWithSpecs(sidecars, u.SidecarSpecs)
	if err != nil {
		return nil, fmt.Errorf("applying sidecarSpecs: %w", err)
	}
	a := &assembled{Containers: make([]container, 0, len(steps)+len(sidecars))}
	for i := range steps {
		s := &steps[i]
		c := s.ToK8sContainer()
		c.Name = "step-" + s.Name
		if u.ComputeResources != nil && len(u.ComputeResources.Limits) > 0 {
			if c.Resources.Limits == nil {
				c.Resources.Limits = corev1.ResourceList{}
			} else {
				c.Resources.Limits = c.Resources.Limits.DeepCopy()
			}
			for k, v := range u.ComputeResources.Limits {
				c.Resources.Limits[k] = v
			}
		}
		a.Containers = append(a.Containers, container{
			Label:   fmt.Sprintf("step %q", s.Name),
			Name:    s.Name,
			Path:    u.SpecPath.Child("steps").Index(i),
			FromRef: s.Ref != nil,
			C:       *c,
		})
	}
	for i := range sidecars {
		s := &sidecars[i]
		c := s.ToK8sContainer()
		c.Name = "sidecar-" + s.Name
		a.Containers = append(a.Containers, container{
			Label: fmt.Sprintf("sidecar %q", s.Name),
			Name:  s.Name,
			Path:  u.SpecPath.Child("sidecars").Index(i),
			C:     *c,
		})
	}
	a.Pod.Volumes = appendVolumes(a.Pod.Volumes, spec.Volumes)
	if t := u.PodTemplate; t != nil {
		a.Pod.SecurityContext = t.SecurityContext
		a.Pod.HostNetwork = t.HostNetwork
		a.Pod.HostUsers = t.HostUsers
		a.Pod.Volumes = appendVolumes(a.Pod.Volumes, t.Volumes)
		a.Pod.RuntimeClassName = t.RuntimeClassName
	}
	return a, nil
}

// appendVolumes appends vs as the Pod will have them: the API server
// defaults a volume with no source to an emptyDir (SetDefaults_Volume)
// before Pod Security Admission sees it, so PSA admits it, and so do we.
func appendVolumes(to, vs []corev1.Volume) []corev1.Volume {
	for _, v := range vs {
		if v.VolumeSource == (corev1.VolumeSource{}) {
			v.EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
		to = append(to, v)
	}
	return to
}
