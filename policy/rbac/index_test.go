package rbac

import (
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGrantsAndCeiling(t *testing.T) {
	ix := Build(Objects{
		ClusterRoles: []rbacv1.ClusterRole{
			{ObjectMeta: metav1.ObjectMeta{Name: "ceiling"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"get", "list"}}}},
			// Aggregated: its rules come from the labelled roles, as the controller-manager would fill them.
			{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"to-agg": "true"}}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "part", Labels: map[string]string{"to-agg": "true"}}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "delete"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "discovery"}, Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/api"}, Verbs: []string{"get"}}}},
		},
		Roles: []rbacv1.Role{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "reader"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}},
		RoleBindings: []rbacv1.RoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "sa-reader"}, RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "reader"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa"}}},
		},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Name: "sa-agg"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "agg"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "a", Name: "sa"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "system:discovery", Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "discovery"}, Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:authenticated"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "everyone-agg"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "agg"}, Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:serviceaccounts:a"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "other"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "agg"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "b", Name: "sa"}}},
		},
	})
	grants := ix.GrantsFor("a", "sa")
	var names []string
	for _, g := range grants {
		names = append(names, g.Binding)
	}
	if got := strings.Join(names, ","); got != "ClusterRoleBinding sa-agg,RoleBinding a/sa-reader,ClusterRoleBinding everyone-agg,ClusterRoleBinding system:discovery" {
		t.Errorf("grants = %s", got)
	}
	ceiling, ok := ix.ClusterRole("ceiling")
	if !ok {
		t.Fatal("ceiling not indexed")
	}
	ex := Exceeding(ceiling, grants)
	if len(ex) != 2 || ex[0].Grant.Binding != "ClusterRoleBinding sa-agg" || ex[1].Grant.Binding != "ClusterRoleBinding everyone-agg" {
		t.Fatalf("exceeding = %+v", ex)
	}
	if got := FormatRule(ex[0].Uncovered[0]); got != "create,delete pods" {
		t.Errorf("uncovered rule = %q", got)
	}
	if _, ok := ix.ClusterRole("missing"); ok {
		t.Error("a missing ClusterRole was found")
	}
}

func TestBaselineNeedsTheLabelAndGroupsOnly(t *testing.T) {
	bootstrap := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
	if !baseline(bootstrap, []rbacv1.Subject{{Kind: "Group", Name: "system:authenticated"}}) {
		t.Error("the API server's own group binding is not baseline")
	}
	if baseline(bootstrap, []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "a", Name: "sa"}}) {
		t.Error("a labelled binding naming a service account counted as baseline")
	}
	if baseline(nil, []rbacv1.Subject{{Kind: "Group", Name: "system:serviceaccounts"}}) {
		t.Error("an unlabelled group binding counted as baseline")
	}
}
