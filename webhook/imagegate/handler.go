package imagegate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/webhook/reply"
)

// Namespaces answers a namespace's labels.
type Namespaces interface {
	Labels(ctx context.Context, name string) (map[string]string, error)
}

// Credentials builds the keychain a workload's images are pulled with:
// its image pull secrets and its service account's. The string
// identifies the credentials (so verifications with different credentials
// are never shared).
type Credentials interface {
	Keychain(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, string, error)
}

// Deps are what the handler needs.
type Deps struct {
	Policies    func() *images.Set
	Gate        *images.Gate
	Namespaces  Namespaces
	Credentials Credentials
	// Budget bounds one admission's verification, well inside the
	// webhook's timeout.
	Budget time.Duration
	// ObserveRego, if set, is told how long user rules took and what they found.
	ObserveRego func(d time.Duration, denials, warnings []policy.Violation)
}

// Handler is the image gate's mutating and validating admission handler.
type Handler struct {
	deps Deps
}

// New returns a handler.
func New(deps Deps) (*Handler, error) {
	if deps.Policies == nil || deps.Gate == nil || deps.Namespaces == nil || deps.Credentials == nil {
		return nil, errors.New("imagegate: Policies, Gate, Namespaces and Credentials are required")
	}
	if deps.Budget <= 0 {
		return nil, errors.New("imagegate: the verification budget must be positive")
	}
	return &Handler{deps: deps}, nil
}

// Handle implements admission.Handler for the validating path.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	out, _, resp := h.review(ctx, &req, false)
	if resp != nil {
		return *resp
	}
	return reply.Decision(ctx, &out.Decision)
}

// MutateHandler returns the mutating path: it pins every tag to the digest
// it verified, and denies at once what would be denied anyway. Warnings are
// left to the validating path, so a user sees each once.
func (h *Handler) MutateHandler() admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		out, pointers, resp := h.review(ctx, &req, true)
		if resp != nil {
			return *resp
		}
		if !out.Allowed() {
			return reply.Decision(ctx, &policy.Decision{Subject: out.Subject, Denials: out.Denials})
		}
		var patches []jsonpatch.JsonPatchOperation
		for field, pinned := range out.Pins {
			patches = append(patches, jsonpatch.JsonPatchOperation{Operation: "replace", Path: pointers[field], Value: pinned})
		}
		if len(patches) == 0 {
			return admission.Allowed("")
		}
		logf.FromContext(ctx).V(1).Info("pinned images to digests", "images", len(patches))
		return admission.Patched("", patches...)
	})
}

// review decides a request. A non-nil response ends the review (not
// reviewed, or an error); otherwise the outcome holds the decision, and the
// map gives the JSON pointer of each image field.
func (h *Handler) review(ctx context.Context, req *admission.Request, mutate bool) (*images.Outcome, map[string]string, *admission.Response) {
	end := func(r admission.Response) (*images.Outcome, map[string]string, *admission.Response) {
		return nil, nil, &r
	}
	if err := reply.WellFormed(req); err != nil {
		return end(reply.Error(err))
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return end(admission.Allowed(""))
	}
	kd, err := kindFor(req.Kind.Group, req.Kind.Version, req.Kind.Kind, req.Resource.Resource)
	if err != nil {
		return end(reply.Error(err))
	}
	switch {
	case req.SubResource == "":
	case kd.Kind == "Pod" && req.SubResource == "ephemeralcontainers":
	default:
		return end(admission.Allowed("the image gate does not review " + req.Resource.Resource + "/" + req.SubResource))
	}
	var old []byte
	if req.Operation == admissionv1.Update {
		old = req.OldObject.Raw
	}
	out, pointers, skip, err := h.decide(ctx, workloadReview{kind: kd, namespace: req.Namespace, object: req.Object.Raw, oldObject: old,
		operation: string(req.Operation), user: req.UserInfo.Username, groups: req.UserInfo.Groups}, mutate, false)
	switch {
	case err != nil:
		return end(reply.Error(err))
	case skip != "":
		return end(admission.Allowed(skip))
	}
	return out, pointers, nil
}

// AuditUser is the user an audited workload is decided as (Rego's
// input.request.userInfo.username).
const AuditUser = "tollgate-audit"

// Audit decides a live workload (JSON, as the API server serves it; kind
// and resource as admission names them) as its CREATE would be decided
// now if its namespace were enforced: every image, tags resolved to what
// they name now (as the mutating path does), with the same decide the
// webhook's two paths call. Namespaces labelled tollgate.dev/gate=audit
// are audited like enforce and warn ones; skip says why a workload was
// not (its namespace is not gated).
func (h *Handler) Audit(ctx context.Context, group, version, kind, resource, namespace string, object []byte) (out *images.Outcome, skip string, err error) {
	kd, err := kindFor(group, version, kind, resource)
	if err != nil {
		return nil, "", err
	}
	out, _, skip, err = h.decide(ctx, workloadReview{kind: kd, namespace: namespace, object: object, operation: string(admissionv1.Create), user: AuditUser}, true, true)
	return out, skip, err
}

// workloadReview is one workload to decide, from an admission request or
// from the audit.
type workloadReview struct {
	kind              *kind
	namespace         string
	object, oldObject []byte // oldObject: the object before an UPDATE
	operation         string
	user              string
	groups            []string
}

// decide is the image gate's decision on a workload, for admission and
// audit alike. skip, when not empty, says why the workload is not
// reviewed (its namespace is not gated). An audit reviews namespaces
// labelled audit too, as warn: it reports, it never denies.
func (h *Handler) decide(ctx context.Context, r workloadReview, mutate, audit bool) (out *images.Outcome, pointers map[string]string, skip string, err error) {
	w, err := decode(r.kind, r.object)
	if err != nil {
		return nil, nil, "", err
	}
	var before map[string]bool
	if r.oldObject != nil {
		// An object on its way out (deletionTimestamp) is reviewed like any
		// other: removing its finalizers changes no image and passes without
		// a registry, but an image added on the way out is checked.
		old, err := decode(r.kind, r.oldObject)
		if err != nil {
			return nil, nil, "", err
		}
		before = old.imageSet()
	}
	nsLabels, err := h.deps.Namespaces.Labels(ctx, r.namespace)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading namespace %q: %w", r.namespace, err)
	}
	mode, err := gate(r.namespace, nsLabels)
	if err != nil {
		return nil, nil, "", err
	}
	switch {
	case mode == "":
		return nil, nil, "namespace not gated", nil
	case mode == GateAudit && !audit:
		return nil, nil, "namespace audited (" + LabelGate + "=" + GateAudit + "), not gated", nil
	}

	imgs, pointers := newImages(w, before)
	subject := fmt.Sprintf("%s %s/%s", r.kind.Kind, r.namespace, w.name())
	if len(imgs) == 0 {
		return &images.Outcome{Decision: policy.Decision{Subject: subject}}, pointers, "", nil
	}
	sa, secrets := w.serviceAccount(), w.pullSecrets()
	ir := images.Request{
		Subject:         subject,
		Namespace:       r.namespace,
		NamespaceLabels: nsLabels,
		Warn:            mode != GateEnforce && !audit, // an audit reports what enforcing would deny
		Images:          imgs,
		ResolveTags:     mutate,
		Credentials: func(ctx context.Context) (authn.Keychain, string, error) {
			return h.deps.Credentials.Keychain(ctx, r.namespace, sa, secrets)
		},
		Object:    r.object,
		Operation: r.operation,
		User:      r.user,
		Groups:    r.groups,
	}
	bctx, cancel := context.WithTimeout(ctx, h.deps.Budget)
	defer cancel()
	start := time.Now()
	out = h.deps.Gate.Check(bctx, h.deps.Policies(), ir)
	if out.Rego && h.deps.ObserveRego != nil && !mutate && !audit {
		h.deps.ObserveRego(out.RegoDuration, out.RegoDenials, out.RegoWarnings)
	}
	logf.FromContext(ctx).V(1).Info("checked images", "images", len(imgs), "verified", len(out.Results), "cache_hits", out.Hits, "denials", len(out.Denials), "duration", time.Since(start).String())
	return out, pointers, "", nil
}

// gate reads a namespace's tollgate.dev/gate label: "" (not gated),
// enforce, warn or audit; any other value is refused, not guessed.
func gate(namespace string, labels map[string]string) (string, error) {
	switch v, ok := labels[LabelGate]; {
	case !ok:
		return "", nil
	case v == GateEnforce, v == GateWarn, v == GateAudit:
		return v, nil
	default:
		return "", reply.BadRequest("namespace %s has %s=%q; the gate knows only %q, %q and %q, and does not guess", namespace, LabelGate, v, GateEnforce, GateWarn, GateAudit)
	}
}

// newImages are the workload's images not in before, and the JSON pointer
// of each image field. An image the object already ran was checked when it
// was admitted; re-checking it on every update would block scaling and
// finalizers whenever a registry is slow or a policy tightens.
func newImages(w *workload, before map[string]bool) ([]images.ContainerImage, map[string]string) {
	all, ptrs := w.images()
	pointers := map[string]string{}
	var imgs []images.ContainerImage
	for i, ci := range all {
		if before[ci.Image] {
			continue
		}
		imgs = append(imgs, ci)
		pointers[ci.Field] = ptrs[i]
	}
	return imgs, pointers
}
