# METADATA
# title: Sources come from allowed repositories
# description: >-
#   Every git material (v0.2 materials, v1.0 resolvedDependencies) of the
#   image's provenance must come from an allowed organisation, at a commit.
# custom:
#   fix: Build only from the organisation's repositories.
package tollgate.library.images.allowed_materials

import rego.v1

import data.tollgate.lib

# Edit in your copy: repository URL prefixes.
allowed_prefixes := {"https://github.com/acme/"}

deny contains sprintf("built from %s, which is not an allowed repository", [m.repo]) if {
	some a in input.attestations
	some m in lib.git_materials(a.statement)
	not _allowed(m.repo)
}

deny contains "the provenance records no git source" if {
	count([m | some a in input.attestations; some m in lib.git_materials(a.statement)]) == 0
}

_allowed(repo) if {
	some p in allowed_prefixes
	startswith(repo, p)
}
