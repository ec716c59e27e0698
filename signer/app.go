package signer

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// runMetadataOnly is the cache's transform: no object keeps its
// managedFields, and a run's metadata (the only part of a run cached) keeps
// what identifies it, not its annotations — with tekton storage those hold
// its provenance and signatures, kilobytes a run, read live when needed.
func runMetadataOnly(in any) (any, error) {
	if m, ok := in.(*metav1.PartialObjectMetadata); ok {
		m.Annotations = nil
	}
	return cache.TransformStripManagedFields()(in)
}

// Run starts the signing controller and blocks until ctx is done.
func Run(ctx context.Context, cfg Config, log logr.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, pipelinev1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	ns := cfg.Options.Namespace
	mgr, err := ctrl.NewManager(cfg.RestConfig, manager.Options{
		Scheme:                  scheme,
		Logger:                  log,
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        "tollgate-signer",
		LeaderElectionNamespace: ns,
		HealthProbeBindAddress:  cfg.ProbeAddr,
		Metrics:                 metricsserver.Options{BindAddress: cfg.MetricsAddr},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only the signer's own ConfigMap and Secret are cached.
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{ns: {}}},
			&corev1.Secret{}:    {Namespaces: map[string]cache.Config{ns: {}}},
		}, DefaultTransform: runMetadataOnly},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	r := newReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorderFor("tollgate-signer"), cfg.Options, newMetrics(crmetrics.Registry))
	workers := cfg.Workers
	// Runs are watched by their metadata only: a reconcile reads its run
	// (and a PipelineRun its child TaskRuns) from the API server as served,
	// so the cache only says which run changed — a cluster's finished runs,
	// their provenance in annotations, are not held in memory.
	if err := ctrl.NewControllerManagedBy(mgr).Named("taskruns").For(&pipelinev1.TaskRun{}, builder.OnlyMetadata).
		WithOptions(controllerOptions(workers)).Complete(reconcile.Func(r.ReconcileTaskRun)); err != nil {
		return err
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("pipelineruns").For(&pipelinev1.PipelineRun{}, builder.OnlyMetadata).
		WithOptions(controllerOptions(workers)).Complete(reconcile.Func(r.ReconcilePipelineRun)); err != nil {
		return err
	}
	if cfg.Options.PublicKeySecret != "" {
		if err := mgr.Add(manager.RunnableFunc(r.publishPublicKey)); err != nil {
			return err
		}
	}
	if cfg.ProbeAddr != "" && cfg.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("signing", func(req *http.Request) error { return r.Ready(req.Context()) }); err != nil {
			return err
		}
	}
	return mgr.Start(ctx)
}
