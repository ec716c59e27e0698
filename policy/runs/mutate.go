package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Mutation is the result of the mutating path for one run.
type Mutation struct {
	// Object is the mutated object, as JSON, when defaults were written
	// (or once Apply has run); nil when only the stamp is written.
	Object []byte
	// Digest is the spec digest stamped into the annotation.
	Digest string
	// Defaulted lists what was written, one line each, for logs and `check`.
	Defaulted []string
	// Annotations are the stamp's annotations (the digest, and its MAC when
	// keys are in force). HasAnnotations says whether the object already
	// has metadata.annotations (a JSON patch adds the map or the keys).
	Annotations    map[string]string
	HasAnnotations bool
}

// MutateRun is the mutating path for a CREATE review: default limits are
// written into inline steps and sidecars that lack them, and the spec
// digest (with its MAC, under f.Keys) is stamped over the result. When no
// policy writes defaults — the common case — only the stamp is computed,
// reading nothing of the run but its spec and annotations. f.Run is
// gathered when needed and not yet set.
func MutateRun(ctx context.Context, cluster Cluster, f *Facts) (*Mutation, error) {
	r := &f.Review
	if !NeedsDefaults(f.Policies) {
		st, err := StampOf(r.Object)
		if err != nil {
			return nil, err
		}
		return &Mutation{Digest: st.Digest, Annotations: st.Annotations(f.Keys, r.Namespace, r.Kind), HasAnnotations: st.HasAnnotations}, nil
	}
	if f.Run == nil {
		if err := f.Gather(ctx, cluster); err != nil {
			return nil, err
		}
	}
	m, err := mutate(f.Policies, f.Run, r.Object, f.Keys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRun, err)
	}
	return m, nil
}

// Apply returns the mutated object: Object, or raw with the stamp
// annotations written when only the stamp was computed.
func (m *Mutation) Apply(raw []byte) ([]byte, error) {
	if m.Object != nil {
		return m.Object, nil
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	ann := annotationMap(obj)
	for k, v := range m.Annotations {
		ann[k] = v
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding object: %w", err)
	}
	return out, nil
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: decoding object: %w", ErrInvalidRun, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: the object is null", ErrInvalidRun)
	}
	return obj, nil
}

// annotationMap returns obj's metadata.annotations, creating it.
func annotationMap(obj map[string]any) map[string]any {
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	return ann
}

// mutate writes the configured default limits into inline steps and
// sidecars that lack them, then stamps the spec digest annotation over the
// resulting spec. raw is the object as the API server sent it; in must be
// gathered from the same object. It is idempotent, so a reinvocation after
// other mutating webhooks restamps the digest over their changes. With
// keys, the stamp's MAC is written too (in.Namespace and in.Kind).
func mutate(policies []*Policy, in *Input, raw []byte, keys *specdigest.Keys) (*Mutation, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	m := &Mutation{}
	if defaults := defaultLimits(policies); len(defaults) > 0 {
		for i := range in.Units {
			u := &in.Units[i]
			if u.Spec == nil || !u.Inline {
				continue
			}
			a, err := assemble(u)
			if err != nil {
				continue // reported by the validating path
			}
			for _, c := range a.Containers {
				if c.FromRef {
					continue
				}
				for _, name := range sortedNames(defaults) {
					if _, ok := c.C.Resources.Limits[name]; ok {
						continue
					}
					q := defaults[name]
					p := c.Path.Child("computeResources", "limits", string(name))
					if err := setPath(obj, p, q.String()); err != nil {
						return nil, fmt.Errorf("writing default %s: %w", p, err)
					}
					m.Defaulted = append(m.Defaulted, fmt.Sprintf("task %q %s: %s = %s", u.Task, c.Label, p, q.String()))
				}
			}
		}
	}
	var specJSON []byte
	spec, ok := obj["spec"]
	if !ok {
		return nil, fmt.Errorf("object has no spec")
	}
	specJSON, err = json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	if m.Digest, err = specdigest.OfSpec(specJSON); err != nil {
		return nil, err
	}
	ann := annotationMap(obj)
	st := &Stamp{Digest: m.Digest}
	m.Annotations = st.Annotations(keys, in.Namespace, in.Kind)
	for k, v := range m.Annotations {
		ann[k] = v
	}
	if m.Object, err = json.Marshal(obj); err != nil {
		return nil, fmt.Errorf("encoding object: %w", err)
	}
	return m, nil
}

// defaultLimits returns the default limits of the first policy (by name) that
// has the resources check on and sets defaults.
func defaultLimits(policies []*Policy) map[corev1.ResourceName]resource.Quantity {
	for _, p := range policies {
		if p.mode(v1alpha1.CheckResources) != v1alpha1.Off && len(p.defaults) > 0 {
			return p.defaults
		}
	}
	return nil
}

// setPath sets the value at a field path (as field.Path prints it) in a
// decoded JSON object, creating objects on the way; arrays must exist.
func setPath(obj map[string]any, p *field.Path, value any) error {
	segs, err := segments(p.String())
	if err != nil {
		return err
	}
	var cur any = obj
	for i, s := range segs {
		last := i == len(segs)-1
		switch k := s.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: not an object", p)
			}
			if last {
				m[k] = value
				return nil
			}
			next, ok := m[k]
			if !ok || next == nil {
				if _, isIdx := segs[i+1].(int); isIdx {
					return fmt.Errorf("%s: missing array %q", p, k)
				}
				next = map[string]any{}
				m[k] = next
			}
			cur = next
		case int:
			a, ok := cur.([]any)
			if !ok || k >= len(a) {
				return fmt.Errorf("%s: index %d out of range", p, k)
			}
			if last {
				a[k] = value
				return nil
			}
			cur = a[k]
		}
	}
	return nil
}

// segments splits "a.b[1].c" into "a", "b", 1, "c".
func segments(s string) ([]any, error) {
	var out []any
	for i := 0; i < len(s); {
		switch s[i] {
		case '.':
			i++
		case '[':
			j := i + 1
			for j < len(s) && s[j] != ']' {
				j++
			}
			if j == len(s) {
				return nil, fmt.Errorf("path %q: unclosed [", s)
			}
			n, err := strconv.Atoi(s[i+1 : j])
			if err != nil {
				return nil, fmt.Errorf("path %q: index %q: %w", s, s[i+1:j], err)
			}
			out = append(out, n)
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, nil
}

// NeedsDefaults reports whether any of the policies writes default limits,
// that is, whether the mutating path must look inside the run at all.
func NeedsDefaults(policies []*Policy) bool { return len(defaultLimits(policies)) > 0 }

// Stamp is the mutating path when no defaults are configured: only the spec
// digest annotation is written. It reads the object once and decodes nothing
// but the annotations; HasAnnotations says whether metadata.annotations
// exists (a JSON patch adds the map or the key accordingly).
type Stamp struct {
	Digest         string
	HasAnnotations bool
}

// Annotations are the stamp's annotations: the digest, and its MAC when
// keys are in force.
func (s *Stamp) Annotations(keys *specdigest.Keys, namespace, kind string) map[string]string {
	out := map[string]string{specdigest.Annotation: s.Digest}
	if keys != nil {
		out[specdigest.MACAnnotation] = keys.Sign(namespace, kind, s.Digest)
	}
	return out
}

// StampOf computes the stamp of a run given as raw JSON, reading the
// object once: the spec digest and, from the same pass, the metadata.
func StampOf(raw []byte) (*Stamp, error) {
	d, metadata, err := specdigest.OfObjectWith(raw, "metadata")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRun, err)
	}
	var meta struct {
		Annotations map[string]string `json:"annotations"`
	}
	if metadata != nil {
		if err := apijson.Unmarshal(metadata, &meta); err != nil {
			return nil, fmt.Errorf("%w: decoding metadata: %w", ErrInvalidRun, err)
		}
	}
	return &Stamp{Digest: d, HasAnnotations: meta.Annotations != nil}, nil
}
