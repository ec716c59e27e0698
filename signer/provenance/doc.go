// Package provenance builds the in-toto statements the signer signs: SLSA
// provenance for finished Tekton runs, in Tekton Chains' formats and with
// Chains' semantics, so that a statement equals the one Chains v0.24
// produces for the same run (the golden files in testdata/chains are
// Chains' own output; the tests hold every formatter to them).
//
// Formats: slsa/v1 (alias in-toto; SLSA v0.2 in an in-toto v0.1 statement),
// slsa/v2alpha3 and slsa/v2alpha4 (SLSA v1.0 in an in-toto v1 statement).
// Chains orders subjects of one kind by map iteration; here they come in a
// fixed order. For a run the run guard admitted, the statement also records
// the stamped spec digest and the digest of the spec Tekton resolved (see
// TollgateKey); other runs get exactly Chains' provenance.
//
// Building a statement is pure: the run in, the statement out; signing and
// storage live elsewhere. It must not import webhook/.
package provenance
