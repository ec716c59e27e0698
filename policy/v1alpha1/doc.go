// Package v1alpha1 holds the tollgate.dev/v1alpha1 API: the cluster-scoped
// policy resources that configure the run guard (ClusterRunPolicy) and the
// image gate (ClusterImagePolicy).
//
// It owns the Go types, their defaults and their validation markers; the CRD
// YAML in charts/tollgate/files/crds is generated from them by `make generate`.
// It must not import anything from webhook/, signer/ or controller-runtime
// managers: it is plain API types.
//
// +kubebuilder:object:generate=true
// +groupName=tollgate.dev
package v1alpha1
