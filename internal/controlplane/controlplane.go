// Package controlplane starts a real kube-apiserver and etcd on this
// machine with the Tekton v1 and Tollgate CRDs and, optionally, Tollgate's
// webhook configurations pointed at a local address. `tollgate dev` and the
// test harness (testing/envtest) both start theirs here, so they install
// the same CRDs, register the same webhooks and wait for readiness the same
// way. It is shipped in the binary: it must not import package testing.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tollgate-dev/tollgate/webhook"
)

// Options of Start.
type Options struct {
	// Root is the Tollgate checkout: the CRDs in charts/tollgate/files/crds
	// and the go.mod that locates the Tekton module.
	Root string
	// Assets holds kube-apiserver and etcd (default Root/bin).
	Assets string
	// Webhooks registers webhook.Mutating and webhook.Validating, pointed
	// at WebhookAddr (which the caller serves with CertDir's certificate).
	Webhooks bool
	// AdmissionConfig, if set, is the API server's
	// --admission-control-config-file.
	AdmissionConfig string
}

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	// Config is the admin's client configuration, Client an admin client
	// with every type Tollgate reads.
	Config *rest.Config
	Client client.Client
	// WebhookAddr, CertDir and CAData locate the webhook the API server
	// calls (with Options.Webhooks).
	WebhookAddr string
	CertDir     string
	CAData      []byte

	env *crenvtest.Environment
}

// Start starts the control plane. Stop it with Stop.
func Start(opts Options) (*ControlPlane, error) {
	if opts.Assets == "" {
		opts.Assets = filepath.Join(opts.Root, "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(opts.Assets, b)); err != nil {
			return nil, fmt.Errorf("%s is not built: run `make tools` (it builds kube-apiserver and etcd from the Go module proxy once, cached in ~/.cache/tollgate): %w", b, err)
		}
	}
	crds, err := CRDs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("loading CRDs: %w", err)
	}
	e := &crenvtest.Environment{
		BinaryAssetsDirectory:   opts.Assets,
		CRDs:                    crds,
		ErrorIfCRDPathMissing:   true,
		ControlPlaneStopTimeout: 30 * time.Second,
	}
	if opts.Webhooks {
		e.WebhookInstallOptions = crenvtest.WebhookInstallOptions{
			LocalServingHost:   "127.0.0.1",
			MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{webhook.Mutating()},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{webhook.Validating()},
		}
	}
	// The API server listens on loopback; URLs it hands out (the OIDC
	// discovery document's jwks_uri, which Fulcio follows) must point there
	// too, not at an interface address it guessed.
	e.ControlPlane.GetAPIServer().Configure().Set("external-hostname", "127.0.0.1")
	if opts.AdmissionConfig != "" {
		e.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", opts.AdmissionConfig)
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	cp := &ControlPlane{Config: cfg, env: e}
	scheme, err := webhook.Scheme()
	if err == nil {
		cp.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	}
	if err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	if opts.Webhooks {
		w := &e.WebhookInstallOptions
		cp.WebhookAddr = net.JoinHostPort(w.LocalServingHost, fmt.Sprint(w.LocalServingPort))
		cp.CertDir, cp.CAData = w.LocalServingCertDir, w.LocalServingCAData
	}
	return cp, nil
}

// Stop stops the API server and etcd.
func (c *ControlPlane) Stop() error { return c.env.Stop() }

// Kubeconfig returns a kubeconfig of a new user with groups (certificate
// authentication).
func (c *ControlPlane) Kubeconfig(name string, groups ...string) ([]byte, error) {
	u, err := c.env.AddUser(crenvtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// TektonCRDs are the CRDs of Tekton Pipelines installed (all of its release's,
// so that its controller runs), from the pipeline module.
var TektonCRDs = []string{"300-pipelinerun.yaml", "300-taskrun.yaml", "300-task.yaml", "300-pipeline.yaml", "300-stepaction.yaml", "300-customrun.yaml",
	"300-resolutionrequest.yaml", "300-verificationpolicy.yaml"}

// CRDs returns the Tekton v1 CRDs (conversion set to None: no Tekton
// conversion webhook runs here) and Tollgate's, from the checkout at root.
func CRDs(root string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the Tekton CRDs (go list -m github.com/tektoncd/pipeline in %s): %w", root, err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range TektonCRDs {
		c, err := readCRDs(filepath.Join(strings.TrimSpace(string(out)), "config", "300-crds", f))
		if err != nil {
			return nil, err
		}
		for _, crd := range c {
			crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
		}
		crds = append(crds, c...)
	}
	ours, err := filepath.Glob(filepath.Join(root, "charts", "tollgate", "files", "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(ours) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/charts/tollgate/files/crds: run `make generate`", root)
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

// ReportCRDs are the wg-policy PolicyReport and ClusterPolicyReport CRDs
// the chart installs where no other tool has (files/report-crds).
func ReportCRDs(root string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(root, "charts", "tollgate", "files", "report-crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		c, err := readCRDs(f)
		if err != nil {
			return nil, err
		}
		crds = append(crds, c...)
	}
	if len(crds) != 2 {
		return nil, fmt.Errorf("want the PolicyReport and ClusterPolicyReport CRDs in %s/charts/tollgate/files/report-crds, found %d", root, len(crds))
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
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if crd.Name != "" {
			out = append(out, crd)
		}
	}
	return out, nil
}

// WaitReady polls the webhook's /readyz over TLS trusting ca (plain HTTP
// on a probe address, given no CA) until it answers 200, ctx is done or
// timeout passes.
func WaitReady(ctx context.Context, addr string, ca []byte, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	scheme := "https"
	if ca == nil {
		scheme = "http"
	}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := c.Get(scheme + "://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the webhook at %s is not ready after %s: %s", addr, timeout, last)
}

// GrantTekton gives the Tekton controller's service account
// (tekton-pipelines/tekton-pipelines-controller) what the real controller's
// RBAC gives it that Tollgate's checks involve: runs and their status, Pods.
func GrantTekton(ctx context.Context, c client.Client) error {
	const name = "tekton-pipelines-controller"
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"tekton.dev"}, Resources: []string{"pipelineruns", "taskruns", "pipelineruns/status", "taskruns/status"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
	}}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "tekton-pipelines", Name: name}}}
	for _, o := range []client.Object{cr, crb} {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// Eventually calls f every interval until it returns true (true), ctx is
// done or timeout passes (f's last answer).
func Eventually(ctx context.Context, timeout, interval time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
	return f()
}
