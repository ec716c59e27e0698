package tollgate.library.images.spec_digest_test

import rego.v1

import data.tollgate.library.images.spec_digest as rule

test_recorded_digest_passes if {
	count(rule.deny) == 0 with input as {"attestations": [{"statement": {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {"internalParameters": {"tollgate": {"specDigest": "sha256:abc"}}}}}}]}
}

test_missing_digest_is_denied if {
	count(rule.deny) == 1 with input as {"attestations": [{"statement": {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}}]}
}
