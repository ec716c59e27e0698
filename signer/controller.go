package signer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sigstore/sigstore/pkg/signature/options"

	intoto "github.com/in-toto/attestation/go/v1"

	imagepolicy "github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/images/pullsecrets"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/signer/config"
	"github.com/tollgate-dev/tollgate/signer/hints"
	"github.com/tollgate-dev/tollgate/signer/provenance"
	"github.com/tollgate-dev/tollgate/signer/sign"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/signer/storage/tekton"
)

// Annotations and the finalizer the signer owns (Chains' names where Chains has one).
const (
	AnnotationSigned  = "chains.tekton.dev/signed"
	AnnotationRetries = "chains.tekton.dev/retries"
	// AnnotationNextAttempt holds when a run that failed for a passing
	// reason is tried again; the retry count patch itself wakes the
	// controller, so the backoff lives on the run, and survives restarts.
	AnnotationNextAttempt = "tollgate.dev/signer-next-attempt"
	Finalizer             = "tollgate.dev/signer"
	// MaxAttempts is how often a run is tried before it is marked failed.
	MaxAttempts = 3
)

// Reasons a run ends "failed"; each is also the reason of its Event.
const (
	ReasonNoArtifacts      = "NoArtifacts"
	ReasonSpecChanged      = "SpecChanged"
	ReasonNoStamp          = "NoStamp"
	ReasonStorageFailed    = "StorageFailed"
	ReasonProvenanceFailed = "ProvenanceFailed"
	ReasonUnsupported      = "Unsupported"
	ReasonMalformedHint    = "MalformedHint"
	ReasonArtifactNotOwned = "ArtifactNotOwned"
	ReasonBadStamp         = "BadStamp"
)

// Options configure the signing controller.
type Options struct {
	// Namespace holds chains-config and signing-secrets.
	Namespace string
	// RequireStamp refuses to sign a run without tollgate.dev/spec-digest:
	// set when the run guard is installed, so every run must carry it.
	RequireStamp bool
	// Registry options (auth, transport) for oci storage.
	Registry *oci.Store
	// SignManagedBy lists spec.managedBy values (besides Tekton's own) whose
	// runs are signed too; runs managed by another controller are skipped.
	SignManagedBy []string
	// PublicKeySecret, when set, names a Secret (in Namespace) the signer
	// keeps holding the public key of its signing key (key cosign.pub), for
	// image policies to trust without access to signing-secrets.
	PublicKeySecret string
	// StampKeySecret names the Secret (in Namespace) with the run guard's
	// stamp keys: a stamped run is signed only if its tollgate.dev/spec-mac
	// verifies, so a run the run guard never admitted — created where it
	// does not run, with a digest anyone can compute — is refused.
	StampKeySecret string
	// RequireOwnership signs an image a run claims only when a
	// ClusterRunPolicy selecting the run's namespace lists its repository
	// (spec.artifacts.repositories); otherwise the run fails with
	// ArtifactNotOwned. Off, any claim is signed, as Tekton Chains does.
	RequireOwnership bool
	// RetryDelay is the wait before the first retry of a run that failed
	// for a reason that may pass (a registry error); it grows linearly.
	RetryDelay time.Duration
}

// Validate reports missing options.
func (o Options) Validate() error {
	if o.Namespace == "" {
		return errors.New("the signer's namespace is empty")
	}
	return nil
}

// failure is a reason a run cannot be signed; permanent ones are not retried.
type failure struct {
	reason    string
	msg       string
	permanent bool
}

func (f *failure) Error() string { return f.reason + ": " + f.msg }

func permanent(reason, format string, args ...any) *failure {
	return &failure{reason: reason, msg: fmt.Sprintf(format, args...), permanent: true}
}

func transient(reason, format string, args ...any) *failure {
	return &failure{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// Reconciler signs finished TaskRuns and PipelineRuns.
type Reconciler struct {
	Client   client.Client
	Reader   client.Reader // uncached, for the raw object the digest is computed over
	Recorder record.EventRecorder
	Opts     Options
	metrics  *metrics

	mu        sync.Mutex
	cfgRV     string
	cfg       *config.Config // last good
	cfgErr    error
	secretRV  string
	signer    *sign.Signer
	signerErr error
	kmsKey    string // the KMS configuration kmsSigner was loaded for
	kmsSigner *sign.Signer
}

// signerFor returns the signer an artifact is configured with (x509: the
// key in signing-secrets; kms: signers.kms.kmsref), loading a KMS client
// once per configuration.
func (r *Reconciler) signerFor(ctx context.Context, cfg config.Config, x509 *sign.Signer, which string) (*sign.Signer, error) {
	switch which {
	case config.SignerX509:
		if x509 == nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			return nil, r.signerErr
		}
		return x509, nil
	case config.SignerKMS:
		auth := options.RPCAuth{Address: cfg.KMS.AuthAddress, Token: cfg.KMS.AuthToken, OIDC: options.RPCAuthOIDC{Path: cfg.KMS.OIDCPath, Role: cfg.KMS.OIDCRole}}
		if cfg.KMS.AuthTokenPath != "" {
			b, err := os.ReadFile(cfg.KMS.AuthTokenPath)
			if err != nil {
				return nil, fmt.Errorf("signers.kms.auth.token-path: %w", err)
			}
			auth.Token = strings.TrimSpace(string(b))
		}
		key := fmt.Sprintf("%s|%s|%s|%s|%s", cfg.KMS.Ref, auth.Address, auth.Token, auth.OIDC.Path, auth.OIDC.Role)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.kmsSigner != nil && r.kmsKey == key {
			return r.kmsSigner, nil
		}
		s, err := sign.FromKMS(ctx, cfg.KMS.Ref, auth)
		if err != nil {
			return nil, err
		}
		r.kmsSigner, r.kmsKey = s, key
		return s, nil
	}
	return nil, fmt.Errorf("unknown signer %q", which)
}

// Ready reports why the signer cannot sign now, or nil.
func (r *Reconciler) Ready(ctx context.Context) error {
	cfg, x509, err := r.current(ctx)
	if cfg.BuilderID == "" {
		return err
	}
	for _, a := range []config.Artifact{cfg.TaskRuns, cfg.PipelineRuns, cfg.OCI} {
		if a.Enabled() {
			if _, err := r.signerFor(ctx, cfg, x509, a.Signer); err != nil {
				return err
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfgErr // the last good configuration is in force, but say the new one failed
}

// current returns the configuration and signer in force, reloading them when
// the ConfigMap or Secret changed. A configuration that does not parse keeps
// the last good one in force (and is reported); a missing Secret is an error
// that names the command that creates it.
func (r *Reconciler) current(ctx context.Context) (config.Config, *sign.Signer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Opts.Namespace, Name: config.ConfigMapName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		if r.cfg == nil {
			d := config.Default()
			r.cfg, r.cfgRV = &d, ""
		}
	case err != nil:
		return config.Config{}, nil, fmt.Errorf("reading ConfigMap %s/%s: %w", r.Opts.Namespace, config.ConfigMapName, err)
	case cm.ResourceVersion != r.cfgRV:
		r.cfgRV = cm.ResourceVersion
		c, perr := config.Parse(cm.Data)
		if perr != nil {
			r.cfgErr = fmt.Errorf("ConfigMap %s/%s: %w", r.Opts.Namespace, config.ConfigMapName, perr)
			r.Recorder.Event(cm, corev1.EventTypeWarning, "InvalidConfig", r.cfgErr.Error())
		} else {
			r.cfg, r.cfgErr = &c, nil
		}
	}
	if r.cfg == nil {
		return config.Config{}, nil, r.cfgErr
	}
	sec := &corev1.Secret{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: r.Opts.Namespace, Name: sign.SecretName}, sec)
	switch {
	case apierrors.IsNotFound(err):
		r.signer, r.secretRV = nil, ""
		r.signerErr = fmt.Errorf("Secret %s/%s does not exist: create it with `cosign generate-key-pair k8s://%s/%s`", r.Opts.Namespace, sign.SecretName, r.Opts.Namespace, sign.SecretName)
	case err != nil:
		return config.Config{}, nil, fmt.Errorf("reading Secret %s/%s: %w", r.Opts.Namespace, sign.SecretName, err)
	case sec.ResourceVersion != r.secretRV:
		r.secretRV = sec.ResourceVersion
		// Decrypting the key (scrypt) happens here, once per Secret version.
		r.signer, r.signerErr = sign.FromSecret(sec.Data)
		if r.signerErr != nil {
			r.signerErr = fmt.Errorf("Secret %s/%s: %w", r.Opts.Namespace, sign.SecretName, r.signerErr)
		}
	}
	if r.signer == nil {
		return *r.cfg, nil, r.signerErr
	}
	return *r.cfg, r.signer, r.cfgErr
}

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
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pr.Namespace, Name: ref.Name}, tr); err != nil {
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
	cfg, x509, err := r.current(ctx)
	if err != nil && x509 == nil && cfg.BuilderID == "" {
		log.Info("cannot sign yet", "reason", err.Error())
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	art := rn.artifact(cfg)
	var artSigner, ociSigner *sign.Signer
	if art.Enabled() {
		if artSigner, err = r.signerFor(ctx, cfg, x509, art.Signer); err != nil {
			log.Info("cannot sign yet", "signer", art.Signer, "reason", err.Error())
			return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
		}
	}
	if cfg.OCI.Enabled() {
		if ociSigner, err = r.signerFor(ctx, cfg, x509, cfg.OCI.Signer); err != nil {
			log.Info("cannot sign yet", "signer", cfg.OCI.Signer, "reason", err.Error())
			return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
		}
	}
	start := time.Now()
	annotations, f := r.sign(ctx, rn, cfg, artSigner, ociSigner)
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
	if f.permanent || attempts >= MaxAttempts {
		r.metrics.observe(rn.kind, "failed", f.reason, 0)
		r.Recorder.Event(rn.obj, corev1.EventTypeWarning, f.reason, f.msg)
		log.Info("not signed", "reason", f.reason, "message", f.msg)
		return reconcile.Result{}, r.finish(ctx, rn.obj, map[string]string{AnnotationSigned: "failed", AnnotationRetries: strconv.Itoa(attempts)})
	}
	delay := r.Opts.RetryDelay
	if delay <= 0 {
		delay = 5 * time.Second
	}
	wait := time.Duration(attempts) * delay
	r.metrics.observe(rn.kind, "retry", f.reason, 0)
	r.Recorder.Event(rn.obj, corev1.EventTypeWarning, f.reason, fmt.Sprintf("%s (attempt %d of %d; will retry in %s)", f.msg, attempts, MaxAttempts, wait))
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

// sign builds, signs and stores everything the configuration asks for, and
// returns the annotations to add, or why it could not.
func (r *Reconciler) sign(ctx context.Context, rn *run, cfg config.Config, s, imageSigner *sign.Signer) (map[string]string, *failure) {
	ann := rn.obj.GetAnnotations()
	stamp, stamped := ann[specdigest.Annotation]
	switch {
	case stamped:
		got, err := specdigest.OfObject(rn.raw)
		if err != nil {
			return nil, permanent(ReasonSpecChanged, "computing the spec digest: %v", err)
		}
		if got != stamp {
			return nil, permanent(ReasonSpecChanged, "the spec no longer matches the digest stamped at admission (stamped %s, now %s): refusing to sign", stamp, got)
		}
		if f := r.verifyMAC(ctx, rn, stamp); f != nil {
			return nil, f
		}
	case r.Opts.RequireStamp:
		return nil, permanent(ReasonNoStamp, "the run carries no %s annotation though the run guard is installed: it was not admitted by Tollgate; refusing to sign", specdigest.Annotation)
	}
	out := map[string]string{}
	art := rn.artifact(cfg)
	// The run's registry credentials are read only when something is pushed.
	var registry *oci.Store
	getRegistry := func() (*oci.Store, *failure) {
		if registry != nil {
			return registry, nil
		}
		reg, f := r.registryFor(ctx, rn)
		registry = reg
		return reg, f
	}
	images, rejected := hints.Images(rn.results)
	if len(rejected) > 0 {
		// The run meant to name an image; signing the rest and saying
		// "signed" would leave that image unsigned without anyone noticing.
		msgs := make([]string, len(rejected))
		for i, rj := range rejected {
			msgs[i] = rj.String()
		}
		return nil, permanent(ReasonMalformedHint, "%s", strings.Join(msgs, "; "))
	}
	owns, f := r.ownership(ctx, rn)
	if f != nil {
		return nil, f
	}
	for _, img := range images {
		if f := owns(img.Name+"@sha256:"+img.Digest["sha256"], img.Digest); f != nil {
			return nil, f
		}
	}
	stored := 0
	if art.Enabled() {
		st, err := rn.statement(cfg)
		if err != nil {
			return nil, permanent(ReasonProvenanceFailed, "building %s provenance: %v", art.Format, err)
		}
		// Every subject, not only those pushed: a statement stored on the
		// run can be copied to a registry by whoever reads the run.
		for _, sub := range st.GetSubject() {
			if f := owns(sub.GetName(), sub.GetDigest()); f != nil {
				return nil, f
			}
		}
		payload, err := provenance.Marshal(st)
		if err != nil {
			return nil, permanent(ReasonProvenanceFailed, "encoding provenance: %v", err)
		}
		env, err := s.Envelope(ctx, payload)
		if err != nil {
			return nil, transient(ReasonProvenanceFailed, "signing provenance: %v", err)
		}
		for _, backend := range art.Storage {
			switch backend {
			case config.StorageTekton:
				a, err := tekton.Annotations(tekton.Key(rn.kind, string(rn.obj.GetUID())), payload, env, nil, nil, ann)
				if err != nil {
					return nil, permanent(ReasonStorageFailed, "%v", err)
				}
				for k, v := range a {
					out[k] = v
				}
				stored++
			case config.StorageOCI:
				for _, img := range images {
					d, err := name.NewDigest(img.Name + "@sha256:" + img.Digest["sha256"])
					if err != nil {
						return nil, permanent(ReasonStorageFailed, "%v", err)
					}
					reg, f := getRegistry()
					if f != nil {
						return nil, f
					}
					if err := reg.StoreAttestation(ctx, d, env, nil, nil); err != nil {
						return nil, transient(ReasonStorageFailed, "%v", err)
					}
					stored++
				}
			}
		}
	}
	if cfg.OCI.Enabled() {
		for _, img := range images {
			d, err := name.NewDigest(img.Name + "@sha256:" + img.Digest["sha256"])
			if err != nil {
				return nil, permanent(ReasonStorageFailed, "%v", err)
			}
			for _, backend := range cfg.OCI.Storage {
				if backend != config.StorageOCI {
					return nil, permanent(ReasonUnsupported, "artifacts.oci.storage %q is not supported yet (use oci)", backend)
				}
				ss, err := oci.SimpleSigningPayload(d)
				if err != nil {
					return nil, permanent(ReasonStorageFailed, "%v", err)
				}
				sig, err := imageSigner.Sign(ctx, ss)
				if err != nil {
					return nil, transient(ReasonStorageFailed, "signing %s: %v", d, err)
				}
				reg, f := getRegistry()
				if f != nil {
					return nil, f
				}
				if err := reg.StoreSignature(ctx, d, ss, sig, nil, nil); err != nil {
					return nil, transient(ReasonStorageFailed, "%v", err)
				}
				stored++
			}
		}
	}
	if stored == 0 {
		return nil, permanent(ReasonNoArtifacts, "nothing was signed and stored: the run has no type-hinted output (IMAGE_URL/IMAGE_DIGEST, IMAGES) for the configured storage (%s storage %v, artifacts.oci.storage %v) and tekton storage is not configured", strings.ToLower(rn.kind), art.Storage, cfg.OCI.Storage)
	}
	return out, nil
}

// verifyMAC checks the stamp's MAC with the run guard's keys.
func (r *Reconciler) verifyMAC(ctx context.Context, rn *run, digest string) *failure {
	if r.Opts.StampKeySecret == "" {
		return nil
	}
	sec := &corev1.Secret{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Opts.Namespace, Name: r.Opts.StampKeySecret}, sec); err != nil {
		return transient(ReasonBadStamp, "reading the stamp keys %s/%s: %v", r.Opts.Namespace, r.Opts.StampKeySecret, err)
	}
	keys, err := specdigest.ParseKeys(sec.Data)
	if err != nil {
		return transient(ReasonBadStamp, "the stamp keys %s/%s: %v", r.Opts.Namespace, r.Opts.StampKeySecret, err)
	}
	ann := rn.obj.GetAnnotations()
	mac, ok := ann[specdigest.MACAnnotation]
	if !ok {
		return permanent(ReasonBadStamp, "the run carries no %s: the run guard did not admit it (a namespace it does not guard?); refusing to sign", specdigest.MACAnnotation)
	}
	if err := keys.Verify(rn.obj.GetNamespace(), rn.kind, digest, mac); err != nil {
		return permanent(ReasonBadStamp, "%s: %v; refusing to sign", specdigest.MACAnnotation, err)
	}
	return nil
}

// ownership returns the check of a claimed artifact against the
// repositories the run's namespace owns. Artifacts that are not image
// references (packages, files) are not the image gate's and pass.
func (r *Reconciler) ownership(ctx context.Context, rn *run) (func(ref string, digest map[string]string) *failure, *failure) {
	if !r.Opts.RequireOwnership {
		return func(string, map[string]string) *failure { return nil }, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: rn.obj.GetNamespace()}, ns); err != nil {
		return nil, transient(ReasonArtifactNotOwned, "reading namespace %s to decide which repositories it owns: %v", rn.obj.GetNamespace(), err)
	}
	var policies v1alpha1.ClusterRunPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return nil, transient(ReasonArtifactNotOwned, "listing ClusterRunPolicies to decide which repositories namespace %s owns: %v", ns.Name, err)
	}
	o := runs.OwnershipFor(policies.Items, ns.Labels)
	return func(ref string, digest map[string]string) *failure {
		if _, err := imagepolicy.ParseImage(ref); err != nil {
			return nil
		}
		if err := o.Owns(ref); err != nil {
			return permanent(ReasonArtifactNotOwned, "%s claims %s (%s): %v; refusing to sign", claimedBy(rn.results, digest), ref, rn.kind+" "+rn.obj.GetNamespace()+"/"+rn.obj.GetName(), err)
		}
		return nil
	}, nil
}

// claimedBy names the results that hold one of the digest's values.
func claimedBy(results []hints.Result, digest map[string]string) string {
	var names []string
	for _, res := range results {
		for _, hex := range digest {
			if hex != "" && strings.Contains(res.Value.StringVal, hex) {
				names = append(names, res.Name)
				break
			}
		}
	}
	if len(names) == 0 {
		return "the run's provenance"
	}
	return "result " + strings.Join(names, ", ")
}

// registryFor returns the registry store with the run's image pull
// credentials: the pull secrets of its service account and of its
// podTemplate, as the kubelet would use them to pull its images.
func (r *Reconciler) registryFor(ctx context.Context, rn *run) (*oci.Store, *failure) {
	if r.Opts.Registry == nil {
		return nil, permanent(ReasonUnsupported, "no registry store is configured")
	}
	ns := rn.obj.GetNamespace()
	names := append([]string(nil), rn.pullSecrets...)
	if rn.serviceAccount != "" {
		sa := &corev1.ServiceAccount{}
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: rn.serviceAccount}, sa)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, transient(ReasonStorageFailed, "reading service account %s/%s for its pull secrets: %v", ns, rn.serviceAccount, err)
		default:
			for _, ref := range sa.ImagePullSecrets {
				names = append(names, ref.Name)
			}
		}
	}
	var secrets []corev1.Secret
	for _, n := range names {
		sec := &corev1.Secret{}
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, sec)
		if apierrors.IsNotFound(err) {
			continue // the kubelet skips a missing pull secret too
		}
		if err != nil {
			return nil, transient(ReasonStorageFailed, "reading pull secret %s/%s: %v", ns, n, err)
		}
		secrets = append(secrets, *sec)
	}
	if len(secrets) == 0 {
		return r.Opts.Registry, nil
	}
	kc, err := pullsecrets.New(secrets)
	if err != nil {
		return nil, permanent(ReasonStorageFailed, "%v", err)
	}
	return r.Opts.Registry.With(kc), nil
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
