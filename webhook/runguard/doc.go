// Package runguard adapts admission requests for Tekton PipelineRuns,
// TaskRuns and Tekton-created Pods to the run guard's checks in policy/runs.
//
// The handlers are thin: decode, gather (from informer caches), decide (pure,
// in policy/runs), answer. A violation is a 403 denial with field causes; an
// internal fault is a 500 that also denies (fail closed). The package also
// owns the informer-backed Cluster and the ClusterRunPolicy loader.
// It must not import signer/.
package runguard
