package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths the server answers.
const (
	PathMutateRuns        = "/mutate-runs"
	PathValidateRuns      = "/validate-runs"
	PathMutateWorkloads   = "/mutate-workloads"
	PathValidateWorkloads = "/validate-workloads"
	PathHealthz           = "/healthz"
	PathReadyz            = "/readyz"
	PathMetrics           = "/metrics"
)

// Options configure the server.
type Options struct {
	// Addr is the listen address, e.g. ":8443".
	Addr string
	// CertFile and KeyFile are the PEM serving certificate and key; they are
	// reloaded when they change on disk.
	CertFile string
	KeyFile  string
	// GetCertificate, when set, serves certificates from memory instead of
	// the files (the webhook's self-managed certificate).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ShutdownDelay keeps serving after readiness turns false on shutdown, so
	// endpoints drop the pod before connections are refused.
	ShutdownDelay time.Duration
	// TLSMinVersion is "1.2" (only ECDHE key exchange with AEAD ciphers) or
	// "1.3".
	TLSMinVersion string
	// ClientCAFile, when set, makes the admission port require a client
	// certificate signed by this CA (the API server presents one when its
	// admission configuration's kubeconfig names it): nobody else on the
	// network can call the webhooks.
	ClientCAFile string
	// ProbeAddr, when set, serves /healthz, /readyz and /metrics there over
	// plain HTTP, and no longer on the admission port.
	ProbeAddr string
}

// ModernCipherSuites are the TLS 1.2 suites served: ECDHE key exchange
// (forward secrecy) with AEAD ciphers only. TLS 1.3's suites are fixed by Go
// and all modern.
var ModernCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func (o Options) tlsVersion() (uint16, error) {
	switch o.TLSMinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--tls-min-version %q: use 1.2 or 1.3", o.TLSMinVersion)
}

// Default returns the default options.
func Default() Options {
	return Options{Addr: ":8443", ShutdownDelay: 5 * time.Second, TLSMinVersion: "1.2"}
}

// Validate reports missing or inconsistent options.
func (o Options) Validate() error {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("listen address is empty"))
	}
	if o.GetCertificate == nil && (o.CertFile == "" || o.KeyFile == "") {
		errs = append(errs, errors.New("a TLS certificate and key are required (--tls-cert-file and --tls-key-file, or --cert-secret to manage its own)"))
	}
	if _, err := o.tlsVersion(); err != nil {
		errs = append(errs, err)
	}
	if o.ShutdownDelay < 0 {
		errs = append(errs, errors.New("shutdown delay is negative"))
	}
	return errors.Join(errs...)
}

// Handlers are the admission handlers the server routes to.
type Handlers struct {
	MutateRuns        admission.Handler
	ValidateRuns      admission.Handler
	MutateWorkloads   admission.Handler
	ValidateWorkloads admission.Handler
}

// Server is the admission server.
type Server struct {
	opts     Options
	mux      *http.ServeMux // the admission port
	probes   *http.ServeMux // ProbeAddr, when set
	ready    func() error
	shutting atomic.Bool
	log      logr.Logger
	// Registry holds the server's metrics.
	Registry *prometheus.Registry
	metrics  *metrics
	stacks   *warmStacks // its workers run while Run serves
}

// New returns a server for the handlers. ready reports why the server is
// not ready yet (caches not synced, no policy snapshot), or nil.
func New(opts Options, h Handlers, ready func() error, log logr.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	s := &Server{opts: opts, mux: http.NewServeMux(), probes: http.NewServeMux(), ready: ready, log: log, Registry: reg, metrics: newMetrics(reg),
		stacks: &warmStacks{jobs: make(chan *stackJob)}}
	s.handle(PathMutateRuns, h.MutateRuns)
	s.handle(PathValidateRuns, h.ValidateRuns)
	s.handle(PathMutateWorkloads, h.MutateWorkloads)
	s.handle(PathValidateWorkloads, h.ValidateWorkloads)
	probes := s.mux
	if opts.ProbeAddr != "" {
		probes = s.probes
	}
	probes.HandleFunc(PathHealthz, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	probes.HandleFunc(PathReadyz, s.readyz)
	probes.Handle(PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return s, nil
}

func (s *Server) handle(path string, h admission.Handler) {
	if h == nil {
		return
	}
	s.mux.Handle(path, &reviewHandler{handler: s.metrics.instrument(path, h), log: s.log.WithValues("path", path), stacks: s.stacks})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.shutting.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.ready != nil {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// Handler returns the server's HTTP handler (for in-process tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves until ctx is done, then turns /readyz false, waits the shutdown
// delay and drains in-flight requests.
func (s *Server) Run(ctx context.Context, started chan<- net.Addr) error {
	getCert := s.opts.GetCertificate
	if getCert == nil {
		cw, err := certwatcher.New(s.opts.CertFile, s.opts.KeyFile)
		if err != nil {
			return fmt.Errorf("loading the serving certificate: %w", err)
		}
		go func() {
			if err := cw.Start(ctx); err != nil {
				s.log.Error(err, "certificate watcher stopped")
			}
		}()
		getCert = cw.GetCertificate
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.opts.Addr, err)
	}
	minVersion, err := s.opts.tlsVersion()
	if err != nil {
		return err
	}
	var clientCAs *x509.CertPool
	clientAuth := tls.NoClientCert
	if s.opts.ClientCAFile != "" {
		pem, err := os.ReadFile(s.opts.ClientCAFile)
		if err != nil {
			return fmt.Errorf("reading --client-ca-file: %w", err)
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--client-ca-file %s holds no PEM certificate", s.opts.ClientCAFile)
		}
		clientAuth = tls.RequireAndVerifyClientCert
	}
	if s.opts.ProbeAddr != "" {
		pl, err := net.Listen("tcp", s.opts.ProbeAddr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", s.opts.ProbeAddr, err)
		}
		ps := &http.Server{Handler: s.probes, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ps.Serve(pl) }()
		defer ps.Close()
		s.log.Info("serving probes and metrics", "address", pl.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig: &tls.Config{
			MinVersion:     minVersion,
			CipherSuites:   ModernCipherSuites,
			GetCertificate: getCert,
			ClientAuth:     clientAuth,
			ClientCAs:      clientCAs,
		},
	}
	stop := make(chan struct{})
	defer close(stop)
	s.stacks.start(4*runtime.GOMAXPROCS(0), stop)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.log.Info("serving admission webhooks", "address", ln.Addr().String())
	if started != nil {
		started <- ln.Addr()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.shutting.Store(true)
	s.log.Info("shutting down: readiness is false, draining", "delay", s.opts.ShutdownDelay)
	time.Sleep(s.opts.ShutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	return nil
}
