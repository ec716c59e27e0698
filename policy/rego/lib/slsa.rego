# METADATA
# title: Tollgate's built-in library
# description: >-
#   Helpers for SLSA provenance (v0.2 and v1.0, as Tekton Chains and
#   Tollgate's signer write it), image references and globs. Import it with
#   `import data.tollgate.lib`.
package tollgate.lib

import rego.v1

slsa_v02 := "https://slsa.dev/provenance/v0.2"

slsa_v1 := "https://slsa.dev/provenance/v1"

# builder_id is the id of the builder that produced a statement.
builder_id(st) := st.predicate.builder.id if st.predicateType == slsa_v02

builder_id(st) := st.predicate.runDetails.builder.id if st.predicateType == slsa_v1

# build_type is the build type of a statement.
build_type(st) := st.predicate.buildType if st.predicateType == slsa_v02

build_type(st) := st.predicate.buildDefinition.buildType if st.predicateType == slsa_v1

# materials are the statement's inputs as [{"uri": ..., "digest": {...}}]:
# v0.2 materials, v1.0 resolvedDependencies.
materials(st) := [m | some m in object.get(st.predicate, "materials", [])] if st.predicateType == slsa_v02

materials(st) := [m | some m in object.get(st.predicate.buildDefinition, "resolvedDependencies", [])] if st.predicateType == slsa_v1

# external_parameters are the parameters the build was started with:
# v0.2 invocation.parameters, v1.0 buildDefinition.externalParameters.
external_parameters(st) := object.get(object.get(st.predicate, "invocation", {}), "parameters", {}) if st.predicateType == slsa_v02

external_parameters(st) := object.get(st.predicate.buildDefinition, "externalParameters", {}) if st.predicateType == slsa_v1

# spec_digest is the run spec digest Tollgate recorded at admission (empty
# when the statement carries none).
spec_digest(st) := d if {
	st.predicateType == slsa_v1
	d := st.predicate.buildDefinition.internalParameters.tollgate.specDigest
}

spec_digest(st) := d if {
	st.predicateType == slsa_v02
	d := st.predicate.invocation.environment.tollgate.specDigest
}

# tollgate_record is what Tollgate's signer recorded beyond Chains'
# provenance: specDigest, resolvedSpecDigest, namespace, run and producers
# (for each subject, the tasks whose results named its digest; each task
# inline, or with its ref). Undefined when the statement carries none.
tollgate_record(st) := r if {
	st.predicateType == slsa_v1
	r := st.predicate.buildDefinition.internalParameters.tollgate
}

tollgate_record(st) := r if {
	st.predicateType == slsa_v02
	r := st.predicate.invocation.environment.tollgate
}

# producers_of are the tasks recorded as producing the subject whose digest
# is digest ("sha256:<hex>"), or undefined when no subject has it.
producers_of(st, digest) := p.tasks if {
	some p in tollgate_record(st).producers
	endswith(p.subject, concat("", ["@", digest]))
}

# git_materials are the materials fetched from git, as {"repo": url, "commit": sha}.
git_materials(st) := [{"repo": trim_prefix(trim_suffix(m.uri, ".git"), "git+"), "commit": m.digest.sha1} |
	some m in materials(st)
	startswith(m.uri, "git+")
	m.digest.sha1
]
