package tollgate.library.images.trusted_tasks_test

import rego.v1

import data.tollgate.library.images.trusted_tasks as rule

digest := "sha256:0123"

statement(tasks) := {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {"internalParameters": {"tollgate": {
	"namespace": "team-a",
	"run": "TaskRun/build",
	"producers": [{"subject": concat("", ["registry.example.com/team-a/app@", digest]), "tasks": tasks}],
}}}}}

input_of(tasks) := {"image": {"digest": digest}, "attestations": [{"statement": statement(tasks)}]}

test_trusted_bundle_passes if {
	count(rule.deny) == 0 with input as input_of([{"taskRun": "build", "ref": "oci://registry.example.com/tekton/tasks/buildah:0.4@sha256:abc"}])
}

test_inline_task_is_denied if {
	count(rule.deny) == 1 with input as input_of([{"taskRun": "build", "pipelineTask": "build", "inline": true}])
}

test_untrusted_ref_is_denied if {
	count(rule.deny) == 1 with input as input_of([{"taskRun": "build", "ref": "task://team-a/build"}])
}

test_one_untrusted_of_two_is_denied if {
	count(rule.deny) == 1 with input as input_of([
		{"taskRun": "a", "ref": "oci://registry.example.com/tekton/tasks/buildah:0.4@sha256:abc"},
		{"taskRun": "b", "ref": "git+https://evil.example/x//t.yaml@main"},
	])
}

test_no_record_is_denied if {
	count(rule.deny) == 1 with input as {"image": {"digest": digest}, "attestations": [{"statement": {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}}]}
}
