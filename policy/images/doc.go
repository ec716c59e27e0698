// Package images verifies container images for the image gate and for
// `tollgate verify`: it compiles ClusterImagePolicies (globs, authorities,
// required attestations), resolves tags to digests from the manifest bytes,
// fetches cosign signatures and attestations with hard limits on every size
// and count, verifies them with cosign's verification library, and caches
// the verified results.
//
// What it checks for an image digest D under one policy:
//
//  1. a signature over D by one of the policy's authorities (a key, or a
//     keyless certificate from the trust root for one of the identities,
//     recorded in Rekor);
//  2. for each required attestation: a DSSE envelope of payload type
//     application/vnd.in-toto+json signed by one of the authorities, whose
//     statement has D among its subjects and exactly the required predicate
//     type, with a predicate that parses.
//
// D is the digest the workload pulls: for a tag, the digest of the manifest
// the tag names, recomputed from its bytes. When that is an image index, the
// index is what must be signed (its digest covers every platform manifest);
// a signature on one platform manifest does not admit the index, and a
// signed index does not admit a platform manifest named by its own digest.
//
// Nothing here imports webhook/ or signer/, and nothing here reads the
// Kubernetes API: secrets and credentials come in through Deps.
package images
