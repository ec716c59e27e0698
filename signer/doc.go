// Package signer will hold the signing controller: it watches Tekton runs
// finish and produces signed SLSA provenance, compatible with Tekton Chains.
//
// Today only its configuration exists (subpackage config); the controller,
// provenance formats, signers and storage arrive with the signer issue.
// Nothing under signer/ may import webhook/.
package signer
