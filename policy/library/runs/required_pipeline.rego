# METADATA
# title: Production runs use an approved Pipeline
# description: >-
#   In namespaces labelled env=production, a PipelineRun must run one of the
#   approved Pipelines from the cluster, not an inline or remote one.
# custom:
#   fix: Run one of the approved Pipelines by pipelineRef.name.
package tollgate.library.runs.required_pipeline

import rego.v1

# Edit in your copy.
approved := {"build-and-push"}

deny contains {"msg": sprintf("PipelineRun %q must run one of the approved Pipelines %v", [input.run.metadata.name, sort([p | some p in approved])]), "path": "spec.pipelineRef"} if {
	input.run.kind == "PipelineRun"
	input.namespace.labels.env == "production"
	not _approved
}

_approved if {
	ref := input.run.spec.pipelineRef
	not ref.resolver
	ref.name in approved
}
