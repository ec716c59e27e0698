package tollgate.lib_test

import rego.v1

import data.tollgate.lib

v1 := {
	"predicateType": "https://slsa.dev/provenance/v1",
	"predicate": {
		"buildDefinition": {
			"buildType": "https://tekton.dev/chains/v2/slsa",
			"externalParameters": {"runSpec": {"pipelineRef": {"name": "build-and-push"}}},
			"internalParameters": {"tollgate": {"specDigest": "sha256:abc"}},
			"resolvedDependencies": [
				{"uri": "git+https://github.com/acme/app.git", "digest": {"sha1": "c0ffee"}},
				{"uri": "oci://gcr.io/tekton-releases/git-init", "digest": {"sha256": "123"}},
			],
		},
		"runDetails": {"builder": {"id": "https://tollgate.dev/builders/tekton"}},
	},
}

v02 := {
	"predicateType": "https://slsa.dev/provenance/v0.2",
	"predicate": {
		"builder": {"id": "https://tekton.dev/chains/v2"},
		"buildType": "tekton.dev/v1/TaskRun",
		"invocation": {"parameters": {"IMAGE": "x"}, "environment": {"tollgate": {"specDigest": "sha256:def"}}},
		"materials": [{"uri": "git+https://github.com/acme/lib", "digest": {"sha1": "beef"}}],
	},
}

test_builder_id if {
	lib.builder_id(v1) == "https://tollgate.dev/builders/tekton"
	lib.builder_id(v02) == "https://tekton.dev/chains/v2"
}

test_build_type if {
	lib.build_type(v1) == "https://tekton.dev/chains/v2/slsa"
	lib.build_type(v02) == "tekton.dev/v1/TaskRun"
}

test_materials if {
	count(lib.materials(v1)) == 2
	lib.materials(v02) == [{"uri": "git+https://github.com/acme/lib", "digest": {"sha1": "beef"}}]
}

test_git_materials if {
	lib.git_materials(v1) == [{"repo": "https://github.com/acme/app", "commit": "c0ffee"}]
	lib.git_materials(v02) == [{"repo": "https://github.com/acme/lib", "commit": "beef"}]
}

test_external_parameters if {
	lib.external_parameters(v1).runSpec.pipelineRef.name == "build-and-push"
	lib.external_parameters(v02) == {"IMAGE": "x"}
}

test_spec_digest if {
	lib.spec_digest(v1) == "sha256:abc"
	lib.spec_digest(v02) == "sha256:def"
	not lib.spec_digest({"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}})
}

test_unknown_predicate_type_has_no_builder if {
	not lib.builder_id({"predicateType": "https://example.com/sbom", "predicate": {}})
}
