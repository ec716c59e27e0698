package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	kjson "sigs.k8s.io/json"

	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tollgate-dev/tollgate/policy/rego"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Document is one object read from a YAML or JSON stream.
type Document struct {
	// Source names where it came from: "file.yaml#2".
	Source     string
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	// Raw is the object as JSON.
	Raw []byte
}

// MaxDocumentSize bounds one document, like the API server's request limit.
const MaxDocumentSize = 3 << 20

// ParseDocuments splits a YAML (multi-document) or JSON stream into objects.
// A List kind is expanded into its items.
func ParseDocuments(data []byte, source string) ([]Document, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []Document
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		if len(raw) > MaxDocumentSize {
			return nil, fmt.Errorf("%s#%d: document is %d bytes, over the %d byte limit", source, i, len(raw), MaxDocumentSize)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name         string `json:"name"`
				GenerateName string `json:"generateName"`
				Namespace    string `json:"namespace"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &head); err != nil {
			return nil, fmt.Errorf("%s#%d: not an object: %w", source, i, err)
		}
		if head.Kind == "" || head.APIVersion == "" {
			return nil, fmt.Errorf("%s#%d: document has no apiVersion or kind", source, i)
		}
		if head.Kind == "List" {
			for j, item := range head.Items {
				sub, err := ParseDocuments(item, fmt.Sprintf("%s#%d.items[%d]", source, i, j))
				if err != nil {
					return nil, err
				}
				out = append(out, sub...)
			}
			continue
		}
		name := head.Metadata.Name
		if name == "" && head.Metadata.GenerateName != "" {
			name = head.Metadata.GenerateName + "<generated>"
		}
		out = append(out, Document{Source: fmt.Sprintf("%s#%d", source, i), APIVersion: head.APIVersion, Kind: head.Kind, Namespace: head.Metadata.Namespace, Name: name, Raw: raw})
	}
}

// IsRun reports whether d is a tekton.dev/v1 PipelineRun or TaskRun.
func (d *Document) IsRun() bool {
	return d.APIVersion == "tekton.dev/v1" && (d.Kind == KindPipelineRun || d.Kind == KindTaskRun)
}

// DecodeStrict decodes d into obj as the API server would: an unknown or
// duplicate field is an error naming the document.
func (d *Document) DecodeStrict(obj any) error {
	strict, err := kjson.UnmarshalStrict(d.Raw, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("%s: decoding %s: %w", d.Source, d.Kind, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%s: %s: %w", d.Source, d.Kind, errors.Join(strict...))
	}
	return nil
}

// StateFromDocuments decodes the cluster objects a StaticCluster holds.
// Kinds it does not model are an error, so a typo never silently drops RBAC.
func StateFromDocuments(docs []Document) (StaticObjects, error) {
	var s StaticObjects
	for _, d := range docs {
		var err error
		switch d.APIVersion + "/" + d.Kind {
		case "v1/Namespace":
			err = appendDecoded(d.Raw, &s.Namespaces)
		case "v1/ServiceAccount":
			err = appendDecoded(d.Raw, &s.ServiceAccounts)
		case "tekton.dev/v1/Task":
			err = appendDecoded(d.Raw, &s.Tasks)
		case "tekton.dev/v1/Pipeline":
			err = appendDecoded(d.Raw, &s.Pipelines)
		case "rbac.authorization.k8s.io/v1/Role":
			err = appendDecoded(d.Raw, &s.RBAC.Roles)
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			err = appendDecoded(d.Raw, &s.RBAC.ClusterRoles)
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			err = appendDecoded(d.Raw, &s.RBAC.RoleBindings)
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			err = appendDecoded(d.Raw, &s.RBAC.ClusterRoleBindings)
		default:
			err = fmt.Errorf("kind %s %s is not part of the cluster state (want Namespace, ServiceAccount, Task, Pipeline, Role, ClusterRole, RoleBinding, ClusterRoleBinding)", d.APIVersion, d.Kind)
		}
		if err != nil {
			return StaticObjects{}, fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	return s, nil
}

// PoliciesFromDocuments compiles ClusterRunPolicies, their Rego modules'
// ConfigMap references read through cms (nil: none may be referenced);
// any error is returned with the document it came from.
func PoliciesFromDocuments(docs []Document, cms rego.ConfigMaps) ([]*Policy, error) {
	var out []*Policy
	for _, d := range docs {
		if d.APIVersion != v1alpha1.GroupVersion.String() || d.Kind != "ClusterRunPolicy" {
			return nil, fmt.Errorf("%s: kind %s %s is not a ClusterRunPolicy", d.Source, d.APIVersion, d.Kind)
		}
		var p v1alpha1.ClusterRunPolicy
		if err := d.DecodeStrict(&p); err != nil {
			return nil, err
		}
		c, err := Compile(context.Background(), &p, cms)
		if err != nil {
			return nil, fmt.Errorf("%s: ClusterRunPolicy %q: %w", d.Source, p.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func appendDecoded[T any](raw []byte, to *[]T) error {
	var v T
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &v); err != nil {
		return err
	}
	*to = append(*to, v)
	return nil
}
