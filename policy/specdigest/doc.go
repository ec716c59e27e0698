// Package specdigest computes the tollgate.dev/spec-digest of a Tekton run:
// "sha256:" and the hex SHA-256 of the canonical JSON of the run's spec.
//
// Canonical JSON here means: object keys sorted, no insignificant whitespace,
// numbers kept exactly as the API server serialized them, and the run's
// lifecycle fields spec.status and spec.statusMessage left out (Tekton and
// users legitimately change those to cancel a run; nothing else in spec may
// change after admission). The run guard stamps the digest, the signer checks
// it before signing and records it in the provenance, so both must use this
// package and nothing else.
//
// It imports only the standard library.
package specdigest
