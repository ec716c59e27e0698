// Package kmsproviders links sigstore's KMS providers into whatever imports
// it: gcpkms://, awskms://, azurekms:// and hashivault:// references then
// resolve in-process, with each provider's standard credential chain
// (workload identity / application default credentials, IRSA and the AWS
// environment, Azure's environment and managed identity, VAULT_ADDR and
// VAULT_TOKEN). Any other scheme NAME:// still goes to a sigstore KMS plugin
// program `sigstore-kms-NAME` on PATH.
package kmsproviders

import (
	// Registered with sigstore's kms package by their init functions.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
