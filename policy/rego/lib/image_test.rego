package tollgate.lib_test

import rego.v1

import data.tollgate.lib

test_parse_docker_hub if {
	lib.parse_image("busybox") == {"registry": "index.docker.io", "repository": "library/busybox", "tag": "latest", "digest": ""}
	lib.parse_image("docker.io/acme/app:v1") == {"registry": "index.docker.io", "repository": "acme/app", "tag": "v1", "digest": ""}
}

test_parse_registry_with_port_tag_and_digest if {
	d := concat("", ["sha256:", concat("", [x | some _ in numbers.range(1, 64); x := "a"])])
	lib.parse_image(concat("", ["127.0.0.1:5000/team/app:v2@", d])) == {"registry": "127.0.0.1:5000", "repository": "team/app", "tag": "v2", "digest": d}
	lib.parse_image("localhost/app") == {"registry": "localhost", "repository": "app", "tag": "latest", "digest": ""}
	lib.parse_image("Registry.Example.com/app") == {"registry": "registry.example.com", "repository": "app", "tag": "latest", "digest": ""}
}

test_glob_matches if {
	lib.glob_matches("registry.example.com/team/**", "registry.example.com/team/sub/app:v1")
	not lib.glob_matches("registry.example.com/team/*", "registry.example.com/team/sub/app")
	lib.glob_matches("index.docker.io/library/*", "busybox:1.36")
}
