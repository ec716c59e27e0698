package webhook

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net"
	"sync/atomic"
	"time"

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
}

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
	// Resync recompiles the policies this often, so rotated keys in
	// Secrets and KMS take effect.
	Resync time.Duration
}

// DefaultImageOptions returns the defaults.
func DefaultImageOptions() ImageOptions {
	return ImageOptions{Budget: 7 * time.Second, Cache: images.DefaultCacheOptions(), Limits: images.DefaultLimits(), Resync: time.Minute}
}

// Validate reports inconsistent options.
func (o ImageOptions) Validate() error {
	var errs []error
	if o.Budget <= 0 {
		errs = append(errs, errors.New("the image verification budget must be positive"))
	}
	if o.Resync < 0 {
		errs = append(errs, errors.New("the image policy resync interval is negative"))
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

// Run wires the caches, the policy store and the handlers, and serves until
// ctx is done. started, if not nil, receives the listening address.
func Run(ctx context.Context, cfg Config, log logr.Logger, started chan<- net.Addr) error {
	if cfg.RestConfig == nil {
		return errors.New("no Kubernetes client configuration")
	}
	scheme, err := Scheme()
	if err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	c, err := cache.New(cfg.RestConfig, cache.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating the informer cache: %w", err)
	}
	cl, err := client.New(cfg.RestConfig, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating the client: %w", err)
	}
	cluster, err := runguard.NewCacheCluster(ctx, c, cl)
	if err != nil {
		return err
	}
	store, err := runguard.NewPolicyStore(ctx, c, cl, cl, cfg.Images.Resync, log.WithName("policies"))
	if err != nil {
		return err
	}
	rm := newRegoMetrics()
	deps := runguard.Deps{Policies: store.Current, Cluster: cluster, Namespaces: cluster, Identities: cfg.Identities, ObserveRego: rm.observer("runs"), Runs: cluster}
	var keys *stampKeys
	if cfg.StampKeySecret != "" {
		if keys, err = newStampKeys(cl, cfg.StampKeySecret, log.WithName("stamp-keys")); err != nil {
			return err
		}
		if err := retryUntil(ctx, log, "loading the stamp keys", keys.load); err != nil {
			return err
		}
		go keys.run(ctx)
		deps.StampKeys = keys.get
	}
	h, err := runguard.New(deps)
	if err != nil {
		return err
	}
	if err := cfg.Images.Validate(); err != nil {
		return err
	}
	imageStore, err := imagegate.NewPolicyStore(ctx, c, cl, cl, cfg.Images.Resync, log.WithName("image-policies"))
	if err != nil {
		return err
	}
	reg, err := images.NewRegistry(nil, cfg.Images.Limits)
	if err != nil {
		return err
	}
	vcache, err := images.NewCache(cfg.Images.Cache)
	if err != nil {
		return err
	}
	ig, err := imagegate.New(imagegate.Deps{
		Policies:    imageStore.Current,
		Gate:        &images.Gate{Verifier: images.NewVerifier(reg), Cache: vcache},
		Namespaces:  cluster,
		Credentials: imagegate.SecretCredentials{Reader: cl},
		Budget:      cfg.Images.Budget,
		ObserveRego: rm.observer("workloads"),
	})
	if err != nil {
		return err
	}
	var certs *selfCerts
	if cfg.Certs != nil {
		if err := cfg.Certs.Validate(); err != nil {
			return err
		}
		certs = newSelfCerts(*cfg.Certs, cl, log.WithName("certs"))
		if err := retryUntil(ctx, log, "obtaining the serving certificate", certs.ensure); err != nil {
			return err
		}
		cfg.Server.GetCertificate = certs.getCertificate
		go certs.run(ctx)
	}
	var synced atomic.Bool
	ready := func() error {
		if !synced.Load() {
			return errors.New("informer caches are not synced yet")
		}
		if certs != nil {
			return certs.ready()
		}
		return nil
	}
	srv, err := New(cfg.Server, Handlers{MutateRuns: h.MutateHandler(), ValidateRuns: h, MutateWorkloads: ig.MutateHandler(), ValidateWorkloads: ig}, ready, log)
	if err != nil {
		return err
	}
	registerCacheMetrics(srv.Registry, vcache.Stats)
	srv.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_image_registry_inflight_bytes", Help: "Bytes of registry reads held by verifications in progress (bounded by --image-inflight-bytes)."},
		func() float64 { now, _ := reg.InFlight(); return float64(now) }))
	rm.register(srv.Registry)

	cacheErr := make(chan error, 1)
	go func() { cacheErr <- c.Start(ctx) }()
	go func() {
		if !c.WaitForCacheSync(ctx) {
			return
		}
		if err := store.Reload(ctx); err != nil {
			log.Error(err, "loading run policies")
		}
		if err := imageStore.Reload(ctx); err != nil {
			log.Error(err, "loading image policies")
		}
		synced.Store(true)
		log.Info("caches synced; ready")
		go imageStore.Run(ctx)
		store.Run(ctx)
	}()

	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Run(ctx, started) }()
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
