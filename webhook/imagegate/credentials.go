package imagegate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/images/pullsecrets"
)

// SecretCredentials reads pull secrets the way the kubelet does: the pod's
// imagePullSecrets, then its service account's; a secret that does not
// exist is skipped (the kubelet skips it too). It reads the API server
// directly: caching every Secret of the cluster in the webhook would cost
// memory and hold secrets it mostly never needs.
type SecretCredentials struct {
	Reader client.Reader
}

// Keychain implements Credentials.
func (c SecretCredentials) Keychain(ctx context.Context, namespace, serviceAccount string, names []string) (authn.Keychain, string, error) {
	var sa corev1.ServiceAccount
	switch err := c.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: serviceAccount}, &sa); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, "", fmt.Errorf("reading service account %s/%s: %w", namespace, serviceAccount, err)
	default:
		for _, ref := range sa.ImagePullSecrets {
			names = append(names, ref.Name)
		}
	}
	h := sha256.New()
	seen := map[string]bool{}
	var secrets []corev1.Secret
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		var s corev1.Secret
		switch err := c.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, "", fmt.Errorf("reading pull secret %s/%s: %w", namespace, name, err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00", s.UID, s.ResourceVersion)
		secrets = append(secrets, s)
	}
	kc, err := pullsecrets.New(secrets)
	if err != nil {
		return nil, "", err
	}
	return kc, hex.EncodeToString(h.Sum(nil)), nil
}
