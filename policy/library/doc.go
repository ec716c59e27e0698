// Package library holds Tollgate's policy library: Rego rules users copy
// into ClusterRunPolicy.spec.rego (runs/) and ClusterImagePolicy rego
// (images/), each with # METADATA (title, description, how to fix) and a
// _test.rego beside it. `tollgate policy test policy/library` runs them;
// the Go test in this package does too, so `make test` keeps them green.
// Settings are the constants at the top of each rule: edit them in your
// copy.
package library
