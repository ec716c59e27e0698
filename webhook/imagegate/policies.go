package imagegate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// ConditionReady is the condition type every policy reports.
const ConditionReady = "Ready"

// PolicyStore compiles ClusterImagePolicies into an immutable snapshot on
// every change, and again every Resync (so a rotated key in a Secret or a
// KMS takes effect without a policy edit). A policy that fails to compile
// keeps its last good version in force and reports Ready=False with the
// error; a policy that never compiled is not in force, and says so.
type PolicyStore struct {
	reader client.Reader // policies (cached)
	live   client.Reader // secrets (read directly)
	writer client.Client // status; nil: no status updates
	deps   images.Deps
	log    logr.Logger
	resync time.Duration

	snapshot atomic.Pointer[images.Set]
	trigger  chan struct{}

	mu       sync.Mutex
	lastGood map[string]*images.Policy
}

// NewPolicyStore registers its informer with c; call Run after c starts.
// The snapshot starts empty: a gated namespace denies until policies load.
func NewPolicyStore(ctx context.Context, c cache.Cache, live client.Reader, writer client.Client, resync time.Duration, log logr.Logger) (*PolicyStore, error) {
	s := &PolicyStore{reader: c, live: live, writer: writer, log: log, resync: resync, trigger: make(chan struct{}, 1), lastGood: map[string]*images.Policy{}}
	s.snapshot.Store(images.NewSet())
	inf, err := c.GetInformer(ctx, &v1alpha1.ClusterImagePolicy{})
	if err != nil {
		return nil, fmt.Errorf("watching ClusterImagePolicies: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}); err != nil {
		return nil, fmt.Errorf("watching ClusterImagePolicies: %w", err)
	}
	s.poke()
	return s, nil
}

func (s *PolicyStore) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Current returns the snapshot in force.
func (s *PolicyStore) Current() *images.Set { return s.snapshot.Load() }

// Run rebuilds the snapshot on every change and every resync until ctx is done.
func (s *PolicyStore) Run(ctx context.Context) {
	var tick <-chan time.Time
	if s.resync > 0 {
		t := time.NewTicker(s.resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-s.trigger:
		}
		if err := s.Reload(ctx); err != nil {
			s.log.Error(err, "reloading image policies; the previous snapshot stays in force")
		}
	}
}

func (s *PolicyStore) secret(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	var sec corev1.Secret
	if err := s.live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sec); err != nil {
		return nil, err
	}
	return sec.Data, nil
}

// Reload compiles every ClusterImagePolicy and publishes the new snapshot.
func (s *PolicyStore) Reload(ctx context.Context) error {
	var list v1alpha1.ClusterImagePolicyList
	if err := s.reader.List(ctx, &list); err != nil {
		return fmt.Errorf("listing ClusterImagePolicies: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deps := s.deps
	deps.Secret = s.secret
	var inForce []*images.Policy
	seen := map[string]bool{}
	type status struct {
		p    *v1alpha1.ClusterImagePolicy
		cond metav1.Condition
	}
	var statuses []status
	for i := range list.Items {
		p := &list.Items[i]
		uid := string(p.UID)
		seen[uid] = true
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		compiled, err := images.Compile(cctx, p, deps)
		cancel()
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
			s.log.Info("image policy does not compile", "policy", p.Name, "generation", p.Generation, "error", err.Error())
		}
		statuses = append(statuses, status{p, cond})
	}
	for uid := range s.lastGood {
		if !seen[uid] {
			delete(s.lastGood, uid)
		}
	}
	s.snapshot.Store(images.NewSet(inForce...))
	for _, st := range statuses {
		s.setStatus(ctx, st.p, st.cond)
	}
	return nil
}

func (s *PolicyStore) setStatus(ctx context.Context, p *v1alpha1.ClusterImagePolicy, cond metav1.Condition) {
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
		s.log.V(1).Info("updating policy status", "policy", p.Name, "error", err.Error())
	}
}
