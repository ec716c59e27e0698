// Package envtest starts the real control plane Tollgate's tests run
// against: kube-apiserver v1.35 and etcd built from the Go module proxy by
// `make tools` (into bin/, cached under ~/.cache/tollgate), the Tekton v1 CRDs
// from the github.com/tektoncd/pipeline module, Tollgate's CRDs from
// charts/tollgate/files/crds, and webhook configurations that make the API server
// call a Tollgate webhook on loopback over TLS.
//
// It wraps controller-runtime's envtest; every process it starts is stopped
// in t.Cleanup. It never downloads anything.
package envtest
