package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/webhook"
)

// Where `tollgate dev` puts things, as the chart does in a cluster.
const (
	devNamespace  = "tollgate-system"
	devBuilderID  = "https://tollgate.dev/builders/dev"
	devPassword   = "tollgate-dev"
	devReadyFile  = "ready.json"
	devKubeconfig = "kubeconfig"
)

// DevState is what `tollgate dev` writes to DIR/ready.json once everything runs.
type DevState struct {
	Kubeconfig string `json:"kubeconfig"`
	Registry   string `json:"registry"`
	CosignPub  string `json:"cosignPub"`
	PID        int    `json:"pid"`
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system on this machine: a real API server, a registry, the webhook and the signer",
		Long: `Start, on this machine and without a cluster:

  - a real kube-apiserver and etcd (the test harness's, built on first use
    from the Go module proxy into ~/.cache/tollgate, with progress), with the
    Tekton v1 and Tollgate CRDs;
  - an OCI registry on loopback;
  - the chart's rendered manifests (bin/helm template charts/tollgate): CRDs,
    RBAC, chains-config (signatures and SLSA provenance stored in the
    registry), the gate-label policy — all but the Deployments and Services,
    which need nodes;
  - Tollgate's webhook (run guard and image gate) registered with the API
    server with the chart's rules, and its signer (as its service account)
    with a freshly generated cosign key pair (Secret
    tollgate-system/signing-secrets; the public key is written to
    DIR/cosign.pub).

It writes an admin kubeconfig to DIR/kubeconfig and DIR/ready.json, prints
what to try, and runs until interrupted (Ctrl-C), then stops everything it
started. Tekton itself does not run in this command (it is not linked into
Tollgate): in a checkout, 'make dev' runs this command together with the real
Tekton Pipelines controller and webhook (v1.11.0, built once as test tools)
and a node stand-in that runs the Pods Tekton creates, so runs you create
are run by Tekton, admitted by the webhook and signed by the signer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", filepath.Join(os.TempDir(), "tollgate-dev"), "directory for the kubeconfig, cosign.pub and ready.json")
	f.StringVar(&o.root, "root", "", "the Tollgate checkout (CRDs, tool binaries); default: found from the working directory")
	f.StringVar(&o.assets, "assets", "", "directory holding kube-apiserver, etcd and helm (default ROOT/bin; what is missing there is built on first use, as 'make tools' does)")
	f.StringVar(&o.registryAddr, "registry", "127.0.0.1:0", "address of the loopback registry")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log the webhook's and the signer's decisions")
	return cmd
}

func findRoot(start string) (string, error) {
	dir := start
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tollgate-dev/tollgate\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no Tollgate checkout at or above %s: run from the checkout or pass --root", start)
		}
		dir = parent
	}
}

// devOptions are the flags of `tollgate dev`.
type devOptions struct {
	dir, assets, root, registryAddr string
	verbose                         bool
}

// runDev starts everything, in order — tools, registry, control plane,
// bootstrap objects and the chart, webhook, signer — then writes the
// kubeconfig and ready.json, and runs until interrupted or a component
// stops. Every step prints a line.
func runDev(cmd *cobra.Command, o devOptions) error {
	out := cmd.OutOrStdout()
	step := func(format string, args ...any) { fmt.Fprintf(out, "dev: "+format+"\n", args...) }
	if err := devTools(cmd, &o, step); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return usageError("--dir: %w", err)
	}
	_ = os.Remove(filepath.Join(o.dir, devReadyFile))
	ctrllog.SetLogger(logr.Discard())
	logger := logr.Discard()
	if o.verbose {
		logger = zap.New(zap.WriteTo(cmd.ErrOrStderr()), zap.UseDevMode(true))
	}

	ln, err := net.Listen("tcp", o.registryAddr)
	if err != nil {
		return usageError("--registry %s: %w (is another 'tollgate dev' running?)", o.registryAddr, err)
	}
	regSrv := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = regSrv.Serve(ln) }()
	defer regSrv.Close()
	registry := ln.Addr().String()
	step("registry on %s", registry)

	step("starting kube-apiserver and etcd from %s", o.assets)
	cp, err := controlplane.Start(controlplane.Options{Root: o.root, Assets: o.assets, Webhooks: true})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the control plane")
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "dev: stopping the control plane:", err)
		}
	}()
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	pubPath, err := devInstall(ctx, cp, o, step)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	if err := devWebhook(ctx, cp, logger.WithName("webhook"), errs); err != nil {
		return err
	}
	step("webhook serving on %s (run guard and image gate registered with the API server)", cp.WebhookAddr)
	if err := devSigner(ctx, cp, logger.WithName("signer"), errs); err != nil {
		return err
	}
	step("signer running as %s", runs.DefaultSigner)

	kcPath, err := devReady(cp, o.dir, registry, pubPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `dev: ready.

  export KUBECONFIG=%s
  kubectl get clusterrunpolicies,clusterimagepolicies
  kubectl apply -f testing/samples/cluster                          # a team namespace, service accounts, Tasks
  kubectl create -f testing/samples/runs/03-privileged-step.yaml   # denied, with the reason
  (images: push to %s; the signer's public key is %s)

Ctrl-C stops everything.
`, kcPath, registry, pubPath)

	select {
	case <-ctx.Done():
		step("interrupted; stopping")
		_ = os.Remove(filepath.Join(o.dir, devReadyFile))
		return nil
	case err := <-errs:
		return fmt.Errorf("a component stopped: %w", err)
	}
}

// devTools finds the checkout and the tools, building the missing ones
// once from the Go module proxy (with progress, cached outside the
// checkout) unless --assets names where they must be.
func devTools(cmd *cobra.Command, o *devOptions, step func(string, ...any)) error {
	if o.root == "" {
		wd, _ := os.Getwd()
		root, err := findRoot(wd)
		if err != nil {
			return usageError("%w", err)
		}
		o.root = root
	}
	explicit := o.assets != ""
	if !explicit {
		o.assets = filepath.Join(o.root, "bin")
	}
	var missing []string
	for _, b := range []string{"kube-apiserver", "etcd", "helm"} {
		if _, err := os.Stat(filepath.Join(o.assets, b)); err != nil {
			missing = append(missing, b)
		}
	}
	switch {
	case len(missing) == 0:
		return nil
	case explicit:
		return usageError("%s not in %s (--assets)", strings.Join(missing, ", "), o.assets)
	}
	step("building %s (once; kube-apiserver takes about 10 minutes on 2 cores)", strings.Join(missing, ", "))
	build := exec.Command(filepath.Join(o.root, "testing", "tools", "build.sh"), missing...)
	build.Dir, build.Stdout, build.Stderr = o.root, cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s: %w (a half-built cache is cleared with 'rm -rf ~/.cache/tollgate/tools')", strings.Join(missing, ", "), err)
	}
	return nil
}

// devInstall creates what an operator and Tekton's install would (a fresh
// cosign key pair, whose public key it writes to DIR/cosign.pub) and
// applies the chart's manifests; it returns the public key's path.
func devInstall(ctx context.Context, cp *controlplane.ControlPlane, o devOptions, step func(string, ...any)) (string, error) {
	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(devPassword), nil })
	if err != nil {
		return "", fmt.Errorf("generating the signing key: %w", err)
	}
	pubPath := filepath.Join(o.dir, "cosign.pub")
	if err := os.WriteFile(pubPath, keys.PublicBytes, 0o644); err != nil {
		return "", err
	}
	if err := devBootstrap(ctx, cp.Client, keys); err != nil {
		return "", err
	}
	applied, err := devChart(ctx, cp.Client, o.root, cp.CAData)
	if err != nil {
		return "", err
	}
	step("applied the chart's rendered manifests (%s); its webhook configurations are registered as above, pointed at this machine", applied)
	step("signing key generated (Secret %s/signing-secrets, public key %s)", devNamespace, pubPath)
	return pubPath, nil
}

// devWebhook runs the webhook (its error, when it stops, goes to errs) and
// waits until it is ready.
func devWebhook(ctx context.Context, cp *controlplane.ControlPlane, logger logr.Logger, errs chan<- error) error {
	started := make(chan net.Addr, 1)
	stopped := make(chan error, 1)
	go func() {
		err := webhook.Run(ctx, webhook.Config{
			Server:         webhook.Options{Addr: cp.WebhookAddr, CertFile: filepath.Join(cp.CertDir, "tls.crt"), KeyFile: filepath.Join(cp.CertDir, "tls.key")},
			RestConfig:     cp.Config,
			Identities:     runs.DefaultIdentities(),
			Images:         webhook.DefaultImageOptions(),
			StampKeySecret: devNamespace + "/tollgate-stamp-key",
			PolicyResync:   webhook.DefaultPolicyResync,
		}, logger, started)
		stopped <- err
		errs <- err
	}()
	select {
	case <-started:
	case err := <-stopped:
		return fmt.Errorf("webhook: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("the webhook did not start within 30s")
	}
	return controlplane.WaitReady(ctx, cp.WebhookAddr, cp.CAData, 60*time.Second)
}

// devSigner runs the signer as its service account, with the chart's
// options (a shorter retry delay); its error, when it stops, goes to errs.
func devSigner(ctx context.Context, cp *controlplane.ControlPlane, logger logr.Logger, errs chan<- error) error {
	store, err := oci.New("", nil)
	if err != nil {
		return err
	}
	cfg := signer.DefaultConfig()
	cfg.RestConfig = rest.CopyConfig(cp.Config)
	cfg.RestConfig.Impersonate = rest.ImpersonationConfig{UserName: runs.DefaultSigner, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	cfg.Options.Namespace, cfg.Options.Registry, cfg.Options.RetryDelay = devNamespace, store, time.Second
	cfg.ProbeAddr, cfg.MetricsAddr, cfg.LeaderElection = "0", "0", false
	if err := cfg.Validate(); err != nil {
		return err
	}
	go func() { errs <- signer.Run(ctx, cfg, logger) }()
	return nil
}

// devReady writes an admin kubeconfig and ready.json into dir, and returns
// the kubeconfig's path.
func devReady(cp *controlplane.ControlPlane, dir, registry, pubPath string) (string, error) {
	kc, err := cp.Kubeconfig("tollgate-dev-admin", "system:masters")
	if err != nil {
		return "", err
	}
	kcPath := filepath.Join(dir, devKubeconfig)
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		return "", err
	}
	state, _ := json.MarshalIndent(DevState{Kubeconfig: kcPath, Registry: registry, CosignPub: pubPath, PID: os.Getpid()}, "", "  ")
	return kcPath, os.WriteFile(filepath.Join(dir, devReadyFile), state, 0o644)
}

// devBootstrap creates what an operator and Tekton's own install would: the
// namespace, the signing Secret (cosign generate-key-pair k8s://…), a run
// ceiling, and the Tekton controller's RBAC. The rest comes from the chart.
func devBootstrap(ctx context.Context, c client.Client, keys *cosign.KeysBytes) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: devNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: devNamespace, Name: "signing-secrets"},
			Data: map[string][]byte{"cosign.key": keys.PrivateBytes, "cosign.pub": keys.PublicBytes, "cosign.password": []byte(devPassword)}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: runs.DefaultCeilingClusterRole}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return controlplane.GrantTekton(ctx, c)
}

// devChart renders charts/tollgate with bin/helm and applies what a cluster
// without a kubelet can hold: CRDs, service accounts, RBAC, chains-config
// and the gate-label policy. Deployments and Services need nodes; the
// webhook configurations are registered by the control plane's start, with
// the same rules, pointed at the webhook on this machine.
func devChart(ctx context.Context, c client.Client, root string, ca []byte) (string, error) {
	helmBin := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helmBin); err != nil {
		return "", usageError("bin/helm is missing: run 'make tools' (it builds helm from the Go module proxy once)")
	}
	values := fmt.Sprintf(`tls: {mode: secret, secretName: unused, caBundle: %q}
chainsConfig:
  artifacts.taskrun.format: slsa/v2alpha4
  artifacts.taskrun.storage: oci
  artifacts.oci.storage: oci
  artifacts.pipelinerun.format: slsa/v2alpha4
  artifacts.pipelinerun.storage: oci
  transparency.enabled: "false"
  builder.id: %s
`, base64.StdEncoding.EncodeToString(ca), devBuilderID)
	vf, err := os.CreateTemp("", "tollgate-dev-values-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(vf.Name())
	if _, err := vf.WriteString(values); err != nil {
		return "", err
	}
	vf.Close()
	cmd := exec.Command(helmBin, "template", "tollgate", filepath.Join(root, "charts", "tollgate"), "-n", devNamespace, "--kube-version", "1.35.4", "-f", vf.Name())
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("helm template: %w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("helm template: %w", err)
	}
	keep := map[string]bool{"CustomResourceDefinition": true, "ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true,
		"Role": true, "RoleBinding": true, "ConfigMap": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("reading the rendered chart: %w", err)
		}
		if len(u.Object) == 0 || !keep[u.GetKind()] {
			continue
		}
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("tollgate-dev"), client.ForceOwnership); err != nil {
			return "", fmt.Errorf("applying the chart's %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		n++
	}
	return fmt.Sprintf("%d objects", n), nil
}
