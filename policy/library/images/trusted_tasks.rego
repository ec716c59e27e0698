# METADATA
# title: Images are produced by trusted tasks
# description: >-
#   The verified provenance must record (as Tollgate's signer does) which
#   tasks produced this image, and every one of them must be a pinned task
#   from the allow-list. An inline task is never trusted: whoever can create
#   a run can write any result from one. The same check is built in as
#   ClusterImagePolicy spec.attestations[].producer.trustedTasks.
# custom:
#   fix: Build the image with a task from the platform's trusted list (a pinned bundle or git reference), not an inline task.
package tollgate.library.images.trusted_tasks

import rego.v1

import data.tollgate.lib

# Edit in your copy: glob patterns over task references (oci://BUNDLE,
# git+URL//PATH@REVISION, hub://CATALOG/NAME@VERSION, cluster://NS/NAME).
trusted := {"oci://registry.example.com/tekton/tasks/buildah:*@sha256:*"}

producers contains t if {
	some a in input.attestations
	some t in lib.producers_of(a.statement, input.image.digest)
}

recorded if {
	some a in input.attestations
	lib.producers_of(a.statement, input.image.digest)
}

deny contains sprintf("no verified provenance records which task produced %s", [input.image.digest]) if {
	not recorded
}

deny contains sprintf("pipeline task %q (TaskRun %s) is an inline task, never a trusted producer", [t.pipelineTask, t.taskRun]) if {
	some t in producers
	t.inline
}

deny contains sprintf("task %s (TaskRun %s) is not a trusted task", [t.ref, t.taskRun]) if {
	some t in producers
	not t.inline
	not is_trusted(t.ref)
}

is_trusted(ref) if {
	some pattern in trusted
	glob.match(pattern, null, ref)
}
