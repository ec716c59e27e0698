// Package e2e holds end-to-end tests: the real kube-apiserver calls the
// Tollgate webhook over TLS for every admission, and `tollgate check` is held
// to the same decisions offline.
package e2e
