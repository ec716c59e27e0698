package tollgate.library.images.allowed_materials_test

import rego.v1

import data.tollgate.library.images.allowed_materials as rule

att(uri) := {"statement": {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {"resolvedDependencies": [{"uri": uri, "digest": {"sha1": "c0ffee"}}]}}}}

test_own_repository_passes if {
	count(rule.deny) == 0 with input as {"attestations": [att("git+https://github.com/acme/app.git")]}
}

test_foreign_repository_is_denied if {
	rule.deny == {"built from https://github.com/evil/app, which is not an allowed repository"} with input as {"attestations": [att("git+https://github.com/evil/app.git")]}
}

test_no_source_is_denied if {
	rule.deny == {"the provenance records no git source"} with input as {"attestations": [att("oci://registry/x")]}
}
