package signer

import (
	"errors"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/tollgate-dev/tollgate/signer/storage/oci"
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

// DefaultOptions are the options of an installation with the run guard:
// stamped, MAC-checked runs only, images signed only for the repositories
// their namespace owns. Registry must still be set.
func DefaultOptions() Options {
	return Options{
		Namespace:        "tollgate-system",
		RequireStamp:     true,
		PublicKeySecret:  "tollgate-signing-pub",
		StampKeySecret:   "tollgate-stamp-key",
		RequireOwnership: true,
		RetryDelay:       5 * time.Second,
	}
}

// Validate reports missing or inconsistent options.
func (o Options) Validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("the signer's namespace is empty"))
	}
	if o.Registry == nil {
		errs = append(errs, errors.New("no registry store is configured"))
	}
	if o.RetryDelay <= 0 {
		errs = append(errs, errors.New("the retry delay must be positive"))
	}
	return errors.Join(errs...)
}

// Config is everything `tollgate signer` needs.
type Config struct {
	RestConfig     *rest.Config
	Options        Options
	LeaderElection bool
	// ProbeAddr serves /healthz and /readyz; MetricsAddr /metrics ("0" disables).
	ProbeAddr   string
	MetricsAddr string
	// Workers is how many runs of each kind are signed at once. A run
	// mostly waits on the API server (reading it, the patch the run guard
	// reviews, the Event), so more workers than cores pay: 4 signed 88
	// runs/s and 16 sign 103 on 2 shared cores (BENCHMARKS.md).
	Workers int
}

// DefaultConfig is the configuration the chart runs (RestConfig and
// Options.Registry unset).
func DefaultConfig() Config {
	return Config{Options: DefaultOptions(), LeaderElection: true, ProbeAddr: ":8081", MetricsAddr: ":8080", Workers: 16}
}

// Validate reports missing or inconsistent configuration.
func (c Config) Validate() error {
	var errs []error
	if c.RestConfig == nil {
		errs = append(errs, errors.New("no Kubernetes client configuration"))
	}
	if c.Workers <= 0 {
		errs = append(errs, errors.New("the number of workers must be positive"))
	}
	return errors.Join(append(errs, c.Options.Validate())...)
}

func controllerOptions(workers int) controller.Options {
	// One manager per process runs these controllers; a second manager in the
	// same process (tests) must not be refused over metric names.
	return controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: ptr.To(true)}
}
