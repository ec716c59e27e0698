package policy

// ProvenanceKey is where Tollgate's signer records ProvenanceRecord in its
// statements: predicate.buildDefinition.internalParameters.tollgate (SLSA
// v1.0) or predicate.invocation.environment.tollgate (SLSA v0.2).
const ProvenanceKey = "tollgate"

// ProvenanceRecord is what Tollgate's signer vouches for beyond Tekton
// Chains' provenance, for a run the run guard admitted: the spec digest
// stamped at admission, the digest of the spec Tekton resolved and ran,
// where the run ran, and which task produced each subject. The signer
// writes it; the image gate reads it (producer requirements) — one
// definition of the contract between them.
type ProvenanceRecord struct {
	SpecDigest         string `json:"specDigest"`
	ResolvedSpecDigest string `json:"resolvedSpecDigest,omitempty"`
	// Namespace and Run name the run ("TaskRun/name", "PipelineRun/name").
	Namespace string `json:"namespace,omitempty"`
	Run       string `json:"run,omitempty"`
	// Producers say, for each subject, which tasks wrote the results that
	// name its digest.
	Producers []Producer `json:"producers,omitempty"`
}

// Producer names the tasks that produced one subject.
type Producer struct {
	// Subject is the subject's name and digest, name@alg:hex.
	Subject string `json:"subject"`
	// Tasks wrote the results naming the subject's digest. None means
	// the claim came from no task (a literal in the Pipeline's results).
	Tasks []TaskSource `json:"tasks"`
}

// TaskSource is where a task's definition came from.
type TaskSource struct {
	// PipelineTask and TaskRun locate the task in the run.
	PipelineTask string `json:"pipelineTask,omitempty"`
	TaskRun      string `json:"taskRun,omitempty"`
	// Inline: the task was written into the run or the Pipeline — by
	// whoever wrote those, so never a trusted producer.
	Inline bool `json:"inline,omitempty"`
	// Ref is the task's reference: oci://BUNDLE for the bundles resolver,
	// git+URL//PATH@REVISION for git, hub://CATALOG/NAME@VERSION for hub,
	// cluster://NAMESPACE/NAME for the cluster resolver, task://NAMESPACE/NAME
	// for a Task object in the run's namespace (which its users may edit).
	Ref string `json:"ref,omitempty"`
	// Name is the task's name within a bundle or catalog, where it has one.
	Name string `json:"name,omitempty"`
	// Digest is the digest Tekton recorded for what it resolved
	// (status.provenance.refSource), when it resolved a remote reference.
	Digest map[string]string `json:"digest,omitempty"`
}
