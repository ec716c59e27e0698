// Package benchdata holds the admission bodies the run guard's benchmarks
// send, in-process (webhook/runguard) and to the `tollgate webhook`
// process (testing/e2e), so both measure the same bytes.
package benchdata

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Namespace and ServiceAccount are where the benchmark run runs: the
// cluster the benchmark starts must hold them.
const (
	Namespace      = "team-a"
	ServiceAccount = "tekton-builder"
)

// PipelineRun is a PipelineRun with 5 inline tasks × 3 steps, every step
// restricted and limited, plus a hub reference: every check has work to
// do. With privileged, the second task's first step is privileged (the
// run guard denies it). annotations go on the run (nil: none).
func PipelineRun(privileged bool, annotations map[string]string) []byte {
	step := func(t, i int) map[string]any {
		sc := map[string]any{
			"runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}},
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		}
		if privileged && t == 1 && i == 0 {
			sc = map[string]any{"privileged": true}
		}
		return map[string]any{
			"name": fmt.Sprintf("step-%d", i), "image": "registry.example/tool@sha256:" + fmt.Sprintf("%064d", i),
			"script": "make build", "securityContext": sc,
			"computeResources": map[string]any{"limits": map[string]any{"cpu": "1", "memory": "1Gi"}},
		}
	}
	var tasks []any
	for t := 0; t < 5; t++ {
		tasks = append(tasks, map[string]any{
			"name": fmt.Sprintf("task-%d", t),
			"taskSpec": map[string]any{
				"steps": []any{step(t, 0), step(t, 1), step(t, 2)},
			},
		})
	}
	tasks = append(tasks, map[string]any{"name": "fetch", "taskRef": map[string]any{"resolver": "hub", "params": []any{
		map[string]any{"name": "name", "value": "git-clone"}, map[string]any{"name": "version", "value": "0.9"},
	}}})
	meta := map[string]any{"name": "bench", "namespace": Namespace}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
		"metadata": meta,
		"spec": map[string]any{
			"taskRunTemplate": map[string]any{"serviceAccountName": ServiceAccount},
			"pipelineSpec":    map[string]any{"tasks": tasks},
		},
	})
	if err != nil {
		panic(err) // maps of strings: cannot fail
	}
	return b
}

// Review is the AdmissionReview the API server sends for a CREATE of the
// PipelineRun obj by user.
func Review(obj []byte, user string) []byte {
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             types.UID("705ab4f5-6393-11e8-b7cc-42010a800002"),
			Kind:            metav1.GroupVersionKind{Group: "tekton.dev", Version: "v1", Kind: "PipelineRun"},
			Resource:        metav1.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: "pipelineruns"},
			RequestKind:     &metav1.GroupVersionKind{Group: "tekton.dev", Version: "v1", Kind: "PipelineRun"},
			RequestResource: &metav1.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: "pipelineruns"},
			Namespace:       Namespace, Name: "bench", Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: user, UID: "4d3b2a10-0000-0000-0000-000000000001",
				Groups: []string{"system:authenticated"}},
			Object:  runtime.RawExtension{Raw: obj},
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-create","fieldValidation":"Strict"}`)},
			DryRun:  new(bool),
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}
