package runs

import (
	"context"
	"fmt"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tollgate-dev/tollgate/policy/rbac"
)

// StaticCluster is a Cluster made from a fixed set of objects: what
// `tollgate check --cluster-state DIR` reads. It is the offline model of a
// cluster, answering exactly as the webhook's informer caches would for the
// same objects.
type StaticCluster struct {
	tasks      map[string]*pipelinev1.Task
	pipelines  map[string]*pipelinev1.Pipeline
	sas        map[string]bool
	namespaces map[string]map[string]string
	index      *rbac.Index
}

// StaticObjects are the objects a StaticCluster is made of.
type StaticObjects struct {
	Namespaces      []corev1.Namespace
	ServiceAccounts []corev1.ServiceAccount
	Tasks           []pipelinev1.Task
	Pipelines       []pipelinev1.Pipeline
	RBAC            rbac.Objects
}

// NewStaticCluster indexes objs.
func NewStaticCluster(objs StaticObjects) *StaticCluster {
	c := &StaticCluster{
		tasks:      map[string]*pipelinev1.Task{},
		pipelines:  map[string]*pipelinev1.Pipeline{},
		sas:        map[string]bool{},
		namespaces: map[string]map[string]string{},
		index:      rbac.Build(objs.RBAC),
	}
	for i := range objs.Namespaces {
		c.namespaces[objs.Namespaces[i].Name] = objs.Namespaces[i].Labels
	}
	for i := range objs.ServiceAccounts {
		c.sas[objs.ServiceAccounts[i].Namespace+"/"+objs.ServiceAccounts[i].Name] = true
	}
	for i := range objs.Tasks {
		t := &objs.Tasks[i]
		c.tasks[t.Namespace+"/"+t.Name] = t
	}
	for i := range objs.Pipelines {
		p := &objs.Pipelines[i]
		c.pipelines[p.Namespace+"/"+p.Name] = p
	}
	return c
}

// Task implements Cluster.
func (c *StaticCluster) Task(_ context.Context, ns, name string) (*pipelinev1.Task, error) {
	if t, ok := c.tasks[ns+"/"+name]; ok {
		return t.DeepCopy(), nil
	}
	return nil, ErrNotFound
}

// Pipeline implements Cluster.
func (c *StaticCluster) Pipeline(_ context.Context, ns, name string) (*pipelinev1.Pipeline, error) {
	if p, ok := c.pipelines[ns+"/"+name]; ok {
		return p.DeepCopy(), nil
	}
	return nil, ErrNotFound
}

// ServiceAccountExists implements Cluster.
func (c *StaticCluster) ServiceAccountExists(_ context.Context, ns, name string) (bool, error) {
	return c.sas[ns+"/"+name], nil
}

// RBAC implements Cluster.
func (c *StaticCluster) RBAC(context.Context) (*rbac.Index, error) { return c.index, nil }

// NamespaceLabels returns the labels of a namespace in the state, and whether it is there.
func (c *StaticCluster) NamespaceLabels(name string) (map[string]string, bool) {
	l, ok := c.namespaces[name]
	return l, ok
}

// Labels answers a namespace's labels; a namespace not in the state is an error.
func (c *StaticCluster) Labels(_ context.Context, name string) (map[string]string, error) {
	l, ok := c.namespaces[name]
	if !ok {
		return nil, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	return l, nil
}
