# METADATA
# title: Remote Task references are pinned
# description: >-
#   A pipeline task that fetches its Task from a bundle or git must pin it:
#   a bundle by @sha256 digest, git by a full commit SHA. An unpinned
#   reference can change after review.
# custom:
#   fix: Pin the bundle reference to its digest, or set revision to a 40-character commit SHA.
package tollgate.library.runs.pinned_task_refs

import rego.v1

deny contains {"msg": sprintf("task %q: bundle %q is not pinned by @sha256 digest", [t.name, _param(t, "bundle")]), "path": "spec.pipelineSpec.tasks"} if {
	some t in _tasks
	t.taskRef.resolver == "bundles"
	not contains(_param(t, "bundle"), "@sha256:")
}

deny contains {"msg": sprintf("task %q: git revision %q is not a full commit SHA", [t.name, _param(t, "revision")]), "path": "spec.pipelineSpec.tasks"} if {
	some t in _tasks
	t.taskRef.resolver == "git"
	not regex.match(`^[0-9a-f]{40}$`, _param(t, "revision"))
}

_tasks := object.get(object.get(input.run.spec, "pipelineSpec", {}), "tasks", [])

_param(t, name) := v if {
	some p in t.taskRef.params
	p.name == name
	v := p.value
} else := ""
