// Package sign holds the signer's signing keys and what it makes with them:
// raw signatures (cosign's simple signing) and DSSE envelopes around in-toto
// statements, the way `cosign sign` and `cosign attest` make them, so that
// `cosign verify` and `cosign verify-attestation` accept them.
//
// Keys come from the Secret `signing-secrets` exactly as
// `cosign generate-key-pair k8s://NS/signing-secrets` writes it (cosign.key,
// encrypted, with cosign.password), or as an unencrypted x509.pem. A key is
// decrypted once when loaded, not per signature. Key material never appears
// in an error or a log line. It must not import webhook/.
package sign
