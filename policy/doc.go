// Package policy holds what every gate decides with: the Decision an
// evaluation returns and the Violation each broken rule becomes.
//
// Its subpackages own the rest: v1alpha1 (the CRD types), runs (the run
// guard's built-in checks), rbac (effective RBAC of service accounts),
// specdigest (the run spec digest), images (image verification for the
// image gate and `tollgate verify`). Nothing under policy/ may import webhook/,
// signer/ or a controller-runtime manager: evaluation is pure, given its input.
package policy
