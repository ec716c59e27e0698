package main

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/webhook"
	"github.com/tollgate-dev/tollgate/webhook/audit"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

type auditOptions struct {
	kubeconfig string
	files      []string
	namespaces []string
	output     string
	tekton     []string
	trusted    []string
	watch      bool
	resync     time.Duration
	probes     string
	verbosity  int
}

func newAuditCmd() *cobra.Command {
	o := auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Report what enforcing would deny in a namespace now: workloads' images and live runs",
		Long: `Audit a cluster as it runs now, with the decisions admission makes: every
workload in the namespaces (Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs; what a controller owns is audited through its
owner) is decided by the image gate as its CREATE would be in an enforced
namespace (tags resolved to what they name now, every image verified with
the ClusterImagePolicies in force), and every PipelineRun and TaskRun not
finished yet by the run guard as its CREATE would be now. Nothing is
written to the cluster.

The image gate looks only at namespaces labelled tollgate.dev/gate (enforce,
warn, or audit: report-only, never denied at admission). To see what
enforcing an unlabelled namespace would break, label it first:

  kubectl label namespace NS tollgate.dev/gate=audit

Each row is an object and a rule: fail (enforcing denies it), warn (a rule
in Warn mode), error (it could not be decided — a registry down is never a
pass), skip, or pass, with the message admission gives and its fix.

Without --namespace, every namespace labelled tollgate.dev/gate is audited.
Exit status: 0 nothing fails, 1 a row fails or errs, 2 a usage error.

With -f FILE|DIR (repeatable) it reads no cluster: it audits the
workloads and runs in the manifests (YAML, several documents, or JSON; a
DIR is searched for *.yaml, *.yml and *.json, as kubectl apply -f reads
them, or the output of kubectl get -o yaml) with the ClusterImagePolicies
and ClusterRunPolicies among them (the built-in default run policy
beside them, as in a cluster), the Secrets and ConfigMaps the policies
name, and the Namespaces, ServiceAccounts, RBAC, Tasks and Pipelines the
run checks read. A namespace with no Namespace document is audited as if
labelled tollgate.dev/gate=audit: what enforcing it would deny. Objects
that name no namespace are in the first --namespace (default "default");
--namespace also limits the audit to the namespaces it names. Images are
resolved and verified in their registries, with the Docker config's
credentials (~/.docker/config.json and its helpers); the manifests' image
pull secrets are not read.

With --watch it runs until interrupted (the chart's audit Deployment):
every --resync and on every policy change it audits every namespace
labelled tollgate.dev/gate (and a namespace at once when an image runs
there that its last audit did not see), and rewrites the namespace's wg-policy PolicyReport (wgpolicyk8s.io/v1alpha2,
named tollgate-audit: a row per object and rule, at most 1,000 listed, the
summary counting all), logs what fails, and exports
tollgate_audit_results{namespace,policy,rule,result} on /metrics at
--probe-address, with /healthz and /readyz (not ready, saying why, until
the first pass or while the PolicyReport CRD is missing).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAudit(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringSliceVarP(&o.files, "filename", "f", nil, "audit the manifests in these files or directories instead of a cluster (repeatable)")
	f.StringSliceVarP(&o.namespaces, "namespace", "n", nil, "namespaces to audit (repeatable; default: every namespace labelled tollgate.dev/gate)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text (a table) or json (the rows)")
	f.StringSliceVar(&o.tekton, "tekton-controller-users", []string{runs.DefaultTektonController}, "as for the webhook")
	f.StringSliceVar(&o.trusted, "trusted-users", []string{runs.DefaultSigner}, "as for the webhook")
	f.BoolVar(&o.watch, "watch", false, "audit every --resync and write PolicyReports, until interrupted")
	f.DurationVar(&o.resync, "resync", 10*time.Minute, "with --watch: time between audit passes (policies are reloaded on every change)")
	f.StringVar(&o.probes, "probe-address", ":8081", "with --watch: address of /healthz, /readyz and /metrics (0 disables)")
	f.IntVarP(&o.verbosity, "v", "v", 0, "with --watch: log verbosity")
	return cmd
}

func runAudit(cmd *cobra.Command, o auditOptions) error {
	if o.output != "text" && o.output != "json" {
		return usageError("--output %q: want text or json", o.output)
	}
	if o.watch && len(o.namespaces) > 0 {
		return usageError("--watch audits every namespace labelled %s; label the ones to audit instead of --namespace", imagegate.LabelGate)
	}
	if o.watch && o.resync < time.Second {
		return usageError("--resync %s: want at least 1s", o.resync)
	}
	if len(o.files) > 0 {
		if o.watch || o.kubeconfig != "" {
			return usageError("-f audits manifests, not a cluster: it takes neither --watch nor --kubeconfig")
		}
		return runAuditFiles(cmd, o)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return usageError("loading the Kubernetes client configuration: %w", err)
	}
	rc.QPS, rc.Burst = 50, 100
	ctrllog.SetLogger(logr.Discard())
	ctx := cmd.Context()
	progress := cmd.ErrOrStderr()
	fmt.Fprintln(progress, "audit: reading policies and the cluster ...")
	scanner, err := webhook.NewAuditScanner(ctx, webhook.Config{
		RestConfig:   rc,
		Identities:   runs.Identities{TektonControllers: o.tekton, Trusted: o.trusted},
		Images:       webhook.DefaultImageOptions(),
		PolicyResync: webhook.DefaultPolicyResync,
	}, logr.Discard())
	if err != nil {
		return err
	}
	if o.watch {
		return watchAudit(cmd, o, rc, scanner)
	}
	namespaces := o.namespaces
	if len(namespaces) == 0 {
		var list corev1.NamespaceList
		if err := scanner.Reader.List(ctx, &list, client.HasLabels{imagegate.LabelGate}); err != nil {
			return fmt.Errorf("listing namespaces: %w", err)
		}
		for _, n := range list.Items {
			namespaces = append(namespaces, n.Name)
		}
		sort.Strings(namespaces)
		if len(namespaces) == 0 {
			return usageError("no namespace is labelled %s: name namespaces with --namespace, or label one %s=%s to audit it", imagegate.LabelGate, imagegate.LabelGate, imagegate.GateAudit)
		}
	}
	var rows []audit.Result
	for _, ns := range namespaces {
		fmt.Fprintf(progress, "audit: namespace %s ...\n", ns)
		r, gated, err := scanner.Namespace(ctx, ns)
		if err != nil {
			return err
		}
		if !gated {
			fmt.Fprintf(progress, "audit: namespace %s is not labelled %s: its workloads' images are not audited (label it %s=%s to see what enforcing would deny; that label denies nothing)\n",
				ns, imagegate.LabelGate, imagegate.LabelGate, imagegate.GateAudit)
		}
		rows = append(rows, r...)
	}
	if err := emit(cmd.OutOrStdout(), o.output, rows, printAudit, func(r audit.Result) bool { return audit.Failed([]audit.Result{r}) }); err != nil {
		return err
	}
	return nil
}

// runAuditFiles is tollgate audit -f: the manifests' workloads and runs,
// decided as runAudit decides a cluster's.
func runAuditFiles(cmd *cobra.Command, o auditOptions) error {
	ctx := cmd.Context()
	progress := cmd.ErrOrStderr()
	files, err := findFiles(o.files, ".yaml", ".yml", ".json")
	if err != nil {
		return usageError("%w", err)
	}
	docs, err := readDocuments(files)
	if err != nil {
		return usageError("%w", err)
	}
	defaultNS := "default"
	if len(o.namespaces) > 0 {
		defaultNS = o.namespaces[0]
	}
	m, err := readManifests(docs, defaultNS)
	if err != nil {
		return usageError("%w", err)
	}
	m.summary(progress, len(files))
	scanner, assumed, err := offlineScanner(ctx, m, runs.Identities{TektonControllers: o.tekton, Trusted: o.trusted}, webhook.DefaultImageOptions().Budget)
	if err != nil {
		return usageError("%w", err)
	}
	for _, ns := range assumed {
		fmt.Fprintf(progress, "audit: namespace %s has no Namespace document: audited as if labelled %s=%s (what enforcing it would deny)\n", ns, imagegate.LabelGate, imagegate.GateAudit)
	}
	namespaces := o.namespaces
	if len(namespaces) == 0 {
		namespaces = slices.Sorted(maps.Keys(m.objects))
	}
	var rows []audit.Result
	for _, ns := range namespaces {
		objs := m.objects[ns]
		fmt.Fprintf(progress, "audit: namespace %s: %d objects ...\n", ns, len(objs))
		rows = append(rows, scanner.Objects(ctx, ns, objs)...)
	}
	return emit(cmd.OutOrStdout(), o.output, rows, printAudit, func(r audit.Result) bool { return audit.Failed([]audit.Result{r}) })
}

// watchAudit is tollgate audit --watch.
func watchAudit(cmd *cobra.Command, o auditOptions, rc *rest.Config, scanner *audit.Scanner) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := zap.New(zap.Level(zapcore.Level(-o.verbosity)), zap.WriteTo(cmd.ErrOrStderr())).WithName("audit")
	writer, err := client.New(rc, client.Options{})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	loop := audit.NewLoop(scanner, writer, o.resync, reg, log)
	if o.probes != "0" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if err := loop.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ln, err := net.Listen("tcp", o.probes)
		if err != nil {
			return usageError("--probe-address: %w", err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("serving probes and metrics", "address", ln.Addr().String())
	}
	loop.Run(ctx)
	return nil
}

// printAudit prints the rows as a table, kubectl's way.
func printAudit(w io.Writer, rows []audit.Result) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "nothing to audit: no workload, no unfinished run")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tOBJECT\tRESULT\tRULE\tPOLICY\tMESSAGE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\n", r.Object.Namespace, strings.ToLower(r.Object.Kind), r.Object.Name, r.Result, r.Rule, dash(r.Policy), oneLine(r.Message))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
