// Package signer is the signing controller: it watches Tekton runs finish
// and signs what they built, with SLSA provenance, exactly as Tekton Chains
// does (same formats, annotations and storage), after checking that the run
// is the one the run guard admitted (the spec stamp and its MAC).
//
// Subpackages: config (the chains-config keys), provenance (the formats),
// sign (keys: cosign, KMS, x509), storage (OCI, Tekton), hints (what a run
// claims to have built). Nothing under signer/ may import webhook/.
package signer
