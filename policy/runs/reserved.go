package runs

import (
	"fmt"
	"slices"
	"sort"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Kinds whose metadata Tekton copies into runs.
const (
	KindTask     = "Task"
	KindPipeline = "Pipeline"
)

// SignerFinalizer keeps a finished run until the signer has signed it.
const SignerFinalizer = "tollgate.dev/signer"

// signedAnnotation is the signer's verdict (Chains' name).
const signedAnnotation = "chains.tekton.dev/signed"

// embeddedMeta is every place in a run, Task or Pipeline whose annotations
// Tekton copies into the runs it creates: a PipelineRun's
// taskRunSpecs[].metadata, and an embedded task's metadata in
// pipelineSpec/spec tasks[] and finally[].
type embeddedMeta struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
		Finalizers  []string          `json:"finalizers"`
	} `json:"metadata"`
	Spec struct {
		TaskRunSpecs []struct {
			PipelineTaskName string `json:"pipelineTaskName"`
			Metadata         *struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		} `json:"taskRunSpecs"`
		PipelineSpec *pipelineTasks `json:"pipelineSpec"`
		pipelineTasks
	} `json:"spec"`
}

type pipelineTasks struct {
	Tasks   []embeddedTask `json:"tasks"`
	Finally []embeddedTask `json:"finally"`
}

type embeddedTask struct {
	Name     string `json:"name"`
	TaskSpec *struct {
		Metadata *struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	} `json:"taskSpec"`
}

// reservedInEmbedded returns a finding for each reserved annotation written
// where Tekton copies it from into the runs it creates.
func reservedInEmbedded(m *embeddedMeta) []finding {
	var copied []Annotated
	for i, s := range m.Spec.TaskRunSpecs {
		if s.Metadata != nil {
			copied = append(copied, Annotated{fmt.Sprintf("spec.taskRunSpecs[%d].metadata.annotations", i), s.Metadata.Annotations})
		}
	}
	tasks := func(prefix string, pt *pipelineTasks) {
		for what, list := range map[string][]embeddedTask{"tasks": pt.Tasks, "finally": pt.Finally} {
			for i, t := range list {
				if t.TaskSpec != nil && t.TaskSpec.Metadata != nil {
					copied = append(copied, Annotated{fmt.Sprintf("%s.%s[%d].taskSpec.metadata.annotations", prefix, what, i), t.TaskSpec.Metadata.Annotations})
				}
			}
		}
	}
	if m.Spec.PipelineSpec != nil {
		tasks("spec.pipelineSpec", m.Spec.PipelineSpec)
	}
	tasks("spec", &m.Spec.pipelineTasks)
	return reservedIn(copied)
}

// reservedIn returns a finding for each reserved annotation among those
// Tekton copies into the runs it creates, in field order.
func reservedIn(copied []Annotated) []finding {
	var fs []finding
	for _, c := range copied {
		keys := make([]string, 0, len(c.Annotations))
		for k := range c.Annotations {
			if reserved(k) && !userSettable[k] {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fs = append(fs, finding{check: v1alpha1.CheckSpecIntegrity, object: c.Field,
				message: fmt.Sprintf("annotation %s is reserved for Tollgate's signer; Tekton would copy it into the runs it creates", k),
				fix:     "remove the annotation; the signer writes it when it signs"})
		}
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].object < fs[j].object })
	return fs
}

// finalizerRemoved returns a finding when a user other than the signer
// removes the signer's finalizer before the signer has decided (signed
// "true" or "failed"): the run could be deleted unsigned, its results gone.
func finalizerRemoved(oldRaw, newRaw []byte, user string, ids Identities) ([]finding, error) {
	if slices.Contains(ids.Trusted, user) {
		return nil, nil
	}
	var o, n embeddedMeta
	if err := apijson.Unmarshal(oldRaw, &o); err != nil {
		return nil, err
	}
	if !slices.Contains(o.Metadata.Finalizers, SignerFinalizer) {
		return nil, nil
	}
	if err := apijson.Unmarshal(newRaw, &n); err != nil {
		return nil, err
	}
	if slices.Contains(n.Metadata.Finalizers, SignerFinalizer) {
		return nil, nil
	}
	switch n.Metadata.Annotations[signedAnnotation] {
	case "true", "failed":
		return nil, nil
	}
	return []finding{{check: v1alpha1.CheckSpecIntegrity, object: "metadata.finalizers",
		message: fmt.Sprintf("finalizer %s may be removed only by Tollgate's signer before it has signed the run; %q is not the signer", SignerFinalizer, user),
		fix:     "let the signer sign the run (it removes the finalizer); if the signer is gone, an administrator listed in the webhook's --trusted-users may remove it"}}, nil
}

// CheckDefinition decides a Task or Pipeline (CREATE, UPDATE): it must not
// carry reserved annotations, on itself or on an embedded task, because
// Tekton copies them into every run it creates from it.
func CheckDefinition(policies []*Policy, kind, namespace, name string, raw []byte, user string, ids Identities) policy.Decision {
	in := &Input{Kind: kind, Namespace: namespace, Name: name}
	d := policy.Decision{Subject: in.Subject()}
	if slices.Contains(ids.Trusted, user) {
		return d
	}
	var m embeddedMeta
	if err := apijson.Unmarshal(raw, &m); err != nil {
		return applyFindings(d, policies, in, []finding{{check: v1alpha1.CheckSpecIntegrity, object: "metadata", message: "decoding " + kind + ": " + err.Error(), fix: "send a valid object"}})
	}
	fs := reservedInEmbedded(&m)
	var own []string
	for k := range m.Metadata.Annotations {
		if reserved(k) && !userSettable[k] {
			own = append(own, k)
		}
	}
	sort.Strings(own)
	for _, k := range own {
		fs = append(fs, finding{check: v1alpha1.CheckSpecIntegrity, object: "metadata.annotations",
			message: fmt.Sprintf("annotation %s is reserved for Tollgate's signer; Tekton copies a %s's annotations into its runs", k, kind),
			fix:     "remove the annotation"})
	}
	return applyFindings(d, policies, in, fs)
}
