package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-logr/logr"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// Config is everything `tollgate webhook` needs.
type Config struct {
	Server     Options
	RestConfig *rest.Config
	Identities runs.Identities
	Images     ImageOptions
	// Certs, when set, makes the webhook manage its own serving certificate.
	Certs *CertOptions
	// StampKeySecret (NAMESPACE/NAME), when set, holds the keys of the
	// stamp's MAC (tollgate.dev/spec-mac), which the signer verifies; the
	// webhook creates it with a random key when it does not exist.
	StampKeySecret string
	// PolicyResync recompiles both kinds of policy this often (besides on
	// every change), so rotated keys in Secrets and KMS and edited
	// ConfigMaps of Rego take effect; 0: only on changes.
	PolicyResync time.Duration
}

// DefaultPolicyResync is the default Config.PolicyResync.
const DefaultPolicyResync = time.Minute

// DefaultGCPercent is the garbage collector target `tollgate webhook` runs
// with (GOGC). Admission allocates briefly and a lot (decoded runs, Rego
// inputs); at Go's default of 100 the collector's pauses and assists set
// the p99 (measured: 2.7 ms instead of 0.8 ms with 3 Rego modules). Bound
// the memory it trades for that with GOMEMLIMIT (the chart sets it from the
// container's limit).
const DefaultGCPercent = 400

// ImageOptions configure the image gate.
type ImageOptions struct {
	// Budget bounds one admission's image verification; keep it well
	// inside the webhook timeout (the chart's is 10 s).
	Budget time.Duration
	Cache  images.CacheOptions
	Limits images.Limits
}

// DefaultImageOptions returns the defaults.
func DefaultImageOptions() ImageOptions {
	return ImageOptions{Budget: 7 * time.Second, Cache: images.DefaultCacheOptions(), Limits: images.DefaultLimits()}
}

// Validate reports inconsistent options.
func (o ImageOptions) Validate() error {
	var errs []error
	if o.Budget <= 0 {
		errs = append(errs, errors.New("the image verification budget must be positive"))
	}
	return errors.Join(append(errs, o.Cache.Validate(), o.Limits.Validate())...)
}

// Scheme returns the scheme of every type the webhook reads.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, pipelinev1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run wires the caches, the policy stores and the handlers, and serves
// until ctx is done. started, if not nil, receives the listening address.
func Run(ctx context.Context, cfg Config, log logr.Logger, started chan<- net.Addr) error {
	if cfg.RestConfig == nil {
		return errors.New("no Kubernetes client configuration")
	}
	if cfg.PolicyResync < 0 {
		return errors.New("the policy resync interval is negative")
	}
	if err := cfg.Images.Validate(); err != nil {
		return err
	}
	if cfg.Certs != nil {
		if err := cfg.Certs.Validate(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := wire(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.serve(ctx, log, started)
}

// policies is a policy store: loaded once the caches sync, then kept
// current until the context is done.
type policies interface {
	Reload(ctx context.Context) error
	Run(ctx context.Context)
}

// app is the webhook wired: what serve starts.
type app struct {
	cache  cache.Cache
	stores map[string]policies // by what they hold, for logs
	server *Server
	synced *atomic.Bool
}

// wire builds the clients, the policy stores, the handlers and the server.
// It reads the stamp keys and obtains the serving certificate (retrying
// until ctx is done) and starts their refresh loops.
func wire(ctx context.Context, cfg Config, log logr.Logger) (*app, error) {
	scheme, c, cl, err := clients(cfg)
	if err != nil {
		return nil, err
	}
	a := &app{cache: c, synced: &atomic.Bool{}}
	rm := newRegoMetrics()
	runGuard, runStore, err := wireRunGuard(ctx, cfg, c, cl, rm, log)
	if err != nil {
		return nil, err
	}
	imageStore, err := imagegate.NewPolicyStore(ctx, c, cl, cl, cfg.PolicyResync, log.WithName("image-policies"))
	if err != nil {
		return nil, err
	}
	a.stores = map[string]policies{"run policies": runStore, "image policies": imageStore}
	ig, reg, vcache, err := newImageGate(cfg.Images, imagegate.Deps{
		Policies:    imageStore.Current,
		Namespaces:  runGuard.cluster,
		Credentials: imagegate.SecretCredentials{Reader: cl},
		ObserveRego: rm.observer("workloads"),
	})
	if err != nil {
		return nil, err
	}
	var certs *selfCerts
	if cfg.Certs != nil {
		certs = newSelfCerts(*cfg.Certs, cl, log.WithName("certs"))
		if err := retryUntil(ctx, log, "obtaining the serving certificate", certs.ensure); err != nil {
			return nil, err
		}
		cfg.Server.GetCertificate = certs.getCertificate
		go certs.run(ctx)
	}
	ready := func() error {
		if !a.synced.Load() {
			return errors.New("informer caches are not synced yet")
		}
		if certs != nil {
			return certs.ready()
		}
		return nil
	}
	h := runGuard.handler
	events, err := newEventRecorder(ctx, cfg.RestConfig, scheme)
	if err != nil {
		return nil, err
	}
	if a.server, err = New(cfg.Server, Handlers{MutateRuns: h.MutateHandler(), ValidateRuns: warnEvents(events, h), MutateWorkloads: ig.MutateHandler(), ValidateWorkloads: warnEvents(events, ig)}, ready, log); err != nil {
		return nil, err
	}
	registerCacheMetrics(a.server.Registry, vcache.Stats)
	a.server.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_image_registry_inflight_bytes", Help: "Bytes of registry reads held by verifications in progress (bounded by --image-inflight-bytes)."},
		func() float64 { now, _ := reg.InFlight(); return float64(now) }))
	rm.register(a.server.Registry)
	return a, nil
}

// newImageGate is the image gate's handler over deps with its own registry
// client and verification cache, configured by opts.
func newImageGate(opts ImageOptions, deps imagegate.Deps) (*imagegate.Handler, *images.Registry, *images.Cache, error) {
	reg, err := images.NewRegistry(nil, opts.Limits)
	if err != nil {
		return nil, nil, nil, err
	}
	vcache, err := images.NewCache(opts.Cache)
	if err != nil {
		return nil, nil, nil, err
	}
	deps.Gate = &images.Gate{Verifier: images.NewVerifier(reg), Cache: vcache}
	deps.Budget = opts.Budget
	ig, err := imagegate.New(deps)
	return ig, reg, vcache, err
}

// clients are the scheme, the informer cache (not started) and the live
// client the webhook and the audit read the cluster with.
func clients(cfg Config) (*runtime.Scheme, cache.Cache, client.Client, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("building the scheme: %w", err)
	}
	c, err := cache.New(cfg.RestConfig, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the informer cache: %w", err)
	}
	cl, err := client.New(cfg.RestConfig, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the client: %w", err)
	}
	return scheme, c, cl, nil
}

// runGuard is the run guard's handler and the cluster view it reads.
type runGuard struct {
	handler *runguard.Handler
	cluster *runguard.CacheCluster
}

// wireRunGuard builds the run guard over the informer cache, with its
// policy store and (when configured) the stamp keys, loaded before it
// serves.
func wireRunGuard(ctx context.Context, cfg Config, c cache.Cache, cl client.Client, rm *regoMetrics, log logr.Logger) (*runGuard, policies, error) {
	cluster, err := runguard.NewCacheCluster(ctx, c, cl)
	if err != nil {
		return nil, nil, err
	}
	store, err := runguard.NewPolicyStore(ctx, c, cl, cl, cfg.PolicyResync, log.WithName("policies"))
	if err != nil {
		return nil, nil, err
	}
	deps := runguard.Deps{Policies: store.Current, Cluster: cluster, Namespaces: cluster, Identities: cfg.Identities, ObserveRego: rm.observer("runs"), Runs: cluster}
	if cfg.StampKeySecret != "" {
		keys, err := newStampKeys(cl, cfg.StampKeySecret, log.WithName("stamp-keys"))
		if err != nil {
			return nil, nil, err
		}
		if err := retryUntil(ctx, log, "loading the stamp keys", keys.load); err != nil {
			return nil, nil, err
		}
		go keys.run(ctx)
		deps.StampKeys = keys.get
	}
	h, err := runguard.New(deps)
	if err != nil {
		return nil, nil, err
	}
	return &runGuard{handler: h, cluster: cluster}, store, nil
}

// serve starts the informers, loads the policies once they have synced
// (then reports ready and keeps them current), and serves until ctx is
// done or the server or the informers fail.
func (a *app) serve(ctx context.Context, log logr.Logger, started chan<- net.Addr) error {
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- a.cache.Start(ctx) }()
	go func() {
		if !a.cache.WaitForCacheSync(ctx) {
			return
		}
		for what, s := range a.stores {
			if err := s.Reload(ctx); err != nil {
				log.Error(err, "loading "+what)
			}
		}
		a.synced.Store(true)
		log.Info("caches synced; ready")
		for _, s := range a.stores {
			go s.Run(ctx)
		}
	}()
	srvErr := make(chan error, 1)
	go func() { srvErr <- a.server.Run(ctx, started) }()
	select {
	case err := <-srvErr:
		return err
	case err := <-cacheErr:
		if err != nil {
			return fmt.Errorf("informer cache: %w", err)
		}
		return <-srvErr
	}
}
