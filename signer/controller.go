package signer

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/signer/config"
)

// Annotations and the finalizer the signer owns (Chains' names where Chains has one).
const (
	AnnotationSigned  = "chains.tekton.dev/signed"
	AnnotationRetries = "chains.tekton.dev/retries"
	// AnnotationTransparency is the address of the run's entry in the
	// transparency log; AnnotationTransparencyUpload is how a run asks for
	// one under transparency.enabled: manual.
	AnnotationTransparency       = "chains.tekton.dev/transparency"
	AnnotationTransparencyUpload = "chains.tekton.dev/transparency-upload"
	// AnnotationNextAttempt holds when a run that failed for a passing
	// reason is tried again; the retry count patch itself wakes the
	// controller, so the backoff lives on the run, and survives restarts.
	AnnotationNextAttempt = "tollgate.dev/signer-next-attempt"
	Finalizer             = "tollgate.dev/signer"
	// MaxAttempts is how often a run is tried before it is marked failed
	// (an outage of the transparency log is retried without limit).
	MaxAttempts = 3
	// MaxRetryDelay caps the growing delay between attempts.
	MaxRetryDelay = 5 * time.Minute
)

// Reasons a run ends "failed"; each is also the reason of its Event.
const (
	ReasonNoArtifacts      = "NoArtifacts"
	ReasonSpecChanged      = "SpecChanged"
	ReasonNoStamp          = "NoStamp"
	ReasonStorageFailed    = "StorageFailed"
	ReasonProvenanceFailed = "ProvenanceFailed"
	ReasonMalformedHint    = "MalformedHint"
	ReasonArtifactNotOwned = "ArtifactNotOwned"
	ReasonBadStamp         = "BadStamp"
	// ReasonTransparencyFailed: the transparency log did not take an entry;
	// the run is retried.
	ReasonTransparencyFailed = "TransparencyFailed"
	// ReasonCertificateFailed: keyless signing could not get a certificate
	// (the identity token, or Fulcio); the run is retried.
	ReasonCertificateFailed = "CertificateFailed"
)

// failure is a reason a run cannot be signed; permanent ones are not retried.
type failure struct {
	reason    string
	msg       string
	permanent bool
	// outage: a service the signature needs (the transparency log) did
	// not answer; the run is retried until it does, never marked failed
	// for it, with the delay capped at MaxRetryDelay.
	outage bool
}

func (f *failure) Error() string { return f.reason + ": " + f.msg }

func permanent(reason, format string, args ...any) *failure {
	return &failure{reason: reason, msg: fmt.Sprintf(format, args...), permanent: true}
}

func transient(reason, format string, args ...any) *failure {
	return &failure{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func outage(reason, format string, args ...any) *failure {
	return &failure{reason: reason, msg: fmt.Sprintf(format, args...), outage: true}
}

// Reconciler signs finished TaskRuns and PipelineRuns: reconcile.go holds
// its state machine (finalizer, retries, outcome), pipeline.go what it
// checks, signs and stores, trust.go the configuration and keys in force.
type Reconciler struct {
	Client   client.Client
	Reader   client.Reader // uncached, for the raw object the digest is computed over
	Recorder record.EventRecorder
	Opts     Options
	metrics  *metrics
	trust    *trust
}

// newReconciler returns a reconciler whose configuration and key are read
// (cached) through c.
func newReconciler(c client.Client, reader client.Reader, recorder record.EventRecorder, opts Options, m *metrics) *Reconciler {
	return &Reconciler{Client: c, Reader: reader, Recorder: recorder, Opts: opts, metrics: m,
		trust: &trust{client: c, recorder: recorder, namespace: opts.Namespace}}
}

// Ready reports why the signer cannot sign now, or nil.
func (r *Reconciler) Ready(ctx context.Context) error {
	snap, err := r.trust.current(ctx)
	if err != nil {
		return err
	}
	for _, a := range []config.Artifact{snap.Config.TaskRuns, snap.Config.PipelineRuns, snap.Config.OCI} {
		if a.Enabled() {
			if _, err := r.trust.signerFor(ctx, snap, a.Signer); err != nil {
				return err
			}
		}
	}
	return snap.ConfigErr // the last good configuration is in force, but say the new one failed
}
