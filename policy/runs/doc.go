// Package runs holds the run guard's built-in checks for Tekton PipelineRuns
// and TaskRuns: serviceAccount, podSecurity, resources, pinnedRefs and
// specIntegrity.
//
// Gather, then decide: Gather walks a run, fetches the Tasks, Pipelines,
// service accounts and RBAC it refers to through a Cluster (informer caches in
// the webhook, a directory of YAML in `tollgate check`) and returns an Input;
// Evaluate is pure: the same Input and policies give the same Decision.
// Nothing here performs I/O of its own or imports webhook/ or signer/.
package runs
