package tollgate.library.runs.forbidden_params_test

import rego.v1

import data.tollgate.library.runs.forbidden_params as rule

test_token_is_denied if {
	rule.deny == {{"msg": `param "GITHUB_TOKEN" looks like a credential`, "path": "spec.params"}} with input as {"run": {"spec": {"params": [{"name": "GITHUB_TOKEN", "value": "x"}, {"name": "url", "value": "y"}]}}}
}

test_plain_params_pass if {
	count(rule.deny) == 0 with input as {"run": {"spec": {"params": [{"name": "revision", "value": "main"}]}}}
}

test_no_params_pass if {
	count(rule.deny) == 0 with input as {"run": {"spec": {}}}
}
