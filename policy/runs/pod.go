package runs

import (
	"fmt"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Tekton's Pod labels.
const (
	LabelTaskRun      = "tekton.dev/taskRun"
	LabelPipelineTask = "tekton.dev/pipelineTask"
	LabelTask         = "tekton.dev/task"
	LabelPipeline     = "tekton.dev/pipeline"
)

// PodOwner is what a Tekton Pod's owners say it runs, resolved from owner
// references (the Pod's controller TaskRun, that TaskRun's controller
// PipelineRun, each checked by UID) — never from the Pod's labels, which
// whoever writes a TaskRun sets. Exemptions by pipeline or task apply to a
// Pod only through it; a Pod without a verified owner has no pipeline or
// task, so only namespace exemptions apply to it.
type PodOwner struct {
	// TaskRun is the controlling TaskRun's name ("" when unverified).
	TaskRun string
	// PipelineTask is the pipeline task the TaskRun runs (from its
	// PipelineRun's status.childReferences).
	PipelineTask string
	// PipelineName is the cluster Pipeline the PipelineRun references.
	PipelineName string
	// TaskName is the cluster Task the TaskRun references.
	TaskName string
	// TaskSpec is the Task spec Tekton stored on the TaskRun
	// (status.taskSpec) while it resolved it: its steps' StepAction
	// references are checked for pinning, which admission could not do for
	// a remote Task or for a cluster Task edited since.
	TaskSpec *pipelinev1.TaskSpec
}

// EvaluatePod applies podSecurity and resources to a Pod Tekton creates for a
// TaskRun. This is where Tasks resolved remotely (hub, git, bundles) and
// StepActions are checked: only now is their content known.
func EvaluatePod(policies []*Policy, pod *corev1.Pod, owner PodOwner) policy.Decision {
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "<generated>"
	}
	d := policy.Decision{Subject: fmt.Sprintf("Pod %s/%s (TaskRun %s)", pod.Namespace, name, pod.Labels[LabelTaskRun])}
	// Messages name the task as the Pod's labels say; exemptions go by what
	// the owners say.
	task := pod.Labels[LabelPipelineTask]
	if task == "" {
		task = pod.Labels[LabelTaskRun]
	}
	u := &Unit{Task: task, TaskName: pod.Labels[LabelTask], Path: field.NewPath("spec")}
	verified := &Unit{Task: owner.PipelineTask, TaskName: owner.TaskName}
	if verified.Task == "" {
		verified.Task = owner.TaskRun
	}
	in := &Input{Kind: "Pod", Namespace: pod.Namespace, Name: name, PipelineName: owner.PipelineName}
	all := podContainers(pod)
	stepRefs := podStepRefs(pod, owner, u)
	for _, p := range policies {
		ex := newExempter(p, in)
		ex.unit = verified
		report := func(check v1alpha1.CheckName, fs []finding) { route(&d, p, ex, check, fs) }
		if len(stepRefs.Refs) > 0 && p.mode(v1alpha1.CheckPinnedRefs) != v1alpha1.Off {
			report(v1alpha1.CheckPinnedRefs, checkPinnedRefs(p, stepRefs))
		}
		if p.mode(v1alpha1.CheckPodSecurity) != v1alpha1.Off {
			report(v1alpha1.CheckPodSecurity, podSecurity(p, pod, all, u))
		}
		if p.mode(v1alpha1.CheckResources) != v1alpha1.Off {
			report(v1alpha1.CheckResources, podResources(p, all, u))
		}
	}
	return d
}

// podContainer is one container of a Tekton Pod, as messages name it.
type podContainer struct {
	c     corev1.Container
	path  *field.Path
	label string
	user  bool // a step or sidecar, as opposed to Tekton's own init containers
}

func podContainers(pod *corev1.Pod) []podContainer {
	var all []podContainer
	for i, c := range pod.Spec.InitContainers {
		all = append(all, podContainer{c, field.NewPath("spec", "initContainers").Index(i), fmt.Sprintf("init container %q", c.Name), false})
	}
	for i, c := range pod.Spec.Containers {
		label, user := fmt.Sprintf("container %q", c.Name), false
		if s, ok := strings.CutPrefix(c.Name, "step-"); ok {
			label, user = fmt.Sprintf("step %q", s), true
		} else if s, ok := strings.CutPrefix(c.Name, "sidecar-"); ok {
			label, user = fmt.Sprintf("sidecar %q", s), true
		}
		all = append(all, podContainer{c, field.NewPath("spec", "containers").Index(i), label, user})
	}
	return all
}

// podStepRefs are the remote StepAction references of the Task the Pod
// runs, as its TaskRun's status recorded it.
func podStepRefs(pod *corev1.Pod, owner PodOwner, u *Unit) *Input {
	var refs Input
	ts := owner.TaskSpec
	if ts == nil {
		return &refs
	}
	refs.Units = []Unit{*u}
	for i, s := range ts.Steps {
		if s.Ref != nil && s.Ref.Resolver != "" {
			refs.Refs = append(refs.Refs, Ref{Kind: "StepAction", Task: u.Task, Step: s.Name, Path: field.NewPath("status", "taskSpec", "steps").Index(i).Child("ref"),
				Object: "TaskRun " + pod.Namespace + "/" + owner.TaskRun, Name: s.Ref.Name, Resolver: string(s.Ref.Resolver), Params: s.Ref.Params})
		}
	}
	return &refs
}

// podSecurity evaluates Pod Security Admission on the pod-level fields,
// then on each container alone (so each finding names its container).
func podSecurity(p *Policy, pod *corev1.Pod, all []podContainer, u *Unit) []finding {
	podLevel := pod.Spec.DeepCopy()
	podLevel.Containers, podLevel.InitContainers, podLevel.EphemeralContainers = nil, nil, nil
	var fs []finding
	for _, r := range psaEvaluator.EvaluatePod(p.psa, &pod.ObjectMeta, podLevel) {
		if !r.Allowed {
			fs = append(fs, finding{check: v1alpha1.CheckPodSecurity, unit: u, path: field.NewPath("spec"),
				message: fmt.Sprintf("pod: %s: %s (level %s)", r.ForbiddenReason, r.ForbiddenDetail, p.psa.String()), fix: psaFix(r.ForbiddenReason)})
		}
	}
	for _, c := range all {
		one := corev1.PodSpec{SecurityContext: pod.Spec.SecurityContext, Containers: []corev1.Container{c.c}}
		for _, r := range psaEvaluator.EvaluatePod(p.psa, &pod.ObjectMeta, &one) {
			if !r.Allowed {
				fix := psaFix(r.ForbiddenReason)
				if !c.user {
					fix = tektonContainerFix
				}
				fs = append(fs, finding{check: v1alpha1.CheckPodSecurity, unit: u, path: c.path.Child("securityContext"), step: c.label,
					message: fmt.Sprintf("%s: %s (level %s)", r.ForbiddenReason, r.ForbiddenDetail, p.psa.String()), fix: fix})
			}
		}
	}
	return fs
}

// tektonContainerFix is the fix for Tekton's own containers (prepare,
// place-scripts, working-dir-initializer): no step, stepTemplate or
// podTemplate reaches them; Tekton's feature flag does.
const tektonContainerFix = `set set-security-context: "true" in Tekton's feature-flags ConfigMap (namespace tekton-pipelines): Tekton then gives its own containers a restricted security context`

// podResources checks the limits of the steps and sidecars (Tekton's own
// init containers are not the user's to limit).
func podResources(p *Policy, all []podContainer, u *Unit) []finding {
	var fs []finding
	for _, c := range all {
		if !c.user {
			continue
		}
		if miss := missingLimits(&c.c); len(miss) > 0 {
			names := make([]string, len(miss))
			for i, m := range miss {
				names[i] = string(m)
			}
			fs = append(fs, finding{check: v1alpha1.CheckResources, unit: u, path: c.path.Child("resources", "limits"), step: c.label,
				message: "no " + strings.Join(names, " or ") + " limit", fix: "set computeResources.limits on the step in the Task (or stepSpecs in the run)"})
		}
		for _, rn := range sortedNames(p.maxima) {
			max := p.maxima[rn]
			if q, ok := c.c.Resources.Limits[rn]; ok && q.Cmp(max) > 0 {
				fs = append(fs, finding{check: v1alpha1.CheckResources, unit: u, path: c.path.Child("resources", "limits", string(rn)), step: c.label,
					message: fmt.Sprintf("%s limit %s exceeds the maximum %s", rn, q.String(), max.String()), fix: fmt.Sprintf("lower the %s limit to at most %s", rn, max.String())})
			}
		}
	}
	return fs
}
