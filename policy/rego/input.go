package rego

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Value is the parsed input rules see.
type Value = ast.Value

// Input converts a JSON-shaped Go value into the value rules see, once per
// request, shared by every policy's program.
func Input(v any) (Value, error) {
	return ast.InterfaceToValue(v)
}

// ConfigMaps reads the data of a ConfigMap (nil: references cannot be read here).
type ConfigMaps func(ctx context.Context, namespace, name string) (map[string]string, error)

// Sources returns the modules of a policy's rego list, reading ConfigMap
// references. Module names are "POLICY/NAME".
func Sources(ctx context.Context, policy string, mods []v1alpha1.RegoModule, cms ConfigMaps) ([]Module, error) {
	out := make([]Module, 0, len(mods))
	for i, m := range mods {
		src := m.Module
		switch {
		case m.ConfigMapRef != nil && m.Module == "":
			if cms == nil {
				return nil, fmt.Errorf("spec.rego[%d] (%s): ConfigMap %s/%s cannot be read here; put the module inline", i, m.Name, m.ConfigMapRef.Namespace, m.ConfigMapRef.Name)
			}
			data, err := cms(ctx, m.ConfigMapRef.Namespace, m.ConfigMapRef.Name)
			if err != nil {
				return nil, fmt.Errorf("spec.rego[%d] (%s): reading ConfigMap %s/%s: %w", i, m.Name, m.ConfigMapRef.Namespace, m.ConfigMapRef.Name, err)
			}
			var ok bool
			if src, ok = data[m.ConfigMapRef.Key]; !ok {
				return nil, fmt.Errorf("spec.rego[%d] (%s): ConfigMap %s/%s has no key %q", i, m.Name, m.ConfigMapRef.Namespace, m.ConfigMapRef.Name, m.ConfigMapRef.Key)
			}
		case m.Module != "" && m.ConfigMapRef == nil:
		default:
			return nil, fmt.Errorf("spec.rego[%d] (%s): give the module inline or by configMapRef", i, m.Name)
		}
		out = append(out, Module{Name: policy + "/" + m.Name, Source: src})
	}
	return out, nil
}

// InputWith is Input(doc) with one more key whose value was parsed by
// ParseJSON (the admitted object: the large part of every input, parsed
// once per request); nil leaves the key out.
func InputWith(doc map[string]any, key string, parsed Value) (Value, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("the input is not an object")
	}
	if parsed != nil {
		obj.Insert(ast.StringTerm(key), ast.NewTerm(parsed))
	}
	return obj, nil
}
