// Package slsa names the SLSA provenance predicate types, once, for the
// signer that writes them and the image gate that requires them.
package slsa

// Predicate types of in-toto statements of SLSA provenance.
const (
	PredicateV02 = "https://slsa.dev/provenance/v0.2"
	PredicateV1  = "https://slsa.dev/provenance/v1"
)
