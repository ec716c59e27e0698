package rbac

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/auth/rbac/validation"
)

// Grant is what one binding gives a subject.
type Grant struct {
	// Binding names the binding: "ClusterRoleBinding edit-all" or "RoleBinding team-a/builders".
	Binding string
	// Role names the role it refers to: "ClusterRole edit" or "Role team-a/pusher".
	Role string
	// Namespace is where the grant applies; empty for cluster-wide.
	Namespace string
	// Rules are the role's rules (aggregation resolved). A role that does not
	// exist grants nothing and has no rules.
	Rules []rbacv1.PolicyRule
	// Baseline marks the API server's own default bindings to groups
	// (label kubernetes.io/bootstrapping=rbac-defaults, group subjects only):
	// discovery and self reviews every identity has, not power given to a run.
	Baseline bool
}

// bootstrapLabel marks the RBAC objects the API server creates itself.
const bootstrapLabel = "kubernetes.io/bootstrapping"

func baseline(labels map[string]string, subjects []rbacv1.Subject) bool {
	if labels[bootstrapLabel] != "rbac-defaults" {
		return false
	}
	for _, s := range subjects {
		if s.Kind != rbacv1.GroupKind {
			return false
		}
	}
	return true
}

// Objects are the RBAC objects an Index is built from.
type Objects struct {
	Roles               []rbacv1.Role
	ClusterRoles        []rbacv1.ClusterRole
	RoleBindings        []rbacv1.RoleBinding
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
}

// Index answers "what is this service account granted" from memory.
type Index struct {
	clusterRoles map[string][]rbacv1.PolicyRule
	bySubject    map[string][]Grant
}

// Build returns the index of objs. It does not keep references to objs.
func Build(objs Objects) *Index {
	ix := &Index{
		clusterRoles: make(map[string][]rbacv1.PolicyRule, len(objs.ClusterRoles)),
		bySubject:    map[string][]Grant{},
	}
	for i := range objs.ClusterRoles {
		cr := &objs.ClusterRoles[i]
		ix.clusterRoles[cr.Name] = aggregate(cr, objs.ClusterRoles)
	}
	roles := make(map[string][]rbacv1.PolicyRule, len(objs.Roles))
	for i := range objs.Roles {
		r := &objs.Roles[i]
		roles[r.Namespace+"/"+r.Name] = r.Rules
	}
	for i := range objs.ClusterRoleBindings {
		b := &objs.ClusterRoleBindings[i]
		if b.RoleRef.Kind != "ClusterRole" {
			continue
		}
		g := Grant{
			Binding:  "ClusterRoleBinding " + b.Name,
			Role:     "ClusterRole " + b.RoleRef.Name,
			Rules:    ix.clusterRoles[b.RoleRef.Name],
			Baseline: baseline(b.Labels, b.Subjects),
		}
		for _, s := range b.Subjects {
			ix.add(subjectKey(s, ""), g)
		}
	}
	for i := range objs.RoleBindings {
		b := &objs.RoleBindings[i]
		g := Grant{Binding: "RoleBinding " + b.Namespace + "/" + b.Name, Namespace: b.Namespace, Baseline: baseline(b.Labels, b.Subjects)}
		switch b.RoleRef.Kind {
		case "ClusterRole":
			g.Role = "ClusterRole " + b.RoleRef.Name
			g.Rules = ix.clusterRoles[b.RoleRef.Name]
		case "Role":
			g.Role = "Role " + b.Namespace + "/" + b.RoleRef.Name
			g.Rules = roles[b.Namespace+"/"+b.RoleRef.Name]
		default:
			continue
		}
		for _, s := range b.Subjects {
			ix.add(subjectKey(s, b.Namespace), g)
		}
	}
	for k := range ix.bySubject {
		gs := ix.bySubject[k]
		sort.Slice(gs, func(i, j int) bool { return gs[i].Binding < gs[j].Binding })
	}
	return ix
}

func (ix *Index) add(key string, g Grant) {
	if key == "" {
		return
	}
	ix.bySubject[key] = append(ix.bySubject[key], g)
}

// aggregate returns the rules of cr, with its aggregationRule resolved against all.
func aggregate(cr *rbacv1.ClusterRole, all []rbacv1.ClusterRole) []rbacv1.PolicyRule {
	if cr.AggregationRule == nil {
		return cr.Rules
	}
	rules := append([]rbacv1.PolicyRule(nil), cr.Rules...)
	for _, sel := range cr.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			continue
		}
		for i := range all {
			o := &all[i]
			if o.Name == cr.Name || !s.Matches(labels.Set(o.Labels)) {
				continue
			}
			rules = append(rules, o.Rules...)
		}
	}
	return rules
}

func subjectKey(s rbacv1.Subject, bindingNamespace string) string {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		if ns == "" {
			return ""
		}
		return "user:system:serviceaccount:" + ns + ":" + s.Name
	case rbacv1.UserKind:
		return "user:" + s.Name
	case rbacv1.GroupKind:
		return "group:" + s.Name
	}
	return ""
}

// ClusterRole returns the rules of a ClusterRole (aggregation resolved) and whether it exists.
func (ix *Index) ClusterRole(name string) ([]rbacv1.PolicyRule, bool) {
	r, ok := ix.clusterRoles[name]
	return r, ok
}

// GrantsFor returns every grant that applies to the service account ns/name:
// those naming it, and those naming the service-account groups it is in
// (system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated).
func (ix *Index) GrantsFor(ns, name string) []Grant {
	var out []Grant
	for _, k := range []string{
		"user:system:serviceaccount:" + ns + ":" + name,
		"group:system:serviceaccounts",
		"group:system:serviceaccounts:" + ns,
		"group:system:authenticated",
	} {
		out = append(out, ix.bySubject[k]...)
	}
	return out
}

// Excess is what one grant gives beyond the ceiling.
type Excess struct {
	Grant     Grant
	Uncovered []rbacv1.PolicyRule
}

// Exceeding returns the grants whose rules the ceiling does not cover, each
// with the uncovered rules. Baseline grants are not counted.
func Exceeding(ceiling []rbacv1.PolicyRule, grants []Grant) []Excess {
	var out []Excess
	for _, g := range grants {
		if len(g.Rules) == 0 || g.Baseline {
			continue
		}
		if ok, missing := validation.Covers(ceiling, g.Rules); !ok {
			out = append(out, Excess{Grant: g, Uncovered: compact(missing)})
		}
	}
	return out
}

// compact merges the per-verb rules Covers returns back into one rule per
// (groups, resources, names, URLs), so a denial stays readable.
func compact(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ g, r, n, u string }
	idx := map[key]int{}
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		k := key{strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.ResourceNames, ","), strings.Join(r.NonResourceURLs, ",")}
		if i, ok := idx[k]; ok {
			out[i].Verbs = appendUnique(out[i].Verbs, r.Verbs...)
			continue
		}
		idx[k] = len(out)
		out = append(out, *r.DeepCopy())
	}
	return out
}

func appendUnique(s []string, add ...string) []string {
	for _, a := range add {
		found := false
		for _, e := range s {
			if e == a {
				found = true
				break
			}
		}
		if !found {
			s = append(s, a)
		}
	}
	return s
}

// FormatRule renders a rule the way `kubectl describe role` readers expect:
// verbs on group/resource[names] or on non-resource URLs.
func FormatRule(r rbacv1.PolicyRule) string {
	verbs := strings.Join(r.Verbs, ",")
	if len(r.NonResourceURLs) > 0 {
		return fmt.Sprintf("%s %s", verbs, strings.Join(r.NonResourceURLs, ","))
	}
	var res []string
	for _, g := range r.APIGroups {
		for _, rs := range r.Resources {
			name := rs
			if g != "" {
				name = rs + "." + g
			}
			res = append(res, name)
		}
	}
	s := fmt.Sprintf("%s %s", verbs, strings.Join(res, ","))
	if len(r.ResourceNames) > 0 {
		s += " [" + strings.Join(r.ResourceNames, ",") + "]"
	}
	return s
}
