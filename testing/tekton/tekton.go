// Package tekton runs the real Tekton Pipelines — its controller and its
// webhook, built from the Go module proxy (testing/tools/tekton) — against
// a test control plane, with the ConfigMaps, service accounts and RBAC of
// Tekton's own release manifests (config/ in the pipeline module), and a
// node stand-in (Node) that plays the kubelet and Tekton's entrypoint for
// the Pods Tekton creates, so that Tekton itself runs TaskRuns and
// PipelineRuns to the end.
//
// The API server reaches Tekton's webhook the way it reaches Tollgate's in
// these tests, by URL on loopback: Tekton's webhook reconciles its own
// webhook configurations (rules, CA bundle, paths) as in a cluster, where
// they name its Service; a loopback twin of each ("tollgate-test.NAME")
// carries what it reconciled with the Service replaced by the URL, and the
// originals select no object (there is no Service to call here).
package tekton

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
)

// Namespace is where Tekton's components live, as in its release.
const Namespace = "tekton-pipelines"

// Service accounts of the controller and the webhook (config/200-serviceaccount.yaml).
const (
	ControllerServiceAccount = "tekton-pipelines-controller"
	WebhookServiceAccount    = "tekton-pipelines-webhook"
)

// Images the controller puts into the Pods it creates (its -*-image flags).
// The node stand-in does not pull them; they are pinned as a release pins them.
var (
	EntrypointImage = "ghcr.io/tektoncd/pipeline/entrypoint@sha256:" + strings.Repeat("1", 64)
	NopImage        = "ghcr.io/tektoncd/pipeline/nop@sha256:" + strings.Repeat("2", 64)
	ShellImage      = "cgr.dev/chainguard/busybox@sha256:19f02276bf8dbdd62f069b922f10c65262cc34b710eea26ff928129a736be791"
)

// Options of Start.
type Options struct {
	// FeatureFlags are set in the feature-flags ConfigMap over the release's.
	FeatureFlags map[string]string
	// Defaults are set in config-defaults over the release's.
	Defaults map[string]string
	// Node configures the node stand-in.
	Node NodeOptions
	// Resolvers also runs Tekton's remote resolvers (cmd/resolvers, in
	// tekton-pipelines-resolvers as the release installs them): the cluster
	// and bundles resolvers work here; hub, git and http need a network.
	Resolvers bool
}

// ResolversNamespace is where Tekton's resolvers live, as in its release.
const ResolversNamespace = "tekton-pipelines-resolvers"

// Tekton is Tekton Pipelines running against a control plane.
type Tekton struct {
	// Version is the Tekton Pipelines release running.
	Version string
	// Node is the node stand-in running its Pods.
	Node *Node

	cfg        Config
	c          client.Client
	webhookURL string
	controller *proc.Process
	webhook    *proc.Process
	resolvers  *proc.Process
	stopMirror func()
}

// Config of Run.
type Config struct {
	// RestConfig reaches the API server as a cluster admin.
	RestConfig *rest.Config
	// Root is the Tollgate checkout (bin/ and testing/tools/tekton).
	Root string
	// Dir is a scratch directory, removed by the caller.
	Dir string
	Options
}

// Start starts Tekton's webhook and controller and the node stand-in for
// the test's control plane, and stops them when the test ends. It returns
// once Tekton's webhook answers for its resources through the API server.
func Start(t testing.TB, env *envtest.Env, opts Options) *Tekton {
	t.Helper()
	tk, err := Run(t.Context(), Config{RestConfig: env.Config, Root: envtest.Root(), Dir: t.TempDir(), Options: opts})
	if tk != nil {
		t.Cleanup(func() {
			tk.Stop()
			if t.Failed() {
				t.Logf("tekton-controller's output:\n%s\ntekton-webhook's output:\n%s\nnode stand-in:\n%s", tk.ControllerOutput(), tk.WebhookOutput(), tk.Node.Logs())
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// Run starts Tekton's webhook and controller (and resolvers when asked)
// and the node stand-in against a control plane; Stop stops them. It
// returns once Tekton's webhook answers for its resources through the API
// server. On an error, what was started is stopped.
func Run(ctx context.Context, cfg Config) (tk *Tekton, err error) {
	c, err := client.New(cfg.RestConfig, client.Options{})
	if err != nil {
		return nil, err
	}
	version, dir, err := release(cfg.Root)
	if err != nil {
		return nil, err
	}
	tk = &Tekton{Version: version, cfg: cfg, c: c}
	defer func() {
		if err != nil {
			tk.Stop()
			tk = nil
		}
	}()
	config := filepath.Join(dir, "config")
	// The namespace, service accounts, RBAC and ConfigMaps of the release.
	for _, f := range []string{"100-namespace/100-namespace.yaml", "200-serviceaccount.yaml", "200-clusterrole.yaml", "200-role.yaml",
		"201-clusterrolebinding.yaml", "201-rolebinding.yaml", "clusterrole-aggregate-edit.yaml", "clusterrole-aggregate-view.yaml"} {
		if err := apply(ctx, c, filepath.Join(config, f), nil); err != nil {
			return tk, err
		}
	}
	cms, _ := filepath.Glob(filepath.Join(config, "config-*.yaml"))
	for _, f := range cms {
		err := apply(ctx, c, f, func(u *unstructured.Unstructured) {
			switch u.GetName() {
			case "feature-flags":
				setData(u, cfg.FeatureFlags)
			case "config-defaults":
				setData(u, cfg.Defaults)
			case "pipelines-info":
				setData(u, map[string]string{"version": version})
			}
		})
		if err != nil {
			return tk, err
		}
	}
	if err := tk.startWebhook(ctx, config); err != nil {
		return tk, err
	}
	if err := tk.startController(ctx); err != nil {
		return tk, err
	}
	if cfg.Resolvers {
		if err := tk.startResolvers(ctx, config); err != nil {
			return tk, err
		}
	}
	if tk.Node, err = RunNode(cfg.RestConfig, filepath.Join(cfg.Dir, "node"), cfg.Node); err != nil {
		return tk, err
	}
	return tk, tk.awaitWebhook(ctx)
}

// awaitWebhook returns once Tekton's webhook is in the loop: its
// defaulting answers through the API server (a Task's untyped parameter
// becomes a string one).
func (tk *Tekton) awaitWebhook(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "tekton.dev/v1", "kind": "Task",
			"metadata": map[string]any{"namespace": Namespace, "name": "tollgate-test-probe"},
			"spec": map[string]any{"params": []any{map[string]any{"name": "p"}},
				"steps": []any{map[string]any{"name": "s", "image": ShellImage, "script": "true"}}},
		}}
		err := tk.c.Create(ctx, probe, client.DryRunAll)
		if err == nil {
			params, _, _ := unstructured.NestedSlice(probe.Object, "spec", "params")
			if len(params) == 1 && params[0].(map[string]any)["type"] == "string" {
				return nil
			}
			err = fmt.Errorf("the parameter has no type: Tekton's defaulting did not run")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tekton's webhook is not in the loop after a minute: %v\nwebhook:\n%s", err, tk.webhook.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop stops the node stand-in and Tekton's processes, and removes the
// webhook configurations' loopback twins (they would call a webhook that
// is gone).
func (tk *Tekton) Stop() {
	if tk.Node != nil {
		tk.Node.Stop()
	}
	for _, p := range []*proc.Process{tk.resolvers, tk.controller} {
		if p != nil {
			p.Stop()
		}
	}
	if tk.stopMirror != nil {
		tk.stopMirror()
		ctx := context.Background()
		_ = tk.c.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: twin("webhook.pipeline.tekton.dev")}})
		for _, name := range []string{"validation.webhook.pipeline.tekton.dev", "config.webhook.pipeline.tekton.dev"} {
			_ = tk.c.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: twin(name)}})
		}
	}
	if tk.webhook != nil {
		tk.webhook.Stop()
	}
}

// release is the Tekton Pipelines version the tools module pins (or
// TEKTON_VERSION) and its module directory (release manifests in config/).
func release(root string) (version, dir string, err error) {
	tools := filepath.Join(root, "testing", "tools", "tekton")
	version = os.Getenv("TEKTON_VERSION")
	if version == "" {
		list := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/tektoncd/pipeline")
		list.Dir = tools
		out, err := list.Output()
		if err != nil {
			return "", "", fmt.Errorf("the Tekton version of testing/tools/tekton: %w", err)
		}
		version = strings.TrimSpace(string(out))
	}
	dl := exec.Command("go", "mod", "download", "-json", "github.com/tektoncd/pipeline@"+version)
	dl.Dir = tools
	out, err := dl.Output()
	if err != nil {
		return "", "", fmt.Errorf("the Tekton Pipelines %s module: %w\n%s", version, err, out)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", "", fmt.Errorf("the Tekton Pipelines %s module: %v %s", version, err, out)
	}
	return version, m.Dir, nil
}

// apply creates every object of a manifest file, edited by edit.
func apply(ctx context.Context, c client.Client, file string, edit func(*unstructured.Unstructured)) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: %w", file, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if edit != nil {
			edit(u)
		}
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: creating %s %s: %w", file, u.GetKind(), u.GetName(), err)
		}
	}
}

func setData(u *unstructured.Unstructured, data map[string]string) {
	for k, v := range data {
		_ = unstructured.SetNestedField(u.Object, v, "data", k)
	}
}

// kubeconfig writes a kubeconfig that authenticates as a service account
// of Tekton's namespace, or NAMESPACE/NAME (a bound token, as a projected
// one in a Pod).
func (tk *Tekton) kubeconfig(ctx context.Context, sa string) (string, error) {
	ns := Namespace
	if n, name, ok := strings.Cut(sa, "/"); ok {
		ns, sa = n, name
	}
	expiry := int64(24 * 3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
	if err := tk.c.SubResource("token").Create(ctx, acct, tr); err != nil {
		return "", fmt.Errorf("a token for %s/%s: %w", ns, sa, err)
	}
	rc := tk.cfg.RestConfig
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(rc.CAFile); err != nil {
			return "", err
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: sa}
	cfg.CurrentContext = "test"
	file := filepath.Join(tk.cfg.Dir, "kubeconfigs", ns+"-"+sa)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	return file, clientcmd.WriteToFile(*cfg, file)
}

// env is the environment of a Tekton process: what its Deployment sets,
// with loopback ports of its own.
func (tk *Tekton) processEnv(ctx context.Context, sa string, extra ...string) ([]string, error) {
	kc, err := tk.kubeconfig(ctx, sa)
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = proc.Port(); err != nil {
			return nil, err
		}
	}
	return append(append(os.Environ(),
		"SYSTEM_NAMESPACE="+Namespace,
		"KUBECONFIG="+kc,
		"KUBERNETES_MIN_VERSION=v1.28.0",
		"CONFIG_LOGGING_NAME=config-logging",
		"CONFIG_OBSERVABILITY_NAME=config-observability",
		"CONFIG_FEATURE_FLAGS_NAME=feature-flags",
		"METRICS_DOMAIN=tekton.dev/pipeline",
		"METRICS_PROMETHEUS_HOST=127.0.0.1",
		"METRICS_PROMETHEUS_PORT="+strconv.Itoa(ports[0]),
		"PROFILING_PORT="+strconv.Itoa(ports[1]),
		"PROBES_PORT="+strconv.Itoa(ports[2]),
	), extra...), nil
}

// startController runs Tekton's controller as its service account.
func (tk *Tekton) startController(ctx context.Context) error {
	bin, err := proc.ToolPath(tk.cfg.Root, "tekton-controller")
	if err != nil {
		return err
	}
	p := proc.New("tekton-controller", bin,
		"-entrypoint-image", EntrypointImage, "-nop-image", NopImage,
		"-sidecarlogresults-image", "ghcr.io/tektoncd/pipeline/sidecarlogresults@sha256:"+strings.Repeat("3", 64),
		"-workingdirinit-image", "ghcr.io/tektoncd/pipeline/workingdirinit@sha256:"+strings.Repeat("4", 64),
		"-shell-image", ShellImage,
		"-shell-image-win", "mcr.microsoft.com/powershell:nanoserver@sha256:b6d5ff841b78bdf2dfed7550000fd4f3437385b8fa686ec0f010be24777654d6")
	if p.Cmd.Env, err = tk.processEnv(ctx, ControllerServiceAccount,
		"CONFIG_DEFAULTS_NAME=config-defaults",
		"CONFIG_LEADERELECTION_NAME=config-leader-election-controller",
		"CONFIG_SPIRE=config-spire"); err != nil {
		return err
	}
	tk.controller = p
	return p.Launch()
}

// startResolvers runs Tekton's resolvers as their service account, with
// the release's namespace, RBAC and ConfigMaps (config/resolvers). The hub
// APIs point at a closed loopback port: nothing leaves the machine.
func (tk *Tekton) startResolvers(ctx context.Context, config string) error {
	files, _ := filepath.Glob(filepath.Join(config, "resolvers", "*.yaml"))
	for _, f := range files {
		if strings.HasSuffix(f, "resolvers-deployment.yaml") || strings.HasSuffix(f, "resolvers-service.yaml") {
			continue
		}
		if err := apply(ctx, tk.c, f, nil); err != nil {
			return err
		}
	}
	port, err := proc.Port()
	if err != nil {
		return err
	}
	closed := fmt.Sprintf("http://127.0.0.1:%d", port)
	bin, err := proc.ToolPath(tk.cfg.Root, "tekton-resolvers")
	if err != nil {
		return err
	}
	p := proc.New("tekton-resolvers", bin)
	env, err := tk.processEnv(ctx, ResolversNamespace+"/tekton-pipelines-resolvers",
		"CONFIG_LEADERELECTION_NAME=config-leader-election-resolvers",
		"TEKTON_HUB_API="+closed, "ARTIFACT_HUB_API="+closed)
	if err != nil {
		return err
	}
	for i, e := range env {
		switch {
		case e == "SYSTEM_NAMESPACE="+Namespace:
			env[i] = "SYSTEM_NAMESPACE=" + ResolversNamespace
		case e == "METRICS_DOMAIN=tekton.dev/pipeline":
			env[i] = "METRICS_DOMAIN=tekton.dev/resolution"
		}
	}
	p.Cmd.Env = env
	tk.resolvers = p
	if err := p.Launch(); err != nil {
		return err
	}
	return awaitResolversLeading(ctx, p)
}

// awaitResolversLeading returns once every resolver controller leads its
// bucket. When one starts leading, Tekton's resolver framework enqueues
// every ResolutionRequest in the cluster to it, whatever its type
// (LeaderAwareFuncs lists labels.Everything(), not the resolver's
// selector): a request made before then can be taken by the wrong
// resolver, e.g. a cluster request failed by the hub resolver for missing
// its "version" parameter. A release pod starts long before runs reach it;
// here the tests create runs at once, so they wait for this.
func awaitResolversLeading(ctx context.Context, p *proc.Process) error {
	registered := regexp.MustCompile(`Registering (\d+) controllers`)
	deadline := time.Now().Add(time.Minute)
	for {
		out := p.Output()
		if m := registered.FindStringSubmatch(out); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n > 0 && strings.Count(out, "has started leading") >= n {
				return nil
			}
		}
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("tekton-resolvers exited: %v\n%s", err, out)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tekton-resolvers' controllers did not all lead within a minute:\n%s", out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ResolversOutput is what the resolvers logged so far (empty unless run).
func (tk *Tekton) ResolversOutput() string {
	if tk.resolvers == nil {
		return ""
	}
	return tk.resolvers.Output()
}

// ControllerOutput is what the controller logged so far.
func (tk *Tekton) ControllerOutput() string { return tk.controller.Output() }

// startWebhook runs Tekton's webhook with a serving certificate for
// loopback in its webhook-certs Secret (it keeps a valid one), creates its
// webhook configurations as the release does but selecting no object, and
// keeps a loopback twin of each in step with what it reconciles.
func (tk *Tekton) startWebhook(ctx context.Context, config string) error {
	caPEM, certPEM, keyPEM, err := servingCert()
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "webhook-certs"},
		Data: map[string][]byte{"ca-cert.pem": caPEM, "server-cert.pem": certPEM, "server-key.pem": keyPEM}}
	if err := tk.c.Create(ctx, secret); err != nil {
		return fmt.Errorf("tekton's webhook-certs: %w", err)
	}
	err = apply(ctx, tk.c, filepath.Join(config, "500-webhooks.yaml"), func(u *unstructured.Unstructured) {
		if u.GetKind() == "Secret" {
			return
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for i := range hooks {
			h := hooks[i].(map[string]any)
			h["objectSelector"] = map[string]any{"matchLabels": map[string]any{unreachable: "true"}}
		}
		_ = unstructured.SetNestedSlice(u.Object, hooks, "webhooks")
	})
	if err != nil {
		return err
	}
	port, err := proc.Port()
	if err != nil {
		return err
	}
	tk.webhookURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	bin, err := proc.ToolPath(tk.cfg.Root, "tekton-webhook")
	if err != nil {
		return err
	}
	p := proc.New("tekton-webhook", bin)
	if p.Cmd.Env, err = tk.processEnv(ctx, WebhookServiceAccount,
		"CONFIG_LEADERELECTION_NAME=config-leader-election-webhook",
		"WEBHOOK_PORT="+strconv.Itoa(port),
		"WEBHOOK_ADMISSION_CONTROLLER_NAME=webhook.pipeline.tekton.dev",
		"WEBHOOK_SERVICE_NAME=tekton-pipelines-webhook",
		"WEBHOOK_SECRET_NAME=webhook-certs"); err != nil {
		return err
	}
	tk.webhook = p
	if err := p.Launch(); err != nil {
		return err
	}
	if err := p.Await("serving", proc.DialOK(fmt.Sprintf("127.0.0.1:%d", port))); err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			tk.mirror(mctx)
			select {
			case <-mctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	tk.stopMirror = func() {
		cancel()
		<-done
	}
	return nil
}

// WebhookOutput is what Tekton's webhook logged so far.
func (tk *Tekton) WebhookOutput() string { return tk.webhook.Output() }

// unreachable labels nothing: the originals' object selector.
const unreachable = "tollgate.test/tekton-webhook-service-unreachable"

func twin(name string) string { return "tollgate-test." + name }

// releaseSelectors are the object selectors of the release's webhooks.
var releaseSelectors = map[string]*metav1.LabelSelector{
	"config.webhook.pipeline.tekton.dev": {MatchLabels: map[string]string{"app.kubernetes.io/part-of": "tekton-pipelines"}},
}

// mirror writes the loopback twin of each webhook configuration Tekton's
// webhook reconciled (one with a CA bundle and a path).
func (tk *Tekton) mirror(ctx context.Context) {
	c := tk.c
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if c.Get(ctx, client.ObjectKey{Name: "webhook.pipeline.tekton.dev"}, m) == nil {
		if hooks, ok := tk.twinHooks(m.Webhooks); ok {
			want := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: twin(m.Name)}}
			for _, h := range hooks {
				want.Webhooks = append(want.Webhooks, h.(admissionregistrationv1.MutatingWebhook))
			}
			upsert(ctx, c, want, &admissionregistrationv1.MutatingWebhookConfiguration{}, func(cur client.Object) {
				cur.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks = want.Webhooks
			})
		}
	}
	for _, name := range []string{"validation.webhook.pipeline.tekton.dev", "config.webhook.pipeline.tekton.dev"} {
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if c.Get(ctx, client.ObjectKey{Name: name}, v) != nil {
			continue
		}
		hooks, ok := tk.twinHooks(v.Webhooks)
		if !ok {
			continue
		}
		want := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: twin(name)}}
		for _, h := range hooks {
			want.Webhooks = append(want.Webhooks, h.(admissionregistrationv1.ValidatingWebhook))
		}
		upsert(ctx, c, want, &admissionregistrationv1.ValidatingWebhookConfiguration{}, func(cur client.Object) {
			cur.(*admissionregistrationv1.ValidatingWebhookConfiguration).Webhooks = want.Webhooks
		})
	}
}

// twinHooks: each reconciled webhook with the URL for the Service and the
// release's object selector; false until Tekton has reconciled them all.
func (tk *Tekton) twinHooks(hooks any) ([]any, bool) {
	var out []any
	convert := func(cc admissionregistrationv1.WebhookClientConfig, name string) (admissionregistrationv1.WebhookClientConfig, *metav1.LabelSelector, bool) {
		if len(cc.CABundle) == 0 || cc.Service == nil || cc.Service.Path == nil {
			return cc, nil, false
		}
		url := tk.webhookURL + *cc.Service.Path
		return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: cc.CABundle}, releaseSelectors[name], true
	}
	switch hs := hooks.(type) {
	case []admissionregistrationv1.MutatingWebhook:
		if len(hs) == 0 {
			return nil, false
		}
		for _, h := range hs {
			cc, sel, ok := convert(h.ClientConfig, h.Name)
			if !ok || len(h.Rules) == 0 {
				return nil, false
			}
			h = *h.DeepCopy()
			h.ClientConfig, h.ObjectSelector = cc, sel
			out = append(out, h)
		}
	case []admissionregistrationv1.ValidatingWebhook:
		if len(hs) == 0 {
			return nil, false
		}
		for _, h := range hs {
			cc, sel, ok := convert(h.ClientConfig, h.Name)
			if !ok || (len(h.Rules) == 0 && h.ObjectSelector == nil) {
				return nil, false
			}
			h = *h.DeepCopy()
			h.ClientConfig, h.ObjectSelector = cc, sel
			out = append(out, h)
		}
	}
	return out, true
}

// upsert creates want, or updates the object's webhooks when they differ.
func upsert(ctx context.Context, c client.Client, want, cur client.Object, set func(client.Object)) {
	if err := c.Get(ctx, client.ObjectKeyFromObject(want), cur); apierrors.IsNotFound(err) {
		_ = c.Create(ctx, want)
		return
	} else if err != nil {
		return
	}
	before := cur.DeepCopyObject()
	set(cur)
	if !equalJSON(before, cur) {
		_ = c.Update(ctx, cur)
	}
}

// servingCert is a CA and a serving certificate for 127.0.0.1 and the
// webhook Service's names, valid for a year (Tekton's webhook replaces one
// that ends within a day).
func servingCert() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tekton-webhook-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	svc := "tekton-pipelines-webhook"
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: svc + "." + Namespace + ".svc"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		DNSNames:    []string{svc, svc + "." + Namespace, svc + "." + Namespace + ".svc", svc + "." + Namespace + ".svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// equalJSON compares two objects by their JSON.
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
