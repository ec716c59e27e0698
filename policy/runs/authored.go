package runs

import (
	"encoding/json"
	"fmt"

	kjson "sigs.k8s.io/json"
)

// Authored is a live run (JSON, as the API server serves it) as its author
// wrote it, for deciding it again as on its CREATE: apiVersion, kind, the
// name, namespace, labels and annotations, and the spec. The status, the
// metadata the server sets (uid, resourceVersion, managedFields, owner
// references, finalizers) and the reserved annotations (the stamp, the
// signer's, Chains') are left out: nobody's CREATE carries them. Errors
// wrap ErrInvalidRun.
func Authored(live []byte) ([]byte, error) {
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name,omitempty"`
			Namespace   string            `json:"namespace,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec,omitempty"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(live, &obj); err != nil {
		return nil, fmt.Errorf("%w: decoding the run: %w", ErrInvalidRun, err)
	}
	for k := range obj.Metadata.Annotations {
		if reserved(k) && !userSettable[k] {
			delete(obj.Metadata.Annotations, k)
		}
	}
	if len(obj.Metadata.Annotations) == 0 {
		obj.Metadata.Annotations = nil
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the run: %w", ErrInvalidRun, err)
	}
	return out, nil
}
