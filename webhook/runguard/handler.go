package runguard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/webhook/reply"
)

// Namespaces answers a namespace's labels.
type Namespaces interface {
	Labels(ctx context.Context, name string) (map[string]string, error)
}

// Deps are what the handlers need.
type Deps struct {
	// Policies returns the current policy snapshot (never nil once ready).
	Policies func() *runs.Set
	// Cluster answers Tasks, Pipelines, service accounts and RBAC.
	Cluster runs.Cluster
	// Namespaces answers namespace labels (for policy selection).
	Namespaces Namespaces
	// Identities are the Tekton controller and Tollgate identities.
	Identities runs.Identities
	// ObserveRego, if set, is told how long user rules took and what they found.
	ObserveRego func(d time.Duration, denials, warnings []policy.Violation)
	// StampKeys returns the stamp keys in force (the MAC of the spec
	// digest); nil, or a nil function: runs are stamped without a MAC.
	// When they are configured but cannot be read, runs are denied.
	StampKeys func() (*specdigest.Keys, error)
	// Runs reads the TaskRun and PipelineRun that own a Tekton Pod, to
	// resolve its pipeline and task for exemptions; nil: Pods get none.
	Runs Runs
}

// Runs reads runs by name.
type Runs interface {
	TaskRun(ctx context.Context, namespace, name string) (*pipelinev1.TaskRun, error)
	PipelineRun(ctx context.Context, namespace, name string) (*pipelinev1.PipelineRun, error)
}

// Handler is the run guard's mutating and validating admission handler.
type Handler struct {
	deps Deps
}

// New returns a handler.
func New(deps Deps) (*Handler, error) {
	if deps.Policies == nil || deps.Cluster == nil || deps.Namespaces == nil {
		return nil, errors.New("runguard: Policies, Cluster and Namespaces are required")
	}
	return &Handler{deps: deps}, nil
}

func badRequest(format string, args ...any) error { return reply.BadRequest(format, args...) }

func errored(err error) admission.Response { return reply.Error(err) }

func wellFormed(req *admission.Request) error { return reply.WellFormed(req) }

// runKind returns PipelineRun or TaskRun for a tekton.dev request, checking
// that the object agrees with the resource it was sent as.
func runKind(req *admission.Request) (string, error) {
	if req.Kind.Group != "tekton.dev" {
		return "", badRequest("unsupported kind %s: the run guard handles tekton.dev PipelineRuns and TaskRuns", req.Kind.String())
	}
	if req.Kind.Version != "v1" {
		return "", badRequest("unsupported version %s: the run guard reviews tekton.dev/v1 (register the webhook with matchPolicy: Equivalent)", req.Kind.Version)
	}
	if req.Kind.Kind != runs.KindPipelineRun && req.Kind.Kind != runs.KindTaskRun {
		return "", badRequest("unsupported kind %s: the run guard handles tekton.dev PipelineRuns and TaskRuns", req.Kind.String())
	}
	switch {
	case req.Kind.Kind == runs.KindPipelineRun && req.Resource.Resource == "pipelineruns":
	case req.Kind.Kind == runs.KindTaskRun && req.Resource.Resource == "taskruns":
	default:
		return "", badRequest("kind %s does not match resource %s", req.Kind.Kind, req.Resource.Resource)
	}
	return req.Kind.Kind, nil
}

// facts starts the facts of a run review: the request, the policies of
// its namespace, the stamp keys and identities in force.
func (h *Handler) facts(ctx context.Context, req *admission.Request, kind string) (*runs.Facts, error) {
	nsLabels, err := h.deps.Namespaces.Labels(ctx, req.Namespace)
	if err != nil {
		return nil, fmt.Errorf("reading namespace %q: %w", req.Namespace, err)
	}
	keys, err := h.stampKeys()
	if err != nil {
		return nil, err
	}
	return &runs.Facts{
		Review: runs.Review{
			Kind: kind, Namespace: req.Namespace,
			Operation: string(req.Operation), SubResource: req.SubResource,
			User: req.UserInfo.Username, Groups: req.UserInfo.Groups,
			Object: req.Object.Raw, OldObject: req.OldObject.Raw,
		},
		NamespaceLabels: nsLabels,
		Policies:        h.deps.Policies().ForNamespace(nsLabels),
		Keys:            keys,
		Identities:      h.deps.Identities,
	}, nil
}

// Mutate stamps the spec digest on a run being created and writes the
// configured default limits into inline steps that have none.
func (h *Handler) Mutate(ctx context.Context, req admission.Request) admission.Response {
	if err := wellFormed(&req); err != nil {
		return errored(err)
	}
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("")
	}
	kind, err := runKind(&req)
	if err != nil {
		return errored(err)
	}
	f, err := h.facts(ctx, &req, kind)
	if err != nil {
		return errored(err)
	}
	m, err := runs.MutateRun(ctx, h.deps.Cluster, f)
	if err != nil {
		return errored(err)
	}
	if m.Object == nil {
		// The common case: only the stamp is written.
		return admission.Patched("", stampPatch(m.HasAnnotations, m.Annotations)...)
	}
	if len(m.Defaulted) > 0 {
		logf.FromContext(ctx).V(1).Info("wrote default limits", "defaulted", m.Defaulted)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, m.Object)
}

// stampKeys returns the stamp keys in force, or nil when none are
// configured; keys that are configured but unreadable are an error (the
// run is denied rather than stamped without its MAC).
func (h *Handler) stampKeys() (*specdigest.Keys, error) {
	if h.deps.StampKeys == nil {
		return nil, nil
	}
	k, err := h.deps.StampKeys()
	if err != nil {
		return nil, fmt.Errorf("reading the stamp keys: %w", err)
	}
	return k, nil
}

// stampPatch is the JSON patch that writes the stamp annotations.
func stampPatch(hasAnnotations bool, ann map[string]string) []jsonpatch.JsonPatchOperation {
	if !hasAnnotations {
		return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/metadata/annotations", Value: ann}}
	}
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]jsonpatch.JsonPatchOperation, 0, len(ann))
	for _, k := range keys {
		// RFC 6901: "/" in a member name is written "~1".
		out = append(out, jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/annotations/" + strings.ReplaceAll(k, "/", "~1"), Value: ann[k]})
	}
	return out
}

// Handle implements admission.Handler for the validating path.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	return h.Validate(ctx, req)
}

// MutateHandler returns the mutating path as an admission.Handler.
func (h *Handler) MutateHandler() admission.Handler { return admission.HandlerFunc(h.Mutate) }

// Validate decides a run (CREATE: every check; UPDATE and status: integrity)
// or a Tekton-created Pod.
func (h *Handler) Validate(ctx context.Context, req admission.Request) admission.Response {
	if err := wellFormed(&req); err != nil {
		return errored(err)
	}
	if req.Kind.Group == "" && req.Kind.Kind == "Pod" {
		return h.validatePod(ctx, &req)
	}
	if req.Kind.Group == "tekton.dev" && (req.Kind.Kind == runs.KindTask || req.Kind.Kind == runs.KindPipeline) {
		return h.validateDefinition(ctx, &req)
	}
	kind, err := runKind(&req)
	if err != nil {
		return errored(err)
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return admission.Allowed("")
	}
	f, err := h.facts(ctx, &req, kind)
	if err != nil {
		return errored(err)
	}
	if err := f.Gather(ctx, h.deps.Cluster); err != nil {
		return errored(err)
	}
	out := runs.Decide(ctx, f)
	if h.deps.ObserveRego != nil && out.Rego > 0 {
		h.deps.ObserveRego(out.Rego, out.User.Denials, out.User.Warnings)
	}
	return respond(ctx, &out.Decision)
}

func (h *Handler) validatePod(ctx context.Context, req *admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("")
	}
	if req.Resource.Resource != "pods" {
		return errored(badRequest("kind Pod does not match resource %s", req.Resource.Resource))
	}
	pod := &corev1.Pod{}
	if err := apijson.Unmarshal(req.Object.Raw, pod); err != nil {
		return errored(badRequest("decoding Pod: %w", err))
	}
	if _, ok := pod.Labels[runs.LabelTaskRun]; !ok {
		return admission.Allowed("not a Tekton pod")
	}
	pod.Namespace = req.Namespace
	nsLabels, err := h.deps.Namespaces.Labels(ctx, req.Namespace)
	if err != nil {
		return errored(fmt.Errorf("reading namespace %q: %w", req.Namespace, err))
	}
	ps := h.deps.Policies().ForNamespace(nsLabels)
	owner, err := h.podOwner(ctx, pod, runs.HasNamedExemptions(ps))
	if err != nil {
		return errored(fmt.Errorf("reading the owners of Pod %s/%s: %w", pod.Namespace, pod.Name, err))
	}
	d := runs.EvaluatePod(ps, pod, owner)
	return respond(ctx, &d)
}

// podOwner resolves a Tekton Pod's TaskRun and (for exemptions, when
// pipelineToo) its PipelineRun through controller owner references checked
// by UID. Whatever cannot be verified stays empty: no exemption by pipeline
// or task then applies, and no stored Task spec is checked.
func (h *Handler) podOwner(ctx context.Context, pod *corev1.Pod, pipelineToo bool) (runs.PodOwner, error) {
	var o runs.PodOwner
	ref := metav1.GetControllerOf(pod)
	if h.deps.Runs == nil || ref == nil || ref.Kind != runs.KindTaskRun || !strings.HasPrefix(ref.APIVersion, "tekton.dev/") {
		return o, nil
	}
	tr, err := h.deps.Runs.TaskRun(ctx, pod.Namespace, ref.Name)
	if errors.Is(err, runs.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	if tr.UID != ref.UID {
		return o, nil
	}
	o.TaskRun, o.TaskSpec = tr.Name, tr.Status.TaskSpec
	if tr.Spec.TaskRef != nil && tr.Spec.TaskRef.Resolver == "" {
		o.TaskName = tr.Spec.TaskRef.Name
	}
	pref := metav1.GetControllerOf(tr)
	if !pipelineToo || pref == nil || pref.Kind != runs.KindPipelineRun || !strings.HasPrefix(pref.APIVersion, "tekton.dev/") {
		return o, nil
	}
	pr, err := h.deps.Runs.PipelineRun(ctx, pod.Namespace, pref.Name)
	if errors.Is(err, runs.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	if pr.UID != pref.UID {
		return o, nil
	}
	if pr.Spec.PipelineRef != nil && pr.Spec.PipelineRef.Resolver == "" {
		o.PipelineName = pr.Spec.PipelineRef.Name
	}
	for _, c := range pr.Status.ChildReferences {
		if c.Name == tr.Name {
			o.PipelineTask = c.PipelineTaskName
		}
	}
	if o.PipelineTask == "" {
		// Tekton creates the Pod before it lists the child in the
		// PipelineRun's status: the label Tekton set on its own child.
		o.PipelineTask = tr.Labels[runs.LabelPipelineTask]
	}
	return o, nil
}

// validateDefinition decides a Task or Pipeline: Tekton copies its
// annotations into the runs it creates, so it may not carry reserved ones.
func (h *Handler) validateDefinition(ctx context.Context, req *admission.Request) admission.Response {
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return admission.Allowed("")
	}
	if req.SubResource != "" {
		return admission.Allowed("")
	}
	want := map[string]string{runs.KindTask: "tasks", runs.KindPipeline: "pipelines"}[req.Kind.Kind]
	if req.Resource.Resource != want {
		return errored(badRequest("kind %s does not match resource %s", req.Kind.Kind, req.Resource.Resource))
	}
	if len(req.Object.Raw) == 0 {
		return errored(badRequest("the request carries no object"))
	}
	nsLabels, err := h.deps.Namespaces.Labels(ctx, req.Namespace)
	if err != nil {
		return errored(fmt.Errorf("reading namespace %q: %w", req.Namespace, err))
	}
	d := runs.CheckDefinition(h.deps.Policies().ForNamespace(nsLabels), req.Kind.Kind, req.Namespace, req.Name, req.Object.Raw, req.UserInfo.Username, h.deps.Identities)
	return respond(ctx, &d)
}

func respond(ctx context.Context, d *policy.Decision) admission.Response {
	return reply.Decision(ctx, d)
}

// AuditUser is the user an audited run is decided as: not the Tekton
// controller, not trusted with reserved annotations (they are removed
// from the run first).
const AuditUser = "tollgate-audit"

// Audit decides a live PipelineRun or TaskRun (JSON, as the API server
// serves it) as its CREATE would be decided now, with the same MutateRun
// and Decide the webhook's two paths call: the run as its author wrote it
// (status, server-set metadata and the annotations only Tekton, the
// signer and the run guard write are removed), the namespace's policies
// and the cluster as they are now.
func (h *Handler) Audit(ctx context.Context, kind, namespace string, object []byte) (*policy.Decision, error) {
	authored, err := runs.Authored(object)
	if err != nil {
		return nil, err
	}
	nsLabels, err := h.deps.Namespaces.Labels(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("reading namespace %q: %w", namespace, err)
	}
	a, err := runs.Admit(ctx, h.deps.Cluster, runs.Facts{
		Review:          runs.Review{Kind: kind, Namespace: namespace, User: AuditUser, Object: authored},
		NamespaceLabels: nsLabels,
		Policies:        h.deps.Policies().ForNamespace(nsLabels),
		Identities:      h.deps.Identities,
	})
	if err != nil {
		return nil, err
	}
	return &a.Decision, nil
}
