// Package rbac computes the effective RBAC of service accounts from Roles,
// ClusterRoles (with aggregation resolved here, since a cluster without the
// aggregation controller leaves aggregated roles empty) and their bindings,
// and compares it with a ceiling ClusterRole.
//
// An Index is immutable once built: the webhook rebuilds it from informer
// caches when RBAC objects change and swaps it in; requests only read it.
// It imports only k8s API types and component-helpers.
package rbac
