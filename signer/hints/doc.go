// Package hints finds what a Tekton run built from its type-hinted results,
// with Tekton Chains' conventions and semantics:
//
//   - *IMAGE_URL and *IMAGE_DIGEST with the same prefix: one image each;
//   - IMAGES: images by digest, separated by commas or newlines;
//   - *ARTIFACT_URI and *ARTIFACT_DIGEST with the same prefix: one artifact each;
//   - *ARTIFACT_OUTPUTS / *ARTIFACT_INPUTS objects {uri, digest}, the outputs
//     that are build artifacts marked isBuildArtifact: "true".
//
// Unlike Chains, results that look like hints but are malformed are not
// dropped in silence: every function also returns what it rejected and why,
// so the signer can say it in an Event. Pairs are returned in the order of
// their prefixes, so the same run always yields the same subjects.
// It imports the Tekton API types and go-containerregistry's name package.
package hints
