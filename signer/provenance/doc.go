// Package provenance builds the in-toto statements the signer signs: SLSA
// provenance for finished Tekton runs, in Tekton Chains' formats and with
// Chains' semantics, so that a statement equals the one Chains v0.24
// produces for the same run (the golden files in testdata/chains are
// Chains' own output; the tests hold every formatter to them).
//
// Formats: slsa/v2alpha4 (SLSA v1.0). slsa/v1 (SLSA v0.2) and slsa/v2alpha3
// are still to come. Building a statement is pure: the run in, the
// statement out; signing and storage live elsewhere. It must not import
// webhook/.
package provenance
