package runguard

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook/policystore"
)

// ConditionReady is the condition type every policy reports.
const ConditionReady = policystore.ConditionReady

// PolicyStore compiles ClusterRunPolicies into an immutable snapshot each
// time one changes and publishes it atomically. A policy that fails to
// compile keeps its last good version in force and reports Ready=False with
// the error; a new policy that never compiled is not in force (and says so).
type PolicyStore struct {
	*policystore.Store[*v1alpha1.ClusterRunPolicy, *runs.Policy]
	snapshot atomic.Pointer[runs.Set]
}

// NewPolicyStore registers its informer with c; call Run after c starts.
// ConfigMaps that Rego modules reference are read from live, and re-read
// every resync. The snapshot starts as the built-in default alone.
func NewPolicyStore(ctx context.Context, c cache.Cache, live client.Reader, writer client.Client, resync time.Duration, log logr.Logger) (*PolicyStore, error) {
	s := &PolicyStore{}
	cms := policystore.LiveConfigMaps(live)
	s.snapshot.Store(runs.NewSet(runs.BuiltinDefault()))
	st, err := policystore.New(ctx, c, writer, policystore.Config[*v1alpha1.ClusterRunPolicy, *runs.Policy]{
		Watch: &v1alpha1.ClusterRunPolicy{},
		List: func(ctx context.Context, r client.Reader) ([]*v1alpha1.ClusterRunPolicy, error) {
			var list v1alpha1.ClusterRunPolicyList
			if err := r.List(ctx, &list); err != nil {
				return nil, fmt.Errorf("listing ClusterRunPolicies: %w", err)
			}
			out := make([]*v1alpha1.ClusterRunPolicy, len(list.Items))
			for i := range list.Items {
				out[i] = &list.Items[i]
			}
			return out, nil
		},
		Compile: func(ctx context.Context, p *v1alpha1.ClusterRunPolicy) (*runs.Policy, error) {
			return runs.Compile(ctx, p, cms)
		},
		Generation: func(p *runs.Policy) int64 { return p.Generation },
		Publish:    func(ps []*runs.Policy) { s.snapshot.Store(runs.NewSet(runs.BuiltinDefault(), ps...)) },
		Resync:     resync,
		Packages:   func(p *runs.Policy) []string { return p.Rego.Packages() },
	}, log)
	if err != nil {
		return nil, err
	}
	s.Store = st
	return s, nil
}

// Current returns the snapshot in force.
func (s *PolicyStore) Current() *runs.Set { return s.snapshot.Load() }
