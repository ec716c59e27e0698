package signer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tollgate-dev/tollgate/signer/config"
	"github.com/tollgate-dev/tollgate/signer/hints"
	"github.com/tollgate-dev/tollgate/signer/provenance"
)

// run is what Reconcile needs of either kind.
type run struct {
	obj            client.Object
	managedBy      *string
	serviceAccount string
	pullSecrets    []string
	kind           string
	done           bool
	raw            []byte // the object as the API server serves it
	statement      func(config.Config) (*intoto.Statement, error)
	results        []hints.Result
	artifact       func(config.Config) config.Artifact
}

// ReconcileTaskRun signs a finished TaskRun.
func (r *Reconciler) ReconcileTaskRun(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	tr := &pipelinev1.TaskRun{}
	raw, err := r.getRaw(ctx, req.NamespacedName, "TaskRun", tr)
	if err != nil || raw == nil {
		return reconcile.Result{}, err
	}
	return r.reconcile(ctx, &run{
		obj: tr, managedBy: tr.Spec.ManagedBy, serviceAccount: tr.Spec.ServiceAccountName, pullSecrets: podPullSecrets(tr.Spec.PodTemplate), kind: "TaskRun", done: isDone(tr.Status.GetCondition(apis.ConditionSucceeded)), raw: raw,
		statement: func(c config.Config) (*intoto.Statement, error) {
			return provenance.TaskRunStatement(c.TaskRuns.Format, tr, provenance.Options{BuilderID: c.BuilderID, BuildType: c.BuildType})
		},
		results:  hints.TaskRunResults(tr),
		artifact: func(c config.Config) config.Artifact { return c.TaskRuns },
	})
}

// ReconcilePipelineRun signs a finished PipelineRun with its child TaskRuns.
func (r *Reconciler) ReconcilePipelineRun(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pr := &pipelinev1.PipelineRun{}
	raw, err := r.getRaw(ctx, req.NamespacedName, "PipelineRun", pr)
	if err != nil || raw == nil {
		return reconcile.Result{}, err
	}
	return r.reconcile(ctx, &run{
		obj: pr, managedBy: pr.Spec.ManagedBy, serviceAccount: pr.Spec.TaskRunTemplate.ServiceAccountName, pullSecrets: podPullSecrets(pr.Spec.TaskRunTemplate.PodTemplate), kind: "PipelineRun", done: isDone(pr.Status.GetCondition(apis.ConditionSucceeded)), raw: raw,
		statement: func(c config.Config) (*intoto.Statement, error) {
			children, err := r.children(ctx, pr)
			if err != nil {
				return nil, err
			}
			p := &provenance.PipelineRun{Run: pr, TaskRuns: children}
			return provenance.PipelineRunStatement(c.PipelineRuns.Format, p, provenance.Options{BuilderID: c.BuilderID, BuildType: c.BuildType}, c.DeepInspection)
		},
		results:  hints.PipelineRunResults(pr),
		artifact: func(c config.Config) config.Artifact { return c.PipelineRuns },
	})
}

// children returns the child TaskRuns of a PipelineRun: those its status
// names (status.childReferences, written only by the Tekton controller)
// and that it controls (an ownerReference with its UID). Labels such as
// tekton.dev/pipelineRun are not used: any tenant can set them on a TaskRun
// of their own to slip its results into another run's provenance.
func (r *Reconciler) children(ctx context.Context, pr *pipelinev1.PipelineRun) ([]*pipelinev1.TaskRun, error) {
	var out []*pipelinev1.TaskRun
	for _, ref := range pr.Status.ChildReferences {
		if ref.Kind != "TaskRun" {
			continue
		}
		tr := &pipelinev1.TaskRun{}
		// As served, not from a cache: the child's final status may be newer
		// than what a cache has seen when the PipelineRun finishes.
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: pr.Namespace, Name: ref.Name}, tr); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("reading TaskRun %s/%s of %s: %w", pr.Namespace, ref.Name, pr.Name, err)
		}
		if !metav1.IsControlledBy(tr, pr) {
			logf.FromContext(ctx).Info("ignoring a child reference to a TaskRun the PipelineRun does not control", "taskrun", ref.Name)
			continue
		}
		out = append(out, tr)
	}
	return out, nil
}

// getRaw reads a run from the API server as served (the spec digest is over
// those bytes) and decodes it, as Tekton does, case-sensitively.
func (r *Reconciler) getRaw(ctx context.Context, key client.ObjectKey, kind string, into client.Object) ([]byte, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(pipelinev1.SchemeGroupVersion.WithKind(kind))
	if err := r.Reader.Get(ctx, key, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s %s: %w", kind, key, err)
	}
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", kind, key, err)
	}
	return raw, nil
}

func podPullSecrets(t *pod.Template) []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.ImagePullSecrets))
	for _, s := range t.ImagePullSecrets {
		out = append(out, s.Name)
	}
	return out
}

func isDone(c *apis.Condition) bool {
	return c != nil && (c.Status == corev1.ConditionTrue || c.Status == corev1.ConditionFalse)
}

// notReadyRetry is how soon a run is tried again while the signer has no
// configuration or key to sign it with.
const notReadyRetry = 30 * time.Second

// reconcile is the state machine of one run: skip what another controller
// manages, release what is decided, protect a running run with the
// finalizer, then sign a finished one — recording "true", retrying what may
// pass with a growing delay, and recording "failed" with an Event for the
// rest.
func (r *Reconciler) reconcile(ctx context.Context, rn *run) (reconcile.Result, error) {
	log := logf.FromContext(ctx).WithValues("kind", rn.kind, "namespace", rn.obj.GetNamespace(), "name", rn.obj.GetName())
	if m := rn.managedBy; m != nil && *m != pipeline.ManagedBy && !slices.Contains(r.Opts.SignManagedBy, *m) {
		log.V(1).Info("skipped: managed by another controller", "managedBy", *m)
		return reconcile.Result{}, nil
	}
	ann := rn.obj.GetAnnotations()
	switch ann[AnnotationSigned] {
	case "true", "failed":
		return reconcile.Result{}, r.removeFinalizer(ctx, rn.obj)
	}
	if !rn.done {
		// Protect the run until it is signed: a finished run cannot be deleted
		// before the signer has seen it.
		if rn.obj.GetDeletionTimestamp() == nil && !controllerutil.ContainsFinalizer(rn.obj, Finalizer) {
			patch := client.MergeFrom(rn.obj.DeepCopyObject().(client.Object))
			controllerutil.AddFinalizer(rn.obj, Finalizer)
			return reconcile.Result{}, r.Client.Patch(ctx, rn.obj, patch)
		}
		return reconcile.Result{}, nil
	}
	if next, err := time.Parse(time.RFC3339Nano, ann[AnnotationNextAttempt]); err == nil {
		if wait := time.Until(next); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
	}
	snap, err := r.trust.current(ctx)
	if err != nil {
		log.Info("cannot sign yet", "reason", err.Error())
		return reconcile.Result{RequeueAfter: notReadyRetry}, nil
	}
	artSigner, imageSigner, err := r.trust.signers(ctx, snap, rn.artifact(snap.Config))
	if err != nil && !snap.Config.Fulcio.Enabled {
		log.Info("cannot sign yet", "reason", err.Error())
		return reconcile.Result{RequeueAfter: notReadyRetry}, nil
	}
	tlog, err2 := r.trust.logFor(snap.Config, rn)
	if err2 != nil {
		log.Info("cannot sign yet", "reason", err2.Error())
		return reconcile.Result{RequeueAfter: notReadyRetry}, nil
	}
	start := time.Now()
	var annotations map[string]string
	var f *failure
	if err != nil {
		// Keyless: Fulcio, or the identity token, failed. The run says why
		// and waits for them, as for the transparency log.
		f = outage(ReasonCertificateFailed, "%v", err)
	} else {
		annotations, f = r.sign(ctx, rn, snap.Config, artSigner, imageSigner, tlog)
	}
	if f == nil {
		annotations[AnnotationSigned] = "true"
		if err := r.finish(ctx, rn.obj, annotations); err != nil {
			return reconcile.Result{}, err
		}
		r.metrics.observe(rn.kind, "signed", "", time.Since(start))
		r.Recorder.Eventf(rn.obj, corev1.EventTypeNormal, "Signed", "signed and stored in %s", time.Since(start).Round(time.Millisecond))
		log.Info("signed")
		return reconcile.Result{}, nil
	}
	attempts, _ := strconv.Atoi(ann[AnnotationRetries])
	attempts++
	if f.permanent || (attempts >= MaxAttempts && !f.outage) {
		r.metrics.observe(rn.kind, "failed", f.reason, 0)
		r.Recorder.Event(rn.obj, corev1.EventTypeWarning, f.reason, f.msg)
		log.Info("not signed", "reason", f.reason, "message", f.msg)
		return reconcile.Result{}, r.finish(ctx, rn.obj, map[string]string{AnnotationSigned: "failed", AnnotationRetries: strconv.Itoa(attempts)})
	}
	wait := min(time.Duration(attempts)*r.Opts.RetryDelay, MaxRetryDelay)
	r.metrics.observe(rn.kind, "retry", f.reason, 0)
	of := fmt.Sprintf("attempt %d of %d", attempts, MaxAttempts)
	if f.outage {
		of = fmt.Sprintf("attempt %d; retried until it answers", attempts)
	}
	r.Recorder.Event(rn.obj, corev1.EventTypeWarning, f.reason, fmt.Sprintf("%s (%s; will retry in %s)", f.msg, of, wait))
	patch := client.MergeFrom(rn.obj.DeepCopyObject().(client.Object))
	rn.obj.SetAnnotations(withAnnotations(rn.obj.GetAnnotations(), map[string]string{
		AnnotationRetries:     strconv.Itoa(attempts),
		AnnotationNextAttempt: time.Now().Add(wait).UTC().Format(time.RFC3339Nano),
	}))
	if err := r.Client.Patch(ctx, rn.obj, patch); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// finish writes the outcome annotations and releases the run.
func (r *Reconciler) finish(ctx context.Context, obj client.Object, annotations map[string]string) error {
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	obj.SetAnnotations(withAnnotations(obj.GetAnnotations(), annotations))
	controllerutil.RemoveFinalizer(obj, Finalizer)
	if err := r.Client.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("recording the outcome on %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func (r *Reconciler) removeFinalizer(ctx context.Context, obj client.Object) error {
	if !controllerutil.ContainsFinalizer(obj, Finalizer) {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	controllerutil.RemoveFinalizer(obj, Finalizer)
	return client.IgnoreNotFound(r.Client.Patch(ctx, obj, patch))
}

func withAnnotations(cur, add map[string]string) map[string]string {
	out := make(map[string]string, len(cur)+len(add))
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range add {
		out[k] = v
	}
	return out
}
