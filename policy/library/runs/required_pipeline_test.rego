package tollgate.library.runs.required_pipeline_test

import rego.v1

import data.tollgate.library.runs.required_pipeline as rule

prod := {"name": "shop", "labels": {"env": "production"}}

test_approved_pipeline_passes if {
	count(rule.deny) == 0 with input as {"namespace": prod, "run": {"kind": "PipelineRun", "metadata": {"name": "r"}, "spec": {"pipelineRef": {"name": "build-and-push"}}}}
}

test_inline_pipeline_is_denied if {
	count(rule.deny) == 1 with input as {"namespace": prod, "run": {"kind": "PipelineRun", "metadata": {"name": "r"}, "spec": {"pipelineSpec": {}}}}
}

test_remote_pipeline_is_denied if {
	count(rule.deny) == 1 with input as {"namespace": prod, "run": {"kind": "PipelineRun", "metadata": {"name": "r"}, "spec": {"pipelineRef": {"resolver": "git", "params": []}}}}
}

test_other_namespaces_are_free if {
	count(rule.deny) == 0 with input as {"namespace": {"name": "dev", "labels": {}}, "run": {"kind": "PipelineRun", "metadata": {"name": "r"}, "spec": {"pipelineSpec": {}}}}
}
