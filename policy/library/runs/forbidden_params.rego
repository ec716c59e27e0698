# METADATA
# title: No credentials in params
# description: >-
#   Params are recorded in provenance, events and logs. A param whose name
#   says it carries a token, password or secret leaks it.
# custom:
#   fix: Pass credentials through a workspace backed by a Secret.
package tollgate.library.runs.forbidden_params

import rego.v1

# Edit in your copy.
pattern := `(?i)(token|password|passwd|secret|api[_-]?key)`

deny contains {"msg": sprintf("param %q looks like a credential", [p.name]), "path": "spec.params"} if {
	some p in object.get(input.run.spec, "params", [])
	regex.match(pattern, p.name)
}
