package tollgate.lib

import rego.v1

# parse_image splits an image reference the way Tollgate normalises it:
# {"registry", "repository", "tag", "digest"}; Docker Hub names gain
# index.docker.io and library/.
parse_image(ref) := {"registry": registry, "repository": repository, "tag": tag, "digest": digest} if {
	parts := split(ref, "@")
	digest := _second(parts)
	name_tag := _split_tag(parts[0])
	segments := split(name_tag.name, "/")
	first := segments[0]
	_is_registry(first, count(segments))
	registry := _normalise_registry(first)
	repository := _library(registry, concat("/", array.slice(segments, 1, count(segments))))
	tag := name_tag.tag
} else := {"registry": "index.docker.io", "repository": repository, "tag": name_tag.tag, "digest": _second(split(ref, "@"))} if {
	name_tag := _split_tag(split(ref, "@")[0])
	repository := _library("index.docker.io", name_tag.name)
}

_second(parts) := parts[1] if count(parts) > 1

_second(parts) := "" if count(parts) == 1

_split_tag(s) := {"name": substring(s, 0, i), "tag": substring(s, i + 1, -1)} if {
	i := _last_index(s, ":")
	i > _last_index(s, "/")
} else := {"name": s, "tag": "latest"}

_last_index(s, c) := i if {
	idx := [j | some j in numbers.range(0, count(s) - 1); substring(s, j, 1) == c]
	count(idx) > 0
	i := max(idx)
} else := -1

_is_registry(first, n) if {
	n > 1
	contains(first, ".")
}

_is_registry(first, n) if {
	n > 1
	contains(first, ":")
}

_is_registry("localhost", n) if n > 1

_normalise_registry(r) := "index.docker.io" if r in {"docker.io", "registry-1.docker.io", "index.docker.io"}

_normalise_registry(r) := lower(r) if not r in {"docker.io", "registry-1.docker.io", "index.docker.io"}

_library("index.docker.io", repo) := concat("/", ["library", repo]) if not contains(repo, "/")

_library(registry, repo) := repo if {
	registry != "index.docker.io"
}

_library("index.docker.io", repo) := repo if contains(repo, "/")

# image_name is registry/repository, as image globs match it.
image_name(ref) := concat("/", [p.registry, p.repository]) if p := parse_image(ref)

# glob_matches reports whether an image reference's repository matches a
# glob with Tollgate's semantics: "*" within a path segment, "**" across.
glob_matches(pattern, ref) if glob.match(lower(pattern), ["/"], image_name(ref))
