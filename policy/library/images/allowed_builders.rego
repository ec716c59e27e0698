# METADATA
# title: Images come from an allowed builder
# description: >-
#   Every verified SLSA provenance statement of the image must name one of
#   the allowed builder ids (Tollgate's signer writes its builder.id).
# custom:
#   fix: Build the image on the platform's Tekton, whose provenance names an allowed builder.
package tollgate.library.images.allowed_builders

import rego.v1

import data.tollgate.lib

# Edit in your copy.
allowed := {"https://tollgate.dev/builders/tekton"}

deny contains sprintf("provenance names builder %q, which is not allowed", [id]) if {
	some a in input.attestations
	id := lib.builder_id(a.statement)
	not id in allowed
}

deny contains "no verified SLSA provenance names a builder" if {
	count([id | some a in input.attestations; id := lib.builder_id(a.statement)]) == 0
}
