package signer

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// PublicKeyData is the key of the published public key, as cosign names it.
const PublicKeyData = "cosign.pub"

// publishInterval is how often the signer checks that the public key it
// publishes is the one of the key in force.
const publishInterval = 15 * time.Second

// publishPublicKey keeps Opts.PublicKeySecret holding the public key of the
// signing key in force, so image policies (and the webhook, which may not
// read signing-secrets) trust the signer without access to its private key.
// It runs until ctx ends.
func (r *Reconciler) publishPublicKey(ctx context.Context) error {
	log := logf.FromContext(ctx).WithValues("secret", r.Opts.Namespace+"/"+r.Opts.PublicKeySecret)
	t := time.NewTicker(publishInterval)
	defer t.Stop()
	for {
		if err := r.publishOnce(ctx); err != nil {
			log.Error(err, "publishing the signer's public key; retrying")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Reconciler) publishOnce(ctx context.Context) (err error) {
	defer func() { // a key that crashes its parser must not end the signer
		if p := recover(); p != nil {
			err = fmt.Errorf("recovered panic: %v", p)
		}
	}()
	snap, err := r.trust.current(ctx)
	if err != nil {
		return err
	}
	if snap.Config.Fulcio.Enabled {
		return nil // keyless: no lasting key to publish; policies trust the identity
	}
	s := snap.X509
	if s == nil {
		return snap.X509Err // no key yet (Ready says why)
	}
	pub, err := s.PublicKeyPEM()
	if err != nil {
		return fmt.Errorf("deriving the public key: %w", err)
	}
	key := client.ObjectKey{Namespace: r.Opts.Namespace, Name: r.Opts.PublicKeySecret}
	sec := &corev1.Secret{}
	err = r.Client.Get(ctx, key, sec)
	switch {
	case apierrors.IsNotFound(err):
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tollgate"}}, Data: map[string][]byte{PublicKeyData: pub}}
		return r.Client.Create(ctx, sec)
	case err != nil:
		return err
	case bytes.Equal(sec.Data[PublicKeyData], pub):
		return nil
	}
	sec.Data = map[string][]byte{PublicKeyData: pub}
	return r.Client.Update(ctx, sec)
}
