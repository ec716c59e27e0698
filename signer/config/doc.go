// Package config parses the signer's configuration: the `chains-config`
// ConfigMap, with Tekton Chains' keys and meanings, so that an existing
// Chains installation's ConfigMap configures Tollgate unchanged.
//
// Parsing is strict where Chains is lenient: an unknown key, an invalid
// value, a malformed boolean or a backend Tollgate does not implement is an
// error that names the key, never a silent default. Parse never mutates the
// last good Config; the caller keeps it in force when a new one fails.
// It imports only the standard library.
package config
