// Command demo is `make demo`: it starts `tollgate dev` and walks through the
// scenario of the article users follow today (Tekton Pipelines and Chains),
// step by step, printing each action and what came of it. It exits 0 only if
// every step behaved as shown, and stops everything it started.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/internal/controlplane"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/sigstore"
	"github.com/tollgate-dev/tollgate/testing/tekton"
	"github.com/tollgate-dev/tollgate/webhook"
)

type state struct {
	Kubeconfig string `json:"kubeconfig"`
	Registry   string `json:"registry"`
	CosignPub  string `json:"cosignPub"`
}

var failed bool

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// check prints a step's outcome and remembers a failure.
func check(ok bool, format string, args ...any) {
	if ok {
		say("   ✓ "+format, args...)
		return
	}
	failed = true
	say("   ✗ "+format, args...)
}

func main() {
	os.Exit(run())
}

// run is the walk-through, step by step in the order `make demo` prints
// it: it is one long function on purpose, so that it reads top to bottom
// as the scenario the README tells.
func run() int {
	root, _ := os.Getwd()
	tollgate := flag.String("tollgate", filepath.Join(root, "bin", "tollgate"), "the tollgate binary to run (make demo builds bin/tollgate)")
	explore := flag.Bool("explore", false, "start tollgate dev and Tekton, print how to reach them, and wait for Ctrl-C instead of walking through (make dev)")
	keyless := flag.Bool("keyless", false, "add the article's production setup as a last act: keyless signing with Fulcio, every signature in Rekor (make demo KEYLESS=1; needs make tools' Fulcio, Rekor and Trillian, and the machine's PostgreSQL)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "tollgate-demo-")
	if err != nil {
		say("demo: %v", err)
		return 1
	}
	defer os.RemoveAll(dir)

	say("== Starting the whole system on this machine: tollgate dev")
	dev := exec.Command(*tollgate, "dev", "--dir", dir, "--root", root)
	var devOut bytes.Buffer
	dev.Stdout, dev.Stderr = &devOut, &devOut
	if err := dev.Start(); err != nil {
		say("demo: starting %s dev (run 'make build'): %v", *tollgate, err)
		return 1
	}
	stopDev := func() {
		_ = dev.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- dev.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = dev.Process.Kill()
		}
	}
	defer stopDev()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	var st state
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "ready.json")); err == nil && json.Unmarshal(b, &st) == nil {
			break
		}
		if time.Now().After(deadline) || dev.ProcessState != nil {
			say("demo: tollgate dev did not become ready:\n%s", devOut.String())
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("   kube-apiserver, etcd, a registry on %s, the webhook and the signer are running", st.Registry)

	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		say("demo: %v", err)
		return 1
	}
	scheme, _ := webhook.Scheme()
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		say("demo: %v", err)
		return 1
	}
	say("\n== Starting Tekton Pipelines (its controller and webhook, built from the Go module proxy) and a node stand-in")
	crane, err := buildCrane(root, dir)
	if err != nil {
		say("demo: %v", err)
		return 1
	}
	tk, err := tekton.Run(ctx, tekton.Config{RestConfig: cfg, Root: root, Dir: filepath.Join(dir, "tekton"), Options: tekton.Options{
		FeatureFlags: map[string]string{"set-security-context": "true"},
		Node:         tekton.NodeOptions{Path: []string{crane}},
	}})
	if err != nil {
		say("demo: starting Tekton: %v", err)
		return 1
	}
	defer tk.Stop()
	say("   Tekton Pipelines %s runs the PipelineRuns; the node stand-in runs their Pods' steps on this machine (testing/tekton)", tk.Version)
	if *explore {
		say(`
Everything runs. In another shell:

  export KUBECONFIG=%s
  kubectl apply -f testing/samples/cluster
  kubectl create -f testing/samples/runs/03-privileged-step.yaml    # denied
  sed "s|value: IMAGE|value: %s/team-a/widget-api:1.0|" testing/samples/demo/pipelinerun.yaml | kubectl create -f -
  kubectl get pipelineruns,taskruns,pods -n team-a -w                # Tekton runs it; the signer signs it
  bin/cosign verify --key %s --insecure-ignore-tlog IMAGE@DIGEST

Steps run on this machine with its tools (git, tar, and crane in %s); Ctrl-C stops everything.`, st.Kubeconfig, st.Registry, st.CosignPub, crane)
		<-ctx.Done()
		return 0
	}

	say("\n== 1. A team's namespace, service account and Tasks (testing/samples/cluster)")
	if err := applyDir(ctx, admin, filepath.Join(root, "testing", "samples", "cluster")); err != nil {
		check(false, "applying the cluster state: %v", err)
		return 1
	}
	check(true, "namespace team-a, service account tekton-builder (it may read its registry secret, nothing more), the Task build")
	owners := &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Spec: v1alpha1.ClusterRunPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "team-a"}},
		Artifacts:         &v1alpha1.ArtifactsPolicy{Repositories: []string{st.Registry + "/team-a/**"}},
	}}
	if err := admin.Create(ctx, owners); err != nil {
		check(false, "creating ClusterRunPolicy team-a: %v", err)
		return 1
	}
	check(true, "ClusterRunPolicy team-a: the built-in checks, and team-a's runs own %s/team-a/** (the signer signs no other claim of theirs)", st.Registry)

	say("\n== 2. An unsafe PipelineRun: a privileged docker build step")
	err = createFile(ctx, admin, filepath.Join(root, "testing", "samples", "runs", "03-privileged-step.yaml"))
	check(err != nil && strings.Contains(err.Error(), "[podSecurity]") && strings.Contains(err.Error(), "privileged"),
		"denied before any Pod exists:\n%s", indent(errString(err)))

	say("\n== 3. The article's PipelineRun: a git checkout, then an image built and pushed (testing/samples/demo)")
	pr, err := articleRun(root, "", st.Registry+"/team-a/widget-api:1.0")
	if err != nil {
		check(false, "%v", err)
		return 1
	}
	err = admin.Create(ctx, pr)
	check(err == nil && pr.Annotations["tollgate.dev/spec-digest"] != "", "admitted and stamped tollgate.dev/spec-digest=%s", pr.Annotations["tollgate.dev/spec-digest"])
	if err != nil {
		say("   %v", err)
		return 1
	}

	say("\n== 4. Tekton runs it: its child TaskRuns and their Pods, each admitted by Tollgate")
	done := waitFinished(ctx, admin, pr)
	c := pr.Status.GetCondition(apis.ConditionSucceeded)
	check(done && c.IsTrue(), "Tekton %s ran the PipelineRun: %s", tk.Version, conditionText(c))
	if !done || !c.IsTrue() {
		say("%s", indent(tk.Node.Logs()))
		return 1
	}
	for _, ref := range pr.Status.ChildReferences {
		tr := &pipelinev1.TaskRun{}
		if admin.Get(ctx, client.ObjectKey{Namespace: pr.Namespace, Name: ref.Name}, tr) == nil {
			check(tr.Status.PodName != "", "TaskRun %s (Pod %s, restricted): %s", tr.Name, tr.Status.PodName, conditionText(tr.Status.GetCondition(apis.ConditionSucceeded)))
		}
	}
	img, err := pipelineImage(pr)
	check(err == nil, "the pipeline's results name the image it pushed: %s", img)
	if err != nil {
		say("   %v", err)
		return 1
	}

	say("\n== 5. The signer signs it: SLSA provenance and a cosign signature, stored next to the image")
	for kind, o := range map[string]client.Object{"TaskRun": buildTaskRun(pr), "PipelineRun": pr} {
		signed := waitSigned(ctx, admin, o, 60*time.Second)
		check(signed, "chains.tekton.dev/signed=true on the %s %s", kind, o.GetName())
	}

	say("\n== 6. cosign verifies what the signer stored (the article's commands)")
	cosign := filepath.Join(root, "bin", "cosign")
	for _, args := range [][]string{
		{"verify", "--key", st.CosignPub, "--insecure-ignore-tlog", img.String()},
		{"verify-attestation", "--key", st.CosignPub, "--insecure-ignore-tlog", "--type", "slsaprovenance1", img.String()},
	} {
		c := exec.Command(cosign, args...)
		c.Env = append(os.Environ(), "TUF_ROOT="+filepath.Join(dir, "tuf"))
		out, err := c.CombinedOutput()
		check(err == nil, "cosign %s: %s", args[0], firstLine(out, err))
	}

	say("\n== 7. A gated namespace admits only signed images with provenance from this builder")
	gate := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"tollgate.dev/gate": "enforce"}}}
	policy := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "built-here"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImagePattern{{Glob: st.Registry + "/team-a/**"}},
		Authorities: []v1alpha1.Authority{{Name: "tollgate-signer", Key: &v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyRef{Namespace: "tollgate-system", Name: "tollgate-signing-pub", Key: "cosign.pub"}}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "slsa", PredicateType: slsa.PredicateV1, Rego: builderRule,
			Producer: &v1alpha1.ProducerRequirement{Namespaces: []string{"team-a"}}}},
	}}
	for _, o := range []client.Object{gate, policy} {
		if err := admin.Create(ctx, o); err != nil {
			check(false, "creating %s: %v", o.GetName(), err)
			return 1
		}
	}
	check(waitReady(ctx, admin, policy.Name), "namespace shop labelled tollgate.dev/gate=enforce; ClusterImagePolicy built-here is Ready")
	tag := img.Context().Tag("1.0").String()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "widget-api"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: tag}}}}
	err = admin.Create(ctx, pod)
	check(err == nil && pod.Spec.Containers[0].Image == tag+"@"+img.DigestStr(), "the signed image is admitted and pinned: %s", pod.Spec.Containers[0].Image)
	if err != nil {
		say("   %v", err)
	}

	say("\n== 8. An image nobody signed")
	unsigned, err := pushImage(st.Registry, "team-a/sideloaded", "1.0")
	if err == nil {
		err = admin.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "sideloaded"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: unsigned.Context().Tag("1.0").String()}}}})
	}
	check(err != nil && strings.Contains(err.Error(), "no signature is attached"), "denied:\n%s", indent(errString(err)))

	say("\n== 9. Tollgate's own image: built here (make image), signed, with its SLSA provenance and SBOM")
	if !ownImage(ctx, admin, root, dir, st.Registry) {
		return 1
	}

	if *keyless {
		say("\n== 10. Keyless and transparency: the article's production setup (no private key anywhere, every signature in Rekor)")
		if !keylessAct(ctx, cfg, admin, root, dir, st.Registry, pr) {
			failed = true
		}
	}

	say("")
	if failed {
		say("demo: a step did not behave as shown (see ✗ above). tollgate dev's output:\n%s", devOut.String())
		return 1
	}
	say("demo: every step behaved as shown. Next: README.md (installing with Helm, writing policies).")
	return 0
}

// keylessAct starts Fulcio (trusting this API server as the OIDC issuer)
// and Rekor on Trillian on PostgreSQL, switches the running signer to the
// article's production chains-config keys, runs the article's PipelineRun
// again, verifies the result with cosign and rekor-cli as the article's
// readers would, and gates on the signer's identity instead of a key.
func keylessAct(ctx context.Context, cfg *rest.Config, admin client.Client, root, dir, registry string, first *pipelinev1.PipelineRun) bool {
	iss, err := sigstore.IssuerFor(ctx, cfg, admin)
	if err != nil {
		check(false, "the API server as an OIDC issuer: %v", err)
		return false
	}
	say("   starting PostgreSQL, Trillian, Rekor v1.5.4 and Fulcio v1.8.8 on loopback (bin/, built by make tools) ...")
	stack, err := sigstore.Run(root, iss)
	if err != nil {
		check(false, "the keyless servers: %v", err)
		return false
	}
	defer stack.Stop()
	check(true, "Fulcio at %s trusts this cluster's service-account issuer %s; Rekor at %s", stack.FulcioURL, iss.URL, stack.RekorURL)

	token, err := sigstore.TokenFor(ctx, admin, "tollgate-system", "tollgate-signer")
	if err != nil {
		check(false, "%v", err)
		return false
	}
	tokenFile := filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		check(false, "%v", err)
		return false
	}
	check(true, "the signer's service-account token, audience sigstore, in %s (the chart projects it at /var/run/sigstore/cosign/oidc-token)", tokenFile)

	keys := map[string]string{
		"signers.x509.fulcio.enabled":      "true",
		"signers.x509.fulcio.address":      stack.FulcioURL,
		"signers.x509.fulcio.issuer":       iss.URL,
		"signers.x509.fulcio.provider":     "filesystem",
		"signers.x509.identity.token.file": tokenFile,
		"transparency.enabled":             "true",
		"transparency.url":                 stack.RekorURL,
	}
	cm := &corev1.ConfigMap{}
	err = admin.Get(ctx, client.ObjectKey{Namespace: "tollgate-system", Name: "chains-config"}, cm)
	if err == nil {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		for k, v := range keys {
			cm.Data[k] = v
		}
		err = admin.Update(ctx, cm)
	}
	check(err == nil, "chains-config patched with the article's keys: signers.x509.fulcio.{enabled,address,issuer,provider}, transparency.{enabled,url} (provider filesystem: a token file; the article's spiffe needs a SPIRE agent, tested in TestSignerKeylessSPIFFE)")
	if err != nil {
		say("   %v", err)
		return false
	}

	pr, err := articleRun(root, "build-and-push-keyless", registry+"/team-a/widget-api:2.0")
	if err != nil {
		check(false, "%v", err)
		return false
	}
	if err := admin.Create(ctx, pr); err != nil {
		check(false, "creating the PipelineRun: %v", err)
		return false
	}
	done := waitFinished(ctx, admin, pr)
	c := pr.Status.GetCondition(apis.ConditionSucceeded)
	check(done && c.IsTrue(), "Tekton ran the PipelineRun %s again: %s", pr.Name, conditionText(c))
	img, err := pipelineImage(pr)
	if !done || !c.IsTrue() || err != nil {
		say("   %v", err)
		return false
	}
	for kind, o := range map[string]client.Object{"TaskRun": buildTaskRun(pr), "PipelineRun": pr} {
		signed := waitSigned(ctx, admin, o, 90*time.Second)
		check(signed, "chains.tekton.dev/signed=true on the %s %s, its provenance entry in chains.tekton.dev/transparency=%s", kind, o.GetName(), o.GetAnnotations()["chains.tekton.dev/transparency"])
		if !signed {
			return false
		}
	}

	trust := filepath.Join(dir, "keyless")
	if err := os.MkdirAll(trust, 0o700); err != nil {
		check(false, "%v", err)
		return false
	}
	fulcioPEM, rekorPub := filepath.Join(trust, "fulcio.pem"), filepath.Join(trust, "rekor.pub")
	if err := errors.Join(os.WriteFile(fulcioPEM, stack.FulcioRoots, 0o600), os.WriteFile(rekorPub, stack.RekorKey, 0o600)); err != nil {
		check(false, "%v", err)
		return false
	}
	identity := "https://kubernetes.io/namespaces/tollgate-system/serviceaccounts/tollgate-signer"
	for _, args := range [][]string{
		{"verify", "--certificate-identity", identity, "--certificate-oidc-issuer", iss.URL, "--rekor-url", stack.RekorURL, "--insecure-ignore-sct", img.String()},
		{"verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", identity, "--certificate-oidc-issuer", iss.URL, "--rekor-url", stack.RekorURL, "--insecure-ignore-sct", img.String()},
	} {
		cmd := exec.Command(filepath.Join(root, "bin", "cosign"), args...)
		cmd.Env = append(os.Environ(), "TUF_ROOT="+filepath.Join(dir, "tuf"), "SIGSTORE_ROOT_FILE="+fulcioPEM, "SIGSTORE_REKOR_PUBLIC_KEY="+rekorPub)
		out, err := cmd.CombinedOutput()
		check(err == nil, "cosign %s --certificate-identity %s (with the Rekor check): %s", args[0], identity, firstLine(out, err))
	}
	search := exec.Command(filepath.Join(root, "bin", "rekor-cli"), "search", "--rekor_server", stack.RekorURL, "--sha", img.DigestStr())
	search.Env = append(os.Environ(), "HOME="+dir)
	out, err := search.CombinedOutput()
	uuid := regexp.MustCompile(`(?m)^[0-9a-f]{64,80}$`).FindString(string(out))
	check(err == nil && uuid != "", "rekor-cli search --sha %s: the provenance entry %s", img.DigestStr(), cmp.Or(uuid, firstLine(out, err)))

	// The gate: the key-based policy gives way to the signer's identity.
	cmTrust := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "tollgate-system", Name: "sigstore-trust-root"},
		Data: map[string]string{images.FulcioRootsKey: string(stack.FulcioRoots), images.RekorPublicKeyKey: string(stack.RekorKey)}}
	policy := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "built-here-keyless"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images: []v1alpha1.ImagePattern{{Glob: registry + "/team-a/**"}},
		Authorities: []v1alpha1.Authority{{Name: "tollgate-signer", Keyless: &v1alpha1.KeylessAuthority{
			Identities: []v1alpha1.Identity{{Issuer: iss.URL, Subject: identity}},
			TrustRoot:  v1alpha1.TrustRoot{ConfigMapRef: &v1alpha1.SecretRef{Namespace: "tollgate-system", Name: "sigstore-trust-root"}},
		}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "slsa", PredicateType: slsa.PredicateV1, Rego: builderRule,
			Producer: &v1alpha1.ProducerRequirement{Namespaces: []string{"team-a"}}}},
	}}
	err = admin.Delete(ctx, &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "built-here"}})
	if err == nil {
		err = admin.Create(ctx, cmTrust)
	}
	if err == nil {
		err = admin.Create(ctx, policy)
	}
	if err != nil {
		check(false, "replacing the key policy: %v", err)
		return false
	}
	check(waitReady(ctx, admin, policy.Name), "ClusterImagePolicy built-here-keyless: a keyless authority (this identity, this issuer, the log required) replaces built-here's key")
	tag := img.Context().Tag("2.0").String()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "widget-api-keyless"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: tag}}}}
	err = admin.Create(ctx, pod)
	check(err == nil && pod.Spec.Containers[0].Image == tag+"@"+img.DigestStr(), "the keylessly signed image is admitted and pinned: %s", pod.Spec.Containers[0].Image)
	if err != nil {
		say("   %v", err)
	}
	old, err := pipelineImage(first)
	if err == nil {
		err = admin.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "widget-api-keyed"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: old.String()}}}})
	}
	check(err != nil && strings.Contains(err.Error(), "denied the request"), "the image signed with a key (act 5) is denied now that only the signer's identity is trusted:\n%s", indent(errString(err)))
	return true
}

const builderRule = `package demo.builder

import rego.v1

import data.tollgate.lib

deny contains sprintf("built by %q, not by this cluster's Tekton", [lib.builder_id(a.statement)]) if {
	some a in input.attestations
	lib.builder_id(a.statement) != "https://tollgate.dev/builders/dev"
}
`

// ownImage builds Tollgate's image as `make image` does (one platform, to
// keep the demo short), pushes it to the dev registry, signs and attests it
// with a release key, and shows the gate admitting it in a gated namespace
// under a policy that asks for this builder's provenance and an SBOM, and
// denying a rebuild nobody signed.
func ownImage(ctx context.Context, admin client.Client, root, dir, registry string) bool {
	keys := filepath.Join(dir, "release")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		check(false, "%v", err)
		return false
	}
	gen := exec.Command(filepath.Join(root, "bin", "cosign"), "generate-key-pair")
	gen.Dir, gen.Env = keys, append(os.Environ(), "COSIGN_PASSWORD=demo")
	if out, err := gen.CombinedOutput(); err != nil {
		check(false, "cosign generate-key-pair: %s", firstLine(out, err))
		return false
	}
	check(true, "a release key pair (cosign generate-key-pair)")
	commit, epoch := "unknown", "0"
	if out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%H %ct").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) == 2 {
			commit, epoch = f[0], f[1]
		}
	}
	say("   building (the first build compiles every package statically; later ones reuse Go's build cache)...")
	build := exec.CommandContext(ctx, "go", "run", "./build/image", "-platforms", "linux/amd64", "-out", filepath.Join(dir, "image"),
		"-version", "demo", "-commit", commit, "-epoch", epoch,
		"-push", registry+"/tollgate/tollgate:demo", "-key", filepath.Join(keys, "cosign.key"))
	build.Dir, build.Env = root, append(os.Environ(), "COSIGN_PASSWORD=demo")
	var stderr bytes.Buffer
	build.Stderr = &stderr
	out, err := build.Output()
	own, perr := name.NewDigest(strings.TrimSpace(string(out)))
	check(err == nil && perr == nil, "built, pushed, signed and attested: %s", strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		say("%s", indent(stderr.String()))
		return false
	}
	for _, typ := range []string{"", "slsaprovenance1", "cyclonedx"} {
		args := []string{"verify", "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog", own.String()}
		if typ != "" {
			args = append([]string{"verify-attestation", "--type", typ}, args[1:]...)
		}
		c := exec.Command(filepath.Join(root, "bin", "cosign"), args...)
		c.Env = append(os.Environ(), "TUF_ROOT="+filepath.Join(dir, "tuf"))
		out, err := c.CombinedOutput()
		check(err == nil, "cosign %s: %s", strings.Join(args[:len(args)-4], " "), firstLine(out, err))
	}
	pub, err := os.ReadFile(filepath.Join(keys, "cosign.pub"))
	if err != nil {
		check(false, "%v", err)
		return false
	}
	policy := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "tollgate-release"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImagePattern{{Glob: registry + "/tollgate/**"}},
		Authorities: []v1alpha1.Authority{{Name: "release-key", Key: &v1alpha1.KeyAuthority{Data: string(pub)}}},
		Attestations: []v1alpha1.AttestationRequirement{
			{Name: "slsa", PredicateType: slsa.PredicateV1, Rego: releaseBuilderRule},
			{Name: "sbom", PredicateType: "https://cyclonedx.org/bom"},
		},
	}}
	if err := admin.Create(ctx, policy); err != nil {
		check(false, "creating ClusterImagePolicy %s: %v", policy.Name, err)
		return false
	}
	check(waitReady(ctx, admin, policy.Name), "ClusterImagePolicy tollgate-release: the release key, provenance from make image, a CycloneDX SBOM")
	tag := own.Context().Tag("demo").String()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tollgate"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "tollgate", Image: tag}}}}
	err = admin.Create(ctx, pod)
	check(err == nil && pod.Spec.Containers[0].Image == tag+"@"+own.DigestStr(), "Tollgate's own image is admitted and pinned: %s", pod.Spec.Containers[0].Image)
	if err != nil {
		say("   %v", err)
	}
	patched, err := rebuild(own, "patched")
	if err == nil {
		err = admin.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tollgate-patched"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "tollgate", Image: patched.Context().Tag("patched").String()}}}})
	}
	check(err != nil && strings.Contains(err.Error(), "no signature is attached"), "a rebuild with one file added, pushed but not signed, is denied:\n%s", indent(errString(err)))
	return true
}

// rebuild pushes the image of img's first platform with one more file, as
// tag: same repository, another digest, no signature.
func rebuild(img name.Digest, tag string) (name.Digest, error) {
	idx, err := remote.Index(img)
	if err != nil {
		return name.Digest{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		return name.Digest{}, fmt.Errorf("the index of %s: %v", img, err)
	}
	base, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return name.Digest{}, err
	}
	extra, err := random.Layer(512, types.OCILayer)
	if err != nil {
		return name.Digest{}, err
	}
	patched, err := mutate.AppendLayers(base, extra)
	if err != nil {
		return name.Digest{}, err
	}
	ref := img.Context().Tag(tag)
	if err := remote.Write(ref, patched); err != nil {
		return name.Digest{}, err
	}
	h, err := patched.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return img.Context().Digest(h.String()), nil
}

func waitReady(ctx context.Context, admin client.Client, policy string) bool {
	return waitFor(ctx, 30*time.Second, func() bool {
		p := &v1alpha1.ClusterImagePolicy{}
		if admin.Get(ctx, client.ObjectKey{Name: policy}, p) != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == metav1.ConditionTrue && c.ObservedGeneration == p.Generation {
				return true
			}
		}
		return false
	})
}

const releaseBuilderRule = `package demo.release

import rego.v1

import data.tollgate.lib

deny contains sprintf("built by %q, not by make image", [lib.builder_id(a.statement)]) if {
	some a in input.attestations
	lib.builder_id(a.statement) != "https://tollgate.dev/builders/make-image"
}
`

// articleRun is the article's PipelineRun (testing/samples/demo) pushing
// image; name, when set, renames it.
func articleRun(root, name, image string) (*pipelinev1.PipelineRun, error) {
	pr := &pipelinev1.PipelineRun{}
	if err := decodeFile(filepath.Join(root, "testing", "samples", "demo", "pipelinerun.yaml"), pr); err != nil {
		return nil, err
	}
	if name != "" {
		pr.Name = name
	}
	for i, p := range pr.Spec.Params {
		if p.Name == "image-ref" {
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(image)
		}
	}
	return pr, nil
}

// waitFinished waits up to 3 minutes for Tekton to finish pr.
func waitFinished(ctx context.Context, admin client.Client, pr *pipelinev1.PipelineRun) bool {
	return waitFor(ctx, 3*time.Minute, func() bool {
		if admin.Get(ctx, client.ObjectKeyFromObject(pr), pr) != nil {
			return false
		}
		c := pr.Status.GetCondition(apis.ConditionSucceeded)
		return c != nil && c.Status != corev1.ConditionUnknown
	})
}

// buildTaskRun is the child TaskRun of pr that built and pushed the image.
func buildTaskRun(pr *pipelinev1.PipelineRun) *pipelinev1.TaskRun {
	build := &pipelinev1.TaskRun{}
	for _, ref := range pr.Status.ChildReferences {
		if ref.PipelineTaskName == "build-push" {
			build.Namespace, build.Name = pr.Namespace, ref.Name
		}
	}
	return build
}

// waitSigned waits up to d for the signer to mark o signed.
func waitSigned(ctx context.Context, admin client.Client, o client.Object, d time.Duration) bool {
	return waitFor(ctx, d, func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(o), o) == nil && o.GetAnnotations()["chains.tekton.dev/signed"] == "true"
	})
}

// buildCrane builds go-containerregistry's crane into dir/bin: the
// article's build step pushes with it.
func buildCrane(root, dir string) (string, error) {
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "crane"), "github.com/google/go-containerregistry/cmd/crane")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building crane: %v\n%s", err, out)
	}
	return bin, nil
}

// pipelineImage is the image a PipelineRun's results name.
func pipelineImage(pr *pipelinev1.PipelineRun) (name.Digest, error) {
	var url, digest string
	for _, r := range pr.Status.Results {
		switch r.Name {
		case "IMAGE_URL":
			url = r.Value.StringVal
		case "IMAGE_DIGEST":
			digest = r.Value.StringVal
		}
	}
	ref, err := name.ParseReference(url)
	if err != nil {
		return name.Digest{}, fmt.Errorf("IMAGE_URL %q: %w", url, err)
	}
	return name.NewDigest(ref.Context().String() + "@" + digest)
}

func conditionText(c *apis.Condition) string {
	if c == nil {
		return "not started"
	}
	return fmt.Sprintf("%s (%s)", c.Reason, c.Message)
}

func pushImage(registry, repo, tag string) (name.Digest, error) {
	img, err := random.Image(2048, 2)
	if err != nil {
		return name.Digest{}, err
	}
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registry, repo, tag))
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(ref, img); err != nil {
		return name.Digest{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(h.String()), nil
}

func applyDir(ctx context.Context, c client.Client, dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	// Namespaces first.
	for _, nsFirst := range []bool{true, false} {
		for _, f := range files {
			objs, err := readObjects(f)
			if err != nil {
				return err
			}
			for _, o := range objs {
				if (o.GetKind() == "Namespace") != nsFirst {
					continue
				}
				// As kubectl apply: the sample's ceiling ClusterRole replaces dev's empty one.
				if err := c.Patch(ctx, o, client.Apply, client.FieldOwner("tollgate-demo"), client.ForceOwnership); err != nil {
					return fmt.Errorf("%s: %s %s: %w", f, o.GetKind(), o.GetName(), err)
				}
			}
		}
	}
	return nil
}

func createFile(ctx context.Context, c client.Client, file string) error {
	objs, err := readObjects(file)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

func readObjects(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func decodeFile(file string, into any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	return utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(into)
}

func waitFor(ctx context.Context, d time.Duration, f func() bool) bool {
	return controlplane.Eventually(ctx, d, 200*time.Millisecond, f)
}

func errString(err error) string {
	if err == nil {
		return "(no error: it was admitted)"
	}
	return err.Error()
}

func indent(s string) string { return "     " + strings.ReplaceAll(s, "\n", "\n     ") }

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "The following checks were performed") || strings.HasPrefix(l, "Verification for") {
			return l
		}
	}
	if err != nil {
		return errors.Join(err, errors.New(s)).Error()
	}
	if i := strings.Index(s, "\n"); i > 0 {
		return s[:i]
	}
	return s
}
