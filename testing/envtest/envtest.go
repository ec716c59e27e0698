package envtest

import (
	"context"

	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/webhook"
)

// Identities used by the harness: a standard installation's.
const (
	TektonController = runs.DefaultTektonController
	Signer           = runs.DefaultSigner
	// StampKeySecret is where the harness's webhook keeps its stamp keys.
	StampKeySecret = "tollgate-system/tollgate-stamp-key"
)

// quietGlobalLogger silences controller-runtime's global logger (informers
// log through it); the webhook logs through its own logger into the test log.
var quietGlobalLogger sync.Once

// Root returns the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Env is a running control plane (see internal/controlplane).
type Env struct {
	*controlplane.ControlPlane
	// ClientCAFile, with Options.AdmissionClientCert, is the CA of the
	// client certificate the API server presents to webhooks.
	ClientCAFile string
}

// Options of Start.
type Options struct {
	// Webhooks registers the run guard's webhook configurations, pointing at
	// WebhookAddr (which the caller serves, e.g. with StartWebhook).
	Webhooks bool
	// AdmissionClientCert starts the API server with an admission
	// configuration that presents a client certificate (signed by
	// Env.ClientCAFile) to every webhook it calls.
	AdmissionClientCert bool
}

// Start starts kube-apiserver and etcd with the Tekton and Tollgate CRDs
// installed, and stops them when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	quietGlobalLogger.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	cpOpts := controlplane.Options{Root: Root(), Webhooks: opts.Webhooks}
	env := &Env{}
	if opts.AdmissionClientCert {
		conf, ca, err := admissionClientAuth(t.TempDir())
		if err != nil {
			t.Fatalf("writing the admission client configuration: %v", err)
		}
		cpOpts.AdmissionConfig, env.ClientCAFile = conf, ca
	}
	cp, err := controlplane.Start(cpOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	env.ControlPlane = cp
	return env
}

// StartWebhook runs `tollgate webhook` in-process on the address the API
// server calls, with the harness's serving certificate, and waits until it
// is ready. It stops with the test.
func (e *Env) StartWebhook(t testing.TB) {
	t.Helper()
	if e.WebhookAddr == "" {
		t.Fatal("the environment was started without webhooks")
	}
	e.RunWebhook(t, webhook.Config{Server: webhook.Options{Addr: e.WebhookAddr}}, zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)))
	if err := controlplane.WaitReady(t.Context(), e.WebhookAddr, e.CAData, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// RunWebhook runs `tollgate webhook` in-process with cfg, filled in where
// it is empty (the harness's certificate unless cfg manages its own, this
// control plane, the harness's identities, default image options), and
// returns the address it listens on once it does. stop shuts it down (its
// readiness turns false, it drains) and reports its error; it also runs
// when the test ends.
func (e *Env) RunWebhook(t testing.TB, cfg webhook.Config, log logr.Logger) (addr string, stop func()) {
	t.Helper()
	if cfg.Certs == nil && cfg.Server.CertFile == "" {
		cfg.Server.CertFile, cfg.Server.KeyFile = filepath.Join(e.CertDir, "tls.crt"), filepath.Join(e.CertDir, "tls.key")
	}
	if cfg.RestConfig == nil {
		cfg.RestConfig = e.Config
	}
	if len(cfg.Identities.TektonControllers) == 0 {
		cfg.Identities = runs.DefaultIdentities()
	}
	if cfg.Images.Budget == 0 {
		cfg.Images = webhook.DefaultImageOptions()
	}
	if cfg.PolicyResync == 0 {
		cfg.PolicyResync = webhook.DefaultPolicyResync
	}
	if cfg.StampKeySecret == "" {
		// As the chart: the stamp's MAC keys in Tollgate's namespace.
		cfg.StampKeySecret = StampKeySecret
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tollgate-system"}}
		if err := e.Client.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating namespace tollgate-system: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan net.Addr, 1)
	go func() { done <- webhook.Run(ctx, cfg, log, started) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("webhook: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case a := <-started:
		return a.String(), stop
	case err := <-done:
		t.Fatalf("webhook did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("webhook did not start within 60s")
	}
	return "", stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
