package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
)

// stampKeys keeps the stamp keys of one Secret (NAMESPACE/NAME): created
// with a fresh random key when it does not exist, re-read every interval so
// a rotation takes effect; a failed read keeps the last good keys.
type stampKeys struct {
	client    client.Client
	namespace string
	name      string
	interval  time.Duration
	log       logr.Logger

	keys    atomic.Pointer[specdigest.Keys]
	lastErr atomic.Pointer[string]
}

func newStampKeys(c client.Client, secret string, log logr.Logger) (*stampKeys, error) {
	ns, name, ok := strings.Cut(secret, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--stamp-key-secret %q: want NAMESPACE/NAME", secret)
	}
	return &stampKeys{client: c, namespace: ns, name: name, interval: 30 * time.Second, log: log}, nil
}

// load reads the Secret, creating it when missing.
func (s *stampKeys) load(ctx context.Context) error {
	sec := &corev1.Secret{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: s.name}, sec)
	if apierrors.IsNotFound(err) {
		data, kerr := specdigest.NewKeyData("k1")
		if kerr != nil {
			return kerr
		}
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tollgate"}}, Data: data}
		err = s.client.Create(ctx, sec)
		if apierrors.IsAlreadyExists(err) { // another replica made it
			err = s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: s.name}, sec)
		}
		if err == nil {
			s.log.Info("created the stamp key Secret", "secret", s.namespace+"/"+s.name)
		}
	}
	if err != nil {
		return fmt.Errorf("reading the stamp key Secret %s/%s: %w", s.namespace, s.name, err)
	}
	k, err := specdigest.ParseKeys(sec.Data)
	if err != nil {
		return fmt.Errorf("the stamp key Secret %s/%s: %w", s.namespace, s.name, err)
	}
	s.keys.Store(k)
	return nil
}

func (s *stampKeys) run(ctx context.Context) {
	every(ctx, s.interval, func(ctx context.Context) {
		if err := s.load(ctx); err != nil {
			msg := err.Error()
			s.lastErr.Store(&msg)
			s.log.Error(err, "re-reading the stamp keys; the last good keys stay in force")
		}
	})
}

// get returns the keys in force.
func (s *stampKeys) get() (*specdigest.Keys, error) {
	if k := s.keys.Load(); k != nil {
		return k, nil
	}
	if e := s.lastErr.Load(); e != nil {
		return nil, errors.New(*e)
	}
	return nil, errors.New("the stamp keys are not loaded yet")
}
