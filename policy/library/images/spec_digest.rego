# METADATA
# title: Provenance carries the admitted spec digest
# description: >-
#   Tollgate's signer records the spec digest the run guard stamped at
#   admission. Provenance without it comes from a run Tollgate did not admit.
# custom:
#   fix: Build with a Tekton whose runs Tollgate's run guard admits and whose signer is Tollgate.
package tollgate.library.images.spec_digest

import rego.v1

import data.tollgate.lib

deny contains "no verified provenance records the spec digest Tollgate stamped at admission" if {
	count([d | some a in input.attestations; d := lib.spec_digest(a.statement); startswith(d, "sha256:")]) == 0
}
