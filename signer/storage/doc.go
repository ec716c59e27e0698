// Package storage holds where the signer stores what it signs, one small
// package per backend: tekton (annotations on the run, Chains' names) and oci
// (cosign's layout in the registry, next to the image or in a configured
// repository). Each backend stores one signed item and reports an error
// that names what failed; none decides whether a run counts as signed.
// Nothing here may import webhook/.
package storage
