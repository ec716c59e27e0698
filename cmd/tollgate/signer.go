package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/internal/profiling"
	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
)

func newSignerCmd() *cobra.Command {
	var (
		kubeconfig    string
		verbosity     int
		profilingAddr string
		qps           float32
		burst         int
	)
	cfg := signer.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "signer",
		Short: "Run the signing controller: signed SLSA provenance for every finished run",
		Long: `Run the signing controller (leader-elected). For every finished TaskRun and
PipelineRun it checks the run's spec against the tollgate.dev/spec-digest
stamped at admission, builds provenance in the configured format, signs it,
stores it (tekton: annotations on the run; oci: cosign's layout next to each
built image) and marks the run chains.tekton.dev/signed "true" — or "failed",
with an Event that says why, when anything configured could not be signed
and stored. A finalizer keeps a run from being deleted before that.

Configuration: ConfigMap chains-config and Secret signing-secrets in
--namespace, with Tekton Chains' keys (cosign generate-key-pair
k8s://NAMESPACE/signing-secrets creates the Secret). Registry pushes use the
image pull secrets of the run's service account and podTemplate, then the
signer's own environment credentials. Signing keys: x509 (signing-secrets),
kms (signers.kms.kmsref: gcpkms://, awskms://, azurekms://, hashivault://, or
a sigstore KMS plugin), or keyless (signers.x509.fulcio.*: a Fulcio
certificate for the signer's own identity: provider filesystem, a token
file, or spiffe, a JWT-SVID from the SPIFFE Workload API at
$SPIFFE_ENDPOINT_SOCKET or /tmp/spire-agent/public/api.sock); with
transparency.enabled every signature and attestation is logged in Rekor
(transparency.url) and a run is marked signed only once it is.

A run costs two to four API requests (reading it as served, the pull
secrets for oci storage, the annotation patch, an Event) and mostly waits
on them: --workers runs of each kind are signed at once (16: about 100
runs/s with tekton storage on 2 cores shared with the API server, where 4
signed 88; BENCHMARKS.md), and --kube-api-qps caps the requests (50 allowed
about 30 runs/s).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
			if err != nil {
				return usageError("loading the Kubernetes client configuration: %w", err)
			}
			rc.QPS, rc.Burst = qps, burst
			cfg.RestConfig = rc
			store, err := oci.New("", authn.DefaultKeychain)
			if err != nil {
				return usageError("%w", err)
			}
			cfg.Options.Registry = store
			if err := cfg.Validate(); err != nil {
				return usageError("%w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log := zap.New(zap.Level(zapcore.Level(-verbosity))).WithName("signer")
			if profilingAddr != "" {
				addr, err := profiling.Start(ctx, profilingAddr)
				if err != nil {
					return usageError("%w", err)
				}
				log.Info("serving runtime profiles", "address", addr.String())
			}
			if err := signer.Run(ctx, cfg, log); err != nil {
				return fmt.Errorf("signer: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&cfg.Options.Namespace, "namespace", cfg.Options.Namespace, "namespace of chains-config and signing-secrets (and the leader election lease)")
	f.BoolVar(&cfg.Options.RequireStamp, "require-stamp", cfg.Options.RequireStamp, "refuse to sign runs without tollgate.dev/spec-digest (set false only where the run guard is not installed)")
	f.StringVar(&cfg.Options.PublicKeySecret, "public-key-secret", cfg.Options.PublicKeySecret, "Secret in --namespace the signer keeps holding its public key (cosign.pub), for image policies to trust (\"\": not published)")
	f.StringVar(&cfg.Options.StampKeySecret, "stamp-key-secret", cfg.Options.StampKeySecret, "Secret in --namespace with the run guard's stamp keys: sign a run only if its tollgate.dev/spec-mac verifies (\"\" turns the check off)")
	f.BoolVar(&cfg.Options.RequireOwnership, "require-ownership", cfg.Options.RequireOwnership, "sign an image a run claims only if a ClusterRunPolicy selecting the run's namespace lists its repository in spec.artifacts.repositories (false: sign any claim, as Tekton Chains does)")
	f.StringSliceVar(&cfg.Options.SignManagedBy, "sign-managed-by", nil, "also sign runs whose spec.managedBy names one of these controllers (runs managed by other controllers are skipped)")
	f.BoolVar(&cfg.LeaderElection, "leader-elect", cfg.LeaderElection, "elect a leader among replicas")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "runs signed concurrently per kind")
	f.Float32Var(&qps, "kube-api-qps", 200, "requests per second to the API server, sustained (a run costs two to four; API Priority and Fairness still protects the server)")
	f.IntVar(&burst, "kube-api-burst", 400, "requests to the API server in a burst")
	f.DurationVar(&cfg.Options.RetryDelay, "retry-delay", cfg.Options.RetryDelay, "wait before retrying a run whose signing failed for a reason that may pass (a registry error); it grows with each attempt")
	f.StringVar(&cfg.ProbeAddr, "probe-address", cfg.ProbeAddr, "address of /healthz and /readyz (0 disables)")
	f.StringVar(&cfg.MetricsAddr, "metrics-address", cfg.MetricsAddr, "address of /metrics (0 disables)")
	f.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	f.StringVar(&profilingAddr, "profiling-address", "", profilingUsage)
	return cmd
}
