package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// Images decides a live workload (imagegate.Handler.Audit).
type Images interface {
	Audit(ctx context.Context, group, version, kind, resource, namespace string, object []byte) (*images.Outcome, string, error)
}

// Runs decides a live run (runguard.Handler.Audit).
type Runs interface {
	Audit(ctx context.Context, kind, namespace string, object []byte) (*policy.Decision, error)
}

// Scanner lists what runs in a namespace and has each object decided.
type Scanner struct {
	Reader client.Reader // lists live objects (the API server, not a cache)
	Images Images
	Runs   Runs
	// Policies, when set, says which policies are in the cluster (names
	// and generations) and which compiled snapshots decide: the loop runs
	// a pass when the first changes, once the second has followed.
	Policies func(ctx context.Context) (declared, compiled string)
	// Running, when set, lists the images running in each gated
	// namespace (from an informer cache, cheap to ask every few seconds):
	// the loop audits a namespace at once when an image its last audit
	// did not see runs there.
	Running func(ctx context.Context) (map[string][]string, error)
}

// workloadKinds are the kinds the image gate reviews, with their
// resources. Pods, ReplicaSets and Jobs a controller owns are audited
// through their owner: that is what a fix changes.
var workloadKinds = []struct {
	gvk      schema.GroupVersionKind
	resource string
}{
	{schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "pods"},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "deployments"},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, "statefulsets"},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, "daemonsets"},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, "replicasets"},
	{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, "jobs"},
	{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}, "cronjobs"},
}

var runKinds = []schema.GroupVersionKind{
	{Group: "tekton.dev", Version: "v1", Kind: "PipelineRun"},
	{Group: "tekton.dev", Version: "v1", Kind: "TaskRun"},
}

// Namespace audits one namespace: every workload the image gate reviews
// (when the namespace is gated: enforce, warn or audit) and every run not
// finished yet (a TaskRun of a PipelineRun through its PipelineRun). An
// object that cannot be decided is an error row, never a pass; gated is
// false when the image gate does not look at the namespace.
func (s *Scanner) Namespace(ctx context.Context, ns string) (rows []Result, gated bool, err error) {
	var nsObj corev1.Namespace
	if err := s.Reader.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
		return nil, false, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	gated = nsObj.Labels[imagegate.LabelGate] != ""
	var objs []unstructured.Unstructured
	for _, gvk := range auditedKinds() {
		items, err := s.list(ctx, gvk, ns)
		if err != nil {
			return nil, gated, err
		}
		objs = append(objs, items...)
	}
	return s.Objects(ctx, ns, objs), gated, nil
}

// Objects audits objects of namespace ns, listed or read from manifests:
// the workloads and runs among them, as Namespace does, in the order
// Namespace lists them (by kind, then name). Objects of other kinds are
// not audited (Audited says which are).
func (s *Scanner) Objects(ctx context.Context, ns string, objs []unstructured.Unstructured) []Result {
	order := map[schema.GroupVersionKind]int{}
	for i, gvk := range auditedKinds() {
		order[gvk] = i + 1
	}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(order[a.GroupVersionKind()], order[b.GroupVersionKind()]), cmp.Compare(a.GetName(), b.GetName()))
	})
	var rows []Result
	for i := range objs {
		u := &objs[i]
		gvk := u.GroupVersionKind()
		if order[gvk] == 0 {
			continue
		}
		obj := objectOf(u)
		subject := obj.Kind + " " + ns + "/" + obj.Name
		raw, err := json.Marshal(u.Object)
		if err != nil {
			rows = append(rows, Errored(obj, subject, err))
			continue
		}
		if resource, ok := workloadResource(gvk); ok {
			if metav1.GetControllerOf(u) != nil {
				continue
			}
			out, skip, err := s.Images.Audit(ctx, gvk.Group, gvk.Version, gvk.Kind, resource, ns, raw)
			switch {
			case err != nil:
				rows = append(rows, Errored(obj, subject, err))
			case skip != "": // not gated
			default:
				rows = append(rows, FromImages(obj, out)...)
			}
			continue
		}
		if finished(u) || (gvk.Kind == "TaskRun" && ownedByPipelineRun(u)) {
			continue
		}
		d, err := s.Runs.Audit(ctx, gvk.Kind, ns, raw)
		if err != nil {
			rows = append(rows, Errored(obj, subject, err))
			continue
		}
		rows = append(rows, FromRun(obj, d)...)
	}
	return rows
}

// Audited reports whether objects of a kind are audited: the workloads
// the image gate reviews and tekton.dev/v1 runs.
func Audited(gvk schema.GroupVersionKind) bool {
	return slices.Contains(auditedKinds(), gvk)
}

func auditedKinds() []schema.GroupVersionKind {
	out := make([]schema.GroupVersionKind, 0, len(workloadKinds)+len(runKinds))
	for _, wk := range workloadKinds {
		out = append(out, wk.gvk)
	}
	return append(out, runKinds...)
}

func workloadResource(gvk schema.GroupVersionKind) (string, bool) {
	for _, wk := range workloadKinds {
		if wk.gvk == gvk {
			return wk.resource, true
		}
	}
	return "", false
}

// list reads every object of a kind in ns, a page at a time.
func (s *Scanner) list(ctx context.Context, gvk schema.GroupVersionKind, ns string) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	cont := ""
	for {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := s.Reader.List(ctx, l, client.InNamespace(ns), client.Limit(500), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", gvk.Kind, ns, err)
		}
		out = append(out, l.Items...)
		if cont = l.GetContinue(); cont == "" {
			return out, nil
		}
	}
}

func objectOf(u *unstructured.Unstructured) Object {
	return Object{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), UID: string(u.GetUID())}
}

// finished reports whether a run's Succeeded condition is True or False.
func finished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Succeeded" && (m["status"] == "True" || m["status"] == "False") {
			return true
		}
	}
	return false
}

func ownedByPipelineRun(u *unstructured.Unstructured) bool {
	c := metav1.GetControllerOf(u)
	return c != nil && c.Kind == "PipelineRun"
}
