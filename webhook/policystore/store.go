// Package policystore turns a kind of policy CRD into an immutable, compiled
// snapshot that handlers read without locks. It recompiles on every change
// of the policies (and on a timer, for trust material that lives outside
// them), keeps a policy's last good version in force when a new one fails
// to compile, and reports each policy's Ready condition in its status.
package policystore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// ConditionReady is the condition type every policy reports.
const ConditionReady = "Ready"

// Object is a policy resource with Tollgate's policy status.
type Object interface {
	client.Object
	PolicyStatus() *v1alpha1.PolicyStatus
}

// Config says how to read, compile and publish one kind of policy.
type Config[O Object, C any] struct {
	// Watch is an object of the kind, for the informer.
	Watch O
	// List returns every policy of the kind.
	List func(ctx context.Context, r client.Reader) ([]O, error)
	// Compile checks a policy; the error names the field at fault.
	Compile func(ctx context.Context, o O) (C, error)
	// Generation is the generation a compiled policy was made from.
	Generation func(C) int64
	// Publish receives the policies in force after each reload.
	Publish func([]C)
	// Packages returns the Rego packages a compiled policy defines (nil: no
	// check). A package may be defined by one policy only: a policy that
	// defines one an older policy already has does not come into force.
	Packages func(C) []string
	// Resync also reloads this often (0: only on changes).
	Resync time.Duration
}

// Store reloads the policies of one kind.
type Store[O Object, C any] struct {
	cfg     Config[O, C]
	reader  client.Reader
	writer  client.Client // status; nil: no status updates
	log     logr.Logger
	trigger chan struct{}

	mu       sync.Mutex
	lastGood map[string]C // by UID
}

// New registers an informer for the kind with c; call Run after c starts.
func New[O Object, C any](ctx context.Context, c cache.Cache, writer client.Client, cfg Config[O, C], log logr.Logger) (*Store[O, C], error) {
	s := &Store[O, C]{cfg: cfg, reader: c, writer: writer, log: log, trigger: make(chan struct{}, 1), lastGood: map[string]C{}}
	kind := fmt.Sprintf("%T", cfg.Watch)
	inf, err := c.GetInformer(ctx, cfg.Watch)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", kind, err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}); err != nil {
		return nil, fmt.Errorf("watching %s: %w", kind, err)
	}
	s.poke()
	return s, nil
}

func (s *Store[O, C]) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run reloads on every change (and every Resync) until ctx is done.
func (s *Store[O, C]) Run(ctx context.Context) {
	var tick <-chan time.Time
	if s.cfg.Resync > 0 {
		t := time.NewTicker(s.cfg.Resync)
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
			s.log.Error(err, "reloading policies; the previous snapshot stays in force")
		}
	}
}

// Reload compiles every policy and publishes those in force.
func (s *Store[O, C]) Reload(ctx context.Context) error {
	list, err := s.cfg.List(ctx, s.reader)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var inForce []C
	type status struct {
		o    O
		cond metav1.Condition
	}
	var statuses []status
	seen := map[string]bool{}
	// Oldest first: on a package clash, the policy that had it first keeps it.
	sort.SliceStable(list, func(i, j int) bool {
		ti, tj := list[i].GetCreationTimestamp(), list[j].GetCreationTimestamp()
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return list[i].GetName() < list[j].GetName()
	})
	owners := map[string]string{}
	claim := func(name string, c C) error {
		if s.cfg.Packages == nil {
			return nil
		}
		for _, pkg := range s.cfg.Packages(c) {
			if owner, taken := owners[pkg]; taken && owner != name {
				return fmt.Errorf("rego package %s is already defined by policy %s; package names must be unique across policies", pkg, owner)
			}
		}
		for _, pkg := range s.cfg.Packages(c) {
			owners[pkg] = name
		}
		return nil
	}
	for _, o := range list {
		uid := string(o.GetUID())
		seen[uid] = true
		compiled, err := s.compile(ctx, o)
		if err == nil {
			err = claim(o.GetName(), compiled)
		}
		cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Compiled", Message: "in force", ObservedGeneration: o.GetGeneration()}
		last, hasLast := s.lastGood[uid]
		switch {
		case err == nil:
			s.lastGood[uid] = compiled
			inForce = append(inForce, compiled)
		case hasLast && claim(o.GetName(), last) == nil:
			inForce = append(inForce, last)
			cond.Status, cond.Reason = metav1.ConditionFalse, "Invalid"
			cond.Message = fmt.Sprintf("%v; generation %d stays in force", err, s.cfg.Generation(last))
		default:
			cond.Status, cond.Reason = metav1.ConditionFalse, "Invalid"
			cond.Message = fmt.Sprintf("%v; the policy is not in force", err)
		}
		if err != nil {
			s.log.Info("policy does not compile", "policy", o.GetName(), "generation", o.GetGeneration(), "error", err.Error())
		}
		statuses = append(statuses, status{o, cond})
	}
	for uid := range s.lastGood {
		if !seen[uid] {
			delete(s.lastGood, uid)
		}
	}
	s.cfg.Publish(inForce)
	// Status after publishing: Ready=True means the policy is in force.
	for _, st := range statuses {
		s.setStatus(ctx, st.o, st.cond)
	}
	return nil
}

// compile compiles one policy; a panic in third-party parsing (OPA, PEM,
// KMS clients) of what a policy holds is the policy's error, not the end of
// the process.
func (s *Store[O, C]) compile(ctx context.Context, o O) (c C, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("compiling the policy failed internally (recovered panic: %v)", p)
		}
	}()
	return s.cfg.Compile(ctx, o)
}

func (s *Store[O, C]) setStatus(ctx context.Context, o O, cond metav1.Condition) {
	if s.writer == nil {
		return
	}
	st := o.PolicyStatus()
	cur := meta.FindStatusCondition(st.Conditions, cond.Type)
	if cur != nil && cur.Status == cond.Status && cur.Message == cond.Message && cur.ObservedGeneration == cond.ObservedGeneration && st.ObservedGeneration == o.GetGeneration() {
		return
	}
	upd := o.DeepCopyObject().(O)
	meta.SetStatusCondition(&upd.PolicyStatus().Conditions, cond)
	upd.PolicyStatus().ObservedGeneration = o.GetGeneration()
	if err := s.writer.Status().Update(ctx, upd); err != nil {
		// Another replica may have written it; the next event retries.
		s.log.V(1).Info("updating policy status", "policy", o.GetName(), "error", err.Error())
	}
}

// LiveConfigMaps reads the data of ConfigMaps from live (uncached): what a
// policy's Rego modules reference, re-read on every compile.
func LiveConfigMaps(live client.Reader) func(ctx context.Context, namespace, name string) (map[string]string, error) {
	return func(ctx context.Context, namespace, name string) (map[string]string, error) {
		var cm corev1.ConfigMap
		if err := live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cm); err != nil {
			return nil, err
		}
		return cm.Data, nil
	}
}
