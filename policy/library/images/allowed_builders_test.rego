package tollgate.library.images.allowed_builders_test

import rego.v1

import data.tollgate.library.images.allowed_builders as rule

att(builder) := {"statement": {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"runDetails": {"builder": {"id": builder}}, "buildDefinition": {}}}}

test_allowed_builder_passes if {
	count(rule.deny) == 0 with input as {"attestations": [att("https://tollgate.dev/builders/tekton")]}
}

test_other_builder_is_denied if {
	rule.deny == {`provenance names builder "https://evil.example", which is not allowed`} with input as {"attestations": [att("https://evil.example")]}
}

test_no_provenance_is_denied if {
	rule.deny == {"no verified SLSA provenance names a builder"} with input as {"attestations": []}
}
