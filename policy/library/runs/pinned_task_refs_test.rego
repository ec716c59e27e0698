package tollgate.library.runs.pinned_task_refs_test

import rego.v1

import data.tollgate.library.runs.pinned_task_refs as rule

run(ref) := {"run": {"spec": {"pipelineSpec": {"tasks": [{"name": "build", "taskRef": ref}]}}}}

test_bundle_by_digest_passes if {
	count(rule.deny) == 0 with input as run({"resolver": "bundles", "params": [{"name": "bundle", "value": "gcr.io/t/b@sha256:abc"}]})
}

test_bundle_by_tag_is_denied if {
	some d in rule.deny with input as run({"resolver": "bundles", "params": [{"name": "bundle", "value": "gcr.io/t/b:v1"}]})
	contains(d.msg, `bundle "gcr.io/t/b:v1" is not pinned`)
}

test_git_branch_is_denied if {
	count(rule.deny) == 1 with input as run({"resolver": "git", "params": [{"name": "revision", "value": "main"}]})
}

test_git_commit_passes if {
	count(rule.deny) == 0 with input as run({"resolver": "git", "params": [{"name": "revision", "value": "0123456789abcdef0123456789abcdef01234567"}]})
}

test_cluster_refs_pass if {
	count(rule.deny) == 0 with input as run({"name": "build"})
}
