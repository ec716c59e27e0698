package webhook

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/webhook/audit"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// AuditSyncTimeout bounds the wait for the audit's informer caches.
const AuditSyncTimeout = 2 * time.Minute

// AuditCredentialsTTL is how long the audit keeps a workload's pull
// secrets once read.
const AuditCredentialsTTL = time.Minute

// NewAuditScanner wires the audit's decisions as the webhook wires
// admission's — the run guard's and the image gate's handlers, informer
// caches of what they read, every ClusterRunPolicy and ClusterImagePolicy
// compiled as the webhook compiles it — but reads only: no policy status
// is written, no stamp keys are read or created. It returns once the
// caches have synced and the policies are loaded; the caches run until ctx
// is done, and so do the policies, recompiled on every change and every
// cfg.PolicyResync.
func NewAuditScanner(ctx context.Context, cfg Config, log logr.Logger) (*audit.Scanner, error) {
	scheme, c, cl, err := clients(cfg)
	if err != nil {
		return nil, err
	}
	var readOnly client.Client // nil: the policy stores write no status
	cluster, err := runguard.NewCacheCluster(ctx, c, cl)
	if err != nil {
		return nil, err
	}
	runStore, err := runguard.NewPolicyStore(ctx, c, cl, readOnly, cfg.PolicyResync, log.WithName("run-policies"))
	if err != nil {
		return nil, err
	}
	rg, err := runguard.New(runguard.Deps{Policies: runStore.Current, Cluster: cluster, Namespaces: cluster, Identities: cfg.Identities})
	if err != nil {
		return nil, err
	}
	imageStore, err := imagegate.NewPolicyStore(ctx, c, cl, readOnly, cfg.PolicyResync, log.WithName("image-policies"))
	if err != nil {
		return nil, err
	}
	ig, _, _, err := newImageGate(cfg.Images, imagegate.Deps{
		Policies:    imageStore.Current,
		Namespaces:  cluster,
		Credentials: &memoCredentials{inner: imagegate.SecretCredentials{Reader: cl}, ttl: AuditCredentialsTTL, memo: map[string]memoKeychain{}},
	})
	if err != nil {
		return nil, err
	}
	// The images running, for the loop to notice a new one between passes:
	// every Pod, cut down to its images as it is read.
	pods, err := cache.New(cfg.RestConfig, cache.Options{Scheme: scheme, DefaultTransform: podImages})
	if err != nil {
		return nil, fmt.Errorf("creating the Pod cache: %w", err)
	}
	if _, err := pods.GetInformer(ctx, &corev1.Pod{}); err != nil {
		return nil, fmt.Errorf("watching Pods: %w", err)
	}
	cacheErr := make(chan error, 2)
	go func() { cacheErr <- c.Start(ctx) }()
	go func() { cacheErr <- pods.Start(ctx) }()
	// Informers retry a forbidden list forever: bound the wait and say
	// what the audit must be allowed to read.
	syncCtx, cancel := context.WithTimeout(ctx, AuditSyncTimeout)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) || !pods.WaitForCacheSync(syncCtx) {
		select {
		case err := <-cacheErr:
			return nil, fmt.Errorf("informer cache: %w", err)
		default:
			return nil, fmt.Errorf("the informer caches did not sync within %s: the audit lists and watches Namespaces, ServiceAccounts, RBAC, Tasks, Pipelines, StepActions, ClusterRunPolicies, ClusterImagePolicies and Pods cluster-wide (the chart's tollgate-audit ClusterRole); check that the kubeconfig's user may", AuditSyncTimeout)
		}
	}
	for what, s := range map[string]policies{"run policies": runStore, "image policies": imageStore} {
		if err := s.Reload(ctx); err != nil {
			return nil, fmt.Errorf("loading %s: %w", what, err)
		}
		go s.Run(ctx) // kept current while ctx lasts (tollgate audit --watch)
	}
	policies := func(ctx context.Context) (declared, compiled string) {
		var rps v1alpha1.ClusterRunPolicyList
		var ips v1alpha1.ClusterImagePolicyList
		if c.List(ctx, &rps) != nil || c.List(ctx, &ips) != nil {
			return "", ""
		}
		var lines []string // the cache lists in no order
		for _, p := range rps.Items {
			lines = append(lines, fmt.Sprintf("run %s %d %s", p.Name, p.Generation, p.UID))
		}
		for _, p := range ips.Items {
			lines = append(lines, fmt.Sprintf("image %s %d %s", p.Name, p.Generation, p.UID))
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n"), fmt.Sprintf("%p %p", runStore.Current(), imageStore.Current())
	}
	running := func(ctx context.Context) (map[string][]string, error) {
		var nss corev1.NamespaceList
		if err := c.List(ctx, &nss, client.HasLabels{imagegate.LabelGate}); err != nil {
			return nil, err
		}
		out := make(map[string][]string, len(nss.Items))
		for _, ns := range nss.Items {
			var list corev1.PodList
			if err := pods.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
				return nil, err
			}
			imgs := []string{}
			for i := range list.Items {
				for _, ctr := range list.Items[i].Spec.Containers {
					imgs = append(imgs, ctr.Image)
				}
			}
			slices.Sort(imgs)
			out[ns.Name] = slices.Compact(imgs)
		}
		return out, nil
	}
	return &audit.Scanner{Reader: cl, Images: ig, Runs: rg, Policies: policies, Running: running}, nil
}

// podImages cuts a Pod down to its name and images (init and ephemeral
// containers' too) as the informer reads it: the audit holds every Pod of
// the cluster in memory.
func podImages(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}}
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, ctr := range list {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Image: ctr.Image})
		}
	}
	for _, ctr := range p.Spec.EphemeralContainers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Image: ctr.Image})
	}
	return out, nil
}

// memoCredentials keeps each (namespace, service account, pull secrets)
// keychain for ttl: an audit pass decides thousands of workloads that
// share a few service accounts, and reading their pull secrets from the
// API server for each one made the client's rate limit the pass's bound
// (5,000 Pods: 99 s). Admission reads them every time; a pass may use
// credentials up to ttl old.
type memoCredentials struct {
	inner imagegate.Credentials
	ttl   time.Duration
	mu    sync.Mutex
	memo  map[string]memoKeychain
}

type memoKeychain struct {
	kc     authn.Keychain
	id     string
	expiry time.Time
}

func (m *memoCredentials) Keychain(ctx context.Context, namespace, serviceAccount string, names []string) (authn.Keychain, string, error) {
	key := namespace + "\x00" + serviceAccount + "\x00" + strings.Join(names, "\x00")
	now := time.Now()
	m.mu.Lock()
	e, ok := m.memo[key]
	m.mu.Unlock()
	if ok && now.Before(e.expiry) {
		return e.kc, e.id, nil
	}
	kc, id, err := m.inner.Keychain(ctx, namespace, serviceAccount, names)
	if err != nil {
		return nil, "", err // errors are not kept
	}
	m.mu.Lock()
	if len(m.memo) > 10000 {
		m.memo = map[string]memoKeychain{}
	}
	m.memo[key] = memoKeychain{kc: kc, id: id, expiry: now.Add(m.ttl)}
	m.mu.Unlock()
	return kc, id, nil
}
