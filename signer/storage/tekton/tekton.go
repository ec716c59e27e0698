// Package tekton stores what the signer signed on the run itself, in Tekton
// Chains' annotations: chains.tekton.dev/payload-<key>, signature-<key>,
// cert-<key> and chain-<key>, each base64, where <key> is taskrun-<uid> or
// pipelinerun-<uid>.
package tekton

import (
	"encoding/base64"
	"fmt"
)

// Annotation name formats (Chains' own).
const (
	PayloadAnnotation   = "chains.tekton.dev/payload-%s"
	SignatureAnnotation = "chains.tekton.dev/signature-%s"
	CertAnnotation      = "chains.tekton.dev/cert-%s"
	ChainAnnotation     = "chains.tekton.dev/chain-%s"
)

// MaxAnnotationBytes is the API server's limit on all annotations of an object.
const MaxAnnotationBytes = 256 << 10

// Key returns the short key of a run: "taskrun-<uid>" or "pipelinerun-<uid>".
func Key(kind, uid string) string {
	switch kind {
	case "TaskRun":
		return "taskrun-" + uid
	case "PipelineRun":
		return "pipelinerun-" + uid
	}
	return kind + "-" + uid
}

// Annotations returns the annotations that store a signed payload. existing
// are the run's current annotations: a result that would exceed the API
// server's limit is an error that says by how much, so the run is marked
// failed with a reason rather than a patch rejected later.
func Annotations(key string, payload, signature, cert, chain []byte, existing map[string]string) (map[string]string, error) {
	out := map[string]string{
		fmt.Sprintf(PayloadAnnotation, key):   base64.StdEncoding.EncodeToString(payload),
		fmt.Sprintf(SignatureAnnotation, key): base64.StdEncoding.EncodeToString(signature),
		fmt.Sprintf(CertAnnotation, key):      base64.StdEncoding.EncodeToString(cert),
		fmt.Sprintf(ChainAnnotation, key):     base64.StdEncoding.EncodeToString(chain),
	}
	total := 0
	for k, v := range existing {
		if _, replaced := out[k]; !replaced {
			total += len(k) + len(v)
		}
	}
	for k, v := range out {
		total += len(k) + len(v)
	}
	if total > MaxAnnotationBytes {
		return nil, fmt.Errorf("the signed payload does not fit in the run's annotations: %d bytes, the limit is %d (use oci storage for large provenance)", total, MaxAnnotationBytes)
	}
	return out, nil
}
