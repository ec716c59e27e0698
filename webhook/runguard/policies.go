package runguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// ConditionReady is the condition type every policy reports.
const ConditionReady = "Ready"

// PolicyStore compiles ClusterRunPolicies into an immutable snapshot each
// time one changes and publishes it atomically. A policy that fails to
// compile keeps its last good version in force and reports Ready=False with
// the error; a new policy that never compiled is not in force (and says so).
type PolicyStore struct {
	reader client.Reader
	writer client.Client // for status; nil: no status updates (offline)
	log    logr.Logger

	snapshot atomic.Pointer[runs.Set]
	trigger  chan struct{}

	mu       sync.Mutex
	lastGood map[string]*runs.Policy // by UID
}

// NewPolicyStore registers its informer with c; call Run after c starts.
// The snapshot starts as the built-in default alone.
func NewPolicyStore(ctx context.Context, c cache.Cache, writer client.Client, log logr.Logger) (*PolicyStore, error) {
	s := &PolicyStore{reader: c, writer: writer, log: log, trigger: make(chan struct{}, 1), lastGood: map[string]*runs.Policy{}}
	s.snapshot.Store(runs.NewSet(runs.BuiltinDefault()))
	inf, err := c.GetInformer(ctx, &v1alpha1.ClusterRunPolicy{})
	if err != nil {
		return nil, fmt.Errorf("watching ClusterRunPolicies: %w", err)
	}
	poke := func() {
		select {
		case s.trigger <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return nil, fmt.Errorf("watching ClusterRunPolicies: %w", err)
	}
	poke()
	return s, nil
}

// Current returns the snapshot in force.
func (s *PolicyStore) Current() *runs.Set { return s.snapshot.Load() }

// Run rebuilds the snapshot on every change until ctx is done.
func (s *PolicyStore) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.trigger:
			if err := s.Reload(ctx); err != nil {
				s.log.Error(err, "reloading run policies; the previous snapshot stays in force")
			}
		}
	}
}

// Reload compiles every ClusterRunPolicy and publishes the new snapshot.
func (s *PolicyStore) Reload(ctx context.Context) error {
	var list v1alpha1.ClusterRunPolicyList
	if err := s.reader.List(ctx, &list); err != nil {
		return fmt.Errorf("listing ClusterRunPolicies: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var inForce []*runs.Policy
	type status struct {
		p    *v1alpha1.ClusterRunPolicy
		cond metav1.Condition
	}
	var statuses []status
	seen := map[string]bool{}
	for i := range list.Items {
		p := &list.Items[i]
		uid := string(p.UID)
		seen[uid] = true
		compiled, err := runs.Compile(p)
		cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Compiled", Message: "in force", ObservedGeneration: p.Generation}
		switch {
		case err == nil:
			s.lastGood[uid] = compiled
			inForce = append(inForce, compiled)
		case s.lastGood[uid] != nil:
			inForce = append(inForce, s.lastGood[uid])
			cond.Status, cond.Reason = metav1.ConditionFalse, "Invalid"
			cond.Message = fmt.Sprintf("%v; generation %d stays in force", err, s.lastGood[uid].Generation)
		default:
			cond.Status, cond.Reason = metav1.ConditionFalse, "Invalid"
			cond.Message = fmt.Sprintf("%v; the policy is not in force", err)
		}
		if err != nil {
			s.log.Info("run policy does not compile", "policy", p.Name, "generation", p.Generation, "error", err.Error())
		}
		statuses = append(statuses, status{p, cond})
	}
	for uid := range s.lastGood {
		if !seen[uid] {
			delete(s.lastGood, uid)
		}
	}
	s.snapshot.Store(runs.NewSet(runs.BuiltinDefault(), inForce...))
	// Status after the snapshot: Ready=True means the policy is in force.
	for _, st := range statuses {
		s.setStatus(ctx, st.p, st.cond)
	}
	return nil
}

func (s *PolicyStore) setStatus(ctx context.Context, p *v1alpha1.ClusterRunPolicy, cond metav1.Condition) {
	if s.writer == nil {
		return
	}
	cur := meta.FindStatusCondition(p.Status.Conditions, cond.Type)
	if cur != nil && cur.Status == cond.Status && cur.Message == cond.Message && cur.ObservedGeneration == cond.ObservedGeneration && p.Status.ObservedGeneration == p.Generation {
		return
	}
	upd := p.DeepCopy()
	meta.SetStatusCondition(&upd.Status.Conditions, cond)
	upd.Status.ObservedGeneration = p.Generation
	if err := s.writer.Status().Update(ctx, upd); err != nil {
		// Another replica may have written it; the next event retries.
		s.log.V(1).Info("updating policy status", "policy", p.Name, "error", err.Error())
	}
}
