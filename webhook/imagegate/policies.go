package imagegate

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook/policystore"
)

// ConditionReady is the condition type every policy reports.
const ConditionReady = policystore.ConditionReady

// PolicyStore compiles ClusterImagePolicies into an immutable snapshot on
// every change, and again every resync (so a rotated key in a Secret or a
// KMS takes effect without a policy edit). A policy that fails to compile
// keeps its last good version in force and reports Ready=False with the
// error; a policy that never compiled is not in force, and says so.
type PolicyStore struct {
	*policystore.Store[*v1alpha1.ClusterImagePolicy, *images.Policy]
	snapshot atomic.Pointer[images.Set]
}

// NewPolicyStore registers its informer with c; call Run after c starts.
// Secrets the policies name are read from live, never cached. The snapshot
// starts empty: a gated namespace denies until policies load.
func NewPolicyStore(ctx context.Context, c cache.Cache, live client.Reader, writer client.Client, resync time.Duration, log logr.Logger) (*PolicyStore, error) {
	s := &PolicyStore{}
	s.snapshot.Store(images.NewSet())
	deps := images.Deps{Secret: func(ctx context.Context, namespace, name string) (map[string][]byte, error) {
		var sec corev1.Secret
		if err := live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sec); err != nil {
			return nil, err
		}
		return sec.Data, nil
	}, ConfigMaps: policystore.LiveConfigMaps(live)}
	st, err := policystore.New(ctx, c, writer, policystore.Config[*v1alpha1.ClusterImagePolicy, *images.Policy]{
		Watch: &v1alpha1.ClusterImagePolicy{},
		List: func(ctx context.Context, r client.Reader) ([]*v1alpha1.ClusterImagePolicy, error) {
			var list v1alpha1.ClusterImagePolicyList
			if err := r.List(ctx, &list); err != nil {
				return nil, fmt.Errorf("listing ClusterImagePolicies: %w", err)
			}
			out := make([]*v1alpha1.ClusterImagePolicy, len(list.Items))
			for i := range list.Items {
				out[i] = &list.Items[i]
			}
			return out, nil
		},
		Compile: func(ctx context.Context, p *v1alpha1.ClusterImagePolicy) (*images.Policy, error) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second) // a KMS or the API server may hang
			defer cancel()
			return images.Compile(ctx, p, deps)
		},
		Generation: func(p *images.Policy) int64 { return p.Generation },
		Publish:    func(ps []*images.Policy) { s.snapshot.Store(images.NewSet(ps...)) },
		Resync:     resync,
		Packages:   func(p *images.Policy) []string { return p.Packages() },
	}, log)
	if err != nil {
		return nil, err
	}
	s.Store = st
	return s, nil
}

// Current returns the snapshot in force.
func (s *PolicyStore) Current() *images.Set { return s.snapshot.Load() }
