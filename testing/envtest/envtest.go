package envtest

import (
	"context"

	"fmt"
	"github.com/go-logr/logr"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/webhook"
)

// Identities used by the harness.
const (
	TektonController = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"
	Signer           = "system:serviceaccount:tollgate-system:tollgate-signer"
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

// Env is a running control plane.
type Env struct {
	// Config is the admin's client configuration.
	Config *rest.Config
	// Client is an admin client with every type Tollgate reads.
	Client client.Client
	// WebhookAddr, CertDir and CAData locate the webhook the API server calls.
	WebhookAddr string
	CertDir     string
	CAData      []byte
	// ClientCAFile, with Options.AdmissionClientCert, is the CA of the
	// client certificate the API server presents to webhooks.
	ClientCAFile string

	env *crenvtest.Environment
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
	bin := filepath.Join(Root(), "bin")
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s is not built: run `make tools` (it builds kube-apiserver and etcd from the Go module proxy once, cached in ~/.cache/tollgate): %v", b, err)
		}
	}
	crds, err := CRDs()
	if err != nil {
		t.Fatalf("loading CRDs: %v", err)
	}
	e := &crenvtest.Environment{
		BinaryAssetsDirectory:   bin,
		CRDs:                    crds,
		ErrorIfCRDPathMissing:   true,
		ControlPlaneStopTimeout: 30 * time.Second,
	}
	if opts.Webhooks {
		e.WebhookInstallOptions = crenvtest.WebhookInstallOptions{
			LocalServingHost:   "127.0.0.1",
			MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{webhook.MutatingRuns(), webhook.MutatingWorkloads()},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{webhook.ValidatingRuns(), webhook.ValidatingWorkloads()},
		}
	}
	var clientCA string
	if opts.AdmissionClientCert {
		conf, ca, err := admissionClientAuth(t.TempDir())
		if err != nil {
			t.Fatalf("writing the admission client configuration: %v", err)
		}
		e.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", conf)
		clientCA = ca
	}
	// The API server must accept impersonation of the Tekton controller and
	// serve the admission plugins the webhooks need (on by default).
	cfg, err := e.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	scheme, err := webhook.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Config: cfg, Client: cl, env: e, ClientCAFile: clientCA}
	if opts.Webhooks {
		w := &e.WebhookInstallOptions
		env.WebhookAddr = net.JoinHostPort(w.LocalServingHost, fmt.Sprint(w.LocalServingPort))
		env.CertDir = w.LocalServingCertDir
		env.CAData = w.LocalServingCAData
	}
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
	if err := WaitReady(e.WebhookAddr, e.CAData, 60*time.Second); err != nil {
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
		cfg.Identities = runs.Identities{TektonControllers: []string{TektonController}, Trusted: []string{Signer}}
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

// CRDs returns the Tekton v1 CRDs (conversion set to None: no Tekton
// conversion webhook runs here) and Tollgate's CRDs.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		return nil, fmt.Errorf("locating the tektoncd/pipeline module (go list -m): %w", err)
	}
	tekton := filepath.Join(strings.TrimSpace(string(out)), "config", "300-crds")
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range []string{"300-pipelinerun.yaml", "300-taskrun.yaml", "300-task.yaml", "300-pipeline.yaml", "300-stepaction.yaml", "300-customrun.yaml"} {
		c, err := readCRDs(filepath.Join(tekton, f))
		if err != nil {
			return nil, err
		}
		for _, crd := range c {
			crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
		}
		crds = append(crds, c...)
	}
	ours, err := filepath.Glob(filepath.Join(Root(), "charts", "tollgate", "files", "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(ours) == 0 {
		return nil, fmt.Errorf("no CRDs in charts/tollgate/files/crds: run `make generate`")
	}
	for _, f := range ours {
		c, err := readCRDs(f)
		if err != nil {
			return nil, err
		}
		crds = append(crds, c...)
	}
	return crds, nil
}

func readCRDs(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); err != nil {
			if err.Error() == "EOF" {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if crd.Name == "" {
			continue
		}
		out = append(out, crd)
	}
	return out, nil
}
