package runguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/rbac"
	"github.com/tollgate-dev/tollgate/policy/runs"
)

// CacheCluster answers the run guard's questions from informer caches: no
// API call is made on the request path. The RBAC index is rebuilt when a
// Role, ClusterRole or binding changes, at the next request that needs it.
type CacheCluster struct {
	reader client.Reader
	// live answers what the cache says does not exist: an object created an
	// instant before the run (kubectl apply -f with both) may not be cached yet.
	live client.Reader

	dirty atomic.Bool
	mu    sync.Mutex
	index atomic.Pointer[rbac.Index]
}

// NewCacheCluster registers the informers it needs with c (start c afterwards).
// live is an uncached reader asked only when the cache misses.
func NewCacheCluster(ctx context.Context, c cache.Cache, live client.Reader) (*CacheCluster, error) {
	cc := &CacheCluster{reader: c, live: live}
	cc.dirty.Store(true)
	mark := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { cc.dirty.Store(true) },
		UpdateFunc: func(any, any) { cc.dirty.Store(true) },
		DeleteFunc: func(any) { cc.dirty.Store(true) },
	}
	for _, obj := range []client.Object{&rbacv1.Role{}, &rbacv1.ClusterRole{}, &rbacv1.RoleBinding{}, &rbacv1.ClusterRoleBinding{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(mark); err != nil {
			return nil, fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	for _, obj := range []client.Object{&pipelinev1.Task{}, &pipelinev1.Pipeline{}, saMeta(), nsMeta()} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	return cc, nil
}

func saMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

func nsMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

// get reads from the cache, and from the API server when the cache has no such object.
func (c *CacheCluster) get(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := c.reader.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && c.live != nil {
		return c.live.Get(ctx, key, obj)
	}
	return err
}

// Task implements runs.Cluster.
func (c *CacheCluster) Task(ctx context.Context, ns, name string) (*pipelinev1.Task, error) {
	t := &pipelinev1.Task{}
	if err := c.get(ctx, client.ObjectKey{Namespace: ns, Name: name}, t); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, runs.ErrNotFound
		}
		return nil, err
	}
	return t, nil
}

// Pipeline implements runs.Cluster.
func (c *CacheCluster) Pipeline(ctx context.Context, ns, name string) (*pipelinev1.Pipeline, error) {
	p := &pipelinev1.Pipeline{}
	if err := c.get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, runs.ErrNotFound
		}
		return nil, err
	}
	return p, nil
}

// TaskRun reads a TaskRun from the API server (runs are not cached: only
// Pod admissions with pipeline or task exemptions in force read them).
func (c *CacheCluster) TaskRun(ctx context.Context, ns, name string) (*pipelinev1.TaskRun, error) {
	tr := &pipelinev1.TaskRun{}
	if err := c.live.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, tr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, runs.ErrNotFound
		}
		return nil, err
	}
	return tr, nil
}

// PipelineRun reads a PipelineRun from the API server.
func (c *CacheCluster) PipelineRun(ctx context.Context, ns, name string) (*pipelinev1.PipelineRun, error) {
	pr := &pipelinev1.PipelineRun{}
	if err := c.live.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, runs.ErrNotFound
		}
		return nil, err
	}
	return pr, nil
}

// ServiceAccountExists implements runs.Cluster.
func (c *CacheCluster) ServiceAccountExists(ctx context.Context, ns, name string) (bool, error) {
	err := c.get(ctx, client.ObjectKey{Namespace: ns, Name: name}, saMeta())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Labels implements Namespaces. A namespace that is not in the cache is an
// error: the request is denied rather than checked against no policy.
func (c *CacheCluster) Labels(ctx context.Context, name string) (map[string]string, error) {
	m := nsMeta()
	if err := c.get(ctx, client.ObjectKey{Name: name}, m); err != nil {
		return nil, err
	}
	return m.Labels, nil
}

// RBAC implements runs.Cluster.
func (c *CacheCluster) RBAC(ctx context.Context) (*rbac.Index, error) {
	if !c.dirty.Load() {
		if ix := c.index.Load(); ix != nil {
			return ix, nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty.Load() {
		if ix := c.index.Load(); ix != nil {
			return ix, nil
		}
	}
	// Clear first: a change during the rebuild marks it dirty again.
	c.dirty.Store(false)
	var (
		roles  rbacv1.RoleList
		croles rbacv1.ClusterRoleList
		rbs    rbacv1.RoleBindingList
		crbs   rbacv1.ClusterRoleBindingList
	)
	for _, l := range []client.ObjectList{&roles, &croles, &rbs, &crbs} {
		// No deep copy: the index shares the cached rule slices, which informers replace, never mutate.
		if err := c.reader.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			c.dirty.Store(true)
			return nil, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	ix := rbac.Build(rbac.Objects{Roles: roles.Items, ClusterRoles: croles.Items, RoleBindings: rbs.Items, ClusterRoleBindings: crbs.Items})
	c.index.Store(ix)
	return ix, nil
}
