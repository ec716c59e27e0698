package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/internal/profiling"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/webhook"
)

// webhookFlags are the flags of `tollgate webhook`.
type webhookFlags struct {
	opts         webhook.Options
	imgOpts      webhook.ImageOptions
	certOpts     webhook.CertOptions
	kubeconfig   string
	profiling    string
	tekton       []string
	trusted      []string
	verbosity    int
	gcPercent    int
	certSecret   string
	certConfs    []string
	certHosts    []string
	stampKeys    string
	policyResync time.Duration
}

// newWebhookCmd is the command's help and flags (long, and only that);
// runWebhook does the work.
func newWebhookCmd() *cobra.Command {
	w := &webhookFlags{opts: webhook.Default(), imgOpts: webhook.DefaultImageOptions(), certOpts: webhook.DefaultCertOptions()}
	opts, imgOpts := &w.opts, &w.imgOpts
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Serve the run guard's and the image gate's admission webhooks over TLS",
		Long: `Serve the admission webhooks over TLS:

  /mutate-runs     stamps tollgate.dev/spec-digest (and its MAC, tollgate.dev/spec-mac)
                   on new PipelineRuns and TaskRuns and writes configured default
                   limits into inline steps
  /validate-runs   decides PipelineRuns and TaskRuns (CREATE, UPDATE, status), Tasks
                   and Pipelines (CREATE, UPDATE) and Pods labelled tekton.dev/taskRun
                   (CREATE)
  /mutate-workloads
                   image gate: pins each verified image:tag to image:tag@sha256:...
                   in Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
                   CronJobs and pods/ephemeralcontainers
  /validate-workloads
                   image gate: denies (or, in Warn, warns about) any image without a
                   signature and the attestations its ClusterImagePolicy requires
  /healthz         liveness
  /readyz          readiness: true once the informer caches are synced
  /metrics         Prometheus metrics

The serving certificate and key are read from files (--tls-cert-file,
--tls-key-file) and reloaded when they change, or kept in a Secret the webhook
manages itself (--cert-secret). The webhook reads Tasks, Pipelines, ServiceAccounts, Namespaces, RBAC,
ClusterRunPolicies and ClusterImagePolicies through informers, reads image
pull secrets, service accounts and the Secrets image policies name directly
from the API server, and writes both policies' status.

The image gate reviews namespaces labelled tollgate.dev/gate=enforce or warn.
Verified results are cached by (image digest, policy generation and trust
material); registry errors are never cached and always deny in Enforce.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWebhook(cmd, w) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "listen", opts.Addr, "address to serve HTTPS on")
	f.StringVar(&opts.CertFile, "tls-cert-file", "", "PEM serving certificate (reloaded on change); required unless --cert-secret")
	f.StringVar(&opts.KeyFile, "tls-key-file", "", "PEM private key of the serving certificate; required unless --cert-secret")
	f.StringVar(&opts.ClientCAFile, "client-ca-file", "", "PEM CA of the API server's admission client certificate: callers without a certificate it signed are refused (the API server presents one when its --admission-control-config-file names it)")
	f.StringVar(&opts.ProbeAddr, "probe-address", "", "serve /healthz, /readyz and /metrics on this address over plain HTTP instead of the admission port (the chart uses :8081)")
	f.StringVar(&opts.TLSMinVersion, "tls-min-version", opts.TLSMinVersion, "lowest TLS version served: 1.2 (with ECDHE-AEAD cipher suites only) or 1.3")
	f.DurationVar(&opts.ShutdownDelay, "shutdown-delay", opts.ShutdownDelay, "on SIGTERM, keep serving this long with /readyz false before draining")
	f.StringVar(&w.certSecret, "cert-secret", "", "manage the serving certificate in this Secret (NAMESPACE/NAME): a CA and a certificate, renewed a month before they expire, the CA bundle patched into --webhook-configurations")
	f.StringSliceVar(&w.certConfs, "webhook-configurations", nil, "with --cert-secret: the Mutating- and ValidatingWebhookConfigurations (by name) that get the CA bundle")
	f.StringSliceVar(&w.certHosts, "cert-hosts", nil, "with --cert-secret: DNS names and IPs of the certificate (e.g. tollgate-webhook.tollgate-system.svc)")
	f.StringVar(&w.stampKeys, "stamp-key-secret", "tollgate-system/tollgate-stamp-key", "Secret (NAMESPACE/NAME) with the keys of the stamp's MAC, which the signer verifies; created with a random key when missing (\"\" stamps without a MAC)")
	f.StringVar(&w.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringSliceVar(&w.tekton, "tekton-controller-users", []string{runs.DefaultTektonController},
		"users allowed to update run status (the Tekton controller's service account)")
	f.StringSliceVar(&w.trusted, "trusted-users", []string{runs.DefaultSigner},
		"users allowed to write tollgate.dev/* and chains.tekton.dev/* annotations (Tollgate's signer)")
	f.DurationVar(&imgOpts.Budget, "image-verify-budget", imgOpts.Budget, "time one admission may spend resolving and verifying images; keep it under the webhook timeout")
	f.IntVar(&imgOpts.Cache.MaxEntries, "image-cache-entries", imgOpts.Cache.MaxEntries, "verified results kept")
	f.Int64Var(&imgOpts.Cache.MaxBytes, "image-cache-bytes", imgOpts.Cache.MaxBytes, "bytes of verified results (statements included) kept")
	f.Int64Var(&imgOpts.Limits.MaxInFlightBytes, "image-inflight-bytes", imgOpts.Limits.MaxInFlightBytes, "bytes of registry reads all verifications together may hold at once (keep well under the memory limit); past it a verification fails as busy and the admission is denied")
	f.DurationVar(&imgOpts.Cache.TTL, "image-cache-ttl", imgOpts.Cache.TTL, "how long a verified result is served from the cache")
	f.DurationVar(&imgOpts.Cache.NegativeTTL, "image-cache-negative-ttl", imgOpts.Cache.NegativeTTL, "how long a failed verification is served from the cache (registry errors are never cached)")
	f.DurationVar(&w.policyResync, "policy-resync", webhook.DefaultPolicyResync, "recompile run and image policies this often besides on every change, so rotated keys in Secrets and KMS and edited Rego ConfigMaps take effect (0: only on changes)")
	f.DurationVar(&w.policyResync, "image-policy-resync", webhook.DefaultPolicyResync, "the old name of --policy-resync")
	_ = f.MarkDeprecated("image-policy-resync", "use --policy-resync (it always applied to run policies too)")
	f.IntVar(&w.gcPercent, "gc-percent", webhook.DefaultGCPercent, "garbage collector target (as GOGC; the GOGC environment variable wins unless this flag is given): higher trades memory for admission tail latency; bound memory with GOMEMLIMIT")
	f.IntVarP(&w.verbosity, "v", "v", 0, "log verbosity (0: decisions and errors, 1: also skipped checks and defaults)")
	f.StringVar(&w.profiling, "profiling-address", "", profilingUsage)
	return cmd
}

// profilingUsage is the --profiling-address help of the webhook and the signer.
const profilingUsage = "serve Go's runtime profiles (net/http/pprof, /debug/pprof/) on this address over plain HTTP; off unless set — they show the process's internals, so bind loopback (127.0.0.1:6060) and use kubectl port-forward"

// runWebhook checks the flags, then serves until SIGINT or SIGTERM.
func runWebhook(cmd *cobra.Command, w *webhookFlags) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = w.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return usageError("loading the Kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	opts := w.opts
	var certs *webhook.CertOptions
	if w.certSecret != "" {
		ns, name, ok := strings.Cut(w.certSecret, "/")
		if !ok {
			return usageError("--cert-secret %q: want NAMESPACE/NAME", w.certSecret)
		}
		c := w.certOpts
		c.Namespace, c.Name, c.Configurations, c.Hosts = ns, name, w.certConfs, w.certHosts
		if err := c.Validate(); err != nil {
			return usageError("%w", err)
		}
		if opts.CertFile != "" || opts.KeyFile != "" {
			return usageError("give --cert-secret or --tls-cert-file/--tls-key-file, not both")
		}
		certs = &c
		opts.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("not yet") } // replaced once the certificate is obtained
	}
	if err := opts.Validate(); err != nil {
		return usageError("%w", err)
	}
	if err := w.imgOpts.Validate(); err != nil {
		return usageError("%w", err)
	}
	if cmd.Flags().Changed("gc-percent") || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(w.gcPercent)
	}
	log := zap.New(zap.UseDevMode(false), zap.Level(zapcore.Level(-w.verbosity))).WithName("webhook")
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if w.profiling != "" {
		addr, err := profiling.Start(ctx, w.profiling)
		if err != nil {
			return usageError("%w", err)
		}
		log.Info("serving runtime profiles", "address", addr.String())
	}
	err = webhook.Run(ctx, webhook.Config{
		Server:         opts,
		RestConfig:     cfg,
		Identities:     runs.Identities{TektonControllers: w.tekton, Trusted: w.trusted},
		Images:         w.imgOpts,
		Certs:          certs,
		StampKeySecret: w.stampKeys,
		PolicyResync:   w.policyResync,
	}, log, nil)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
