package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/sigstore"
	"github.com/tollgate-dev/tollgate/testing/tekton"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

const signerNS = "tollgate-system"

func cosignCLI(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	return cosignCLIB(t, dir, env, args...)
}

func cosignCLIB(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	return runTool(t, "cosign", dir, env, args...)
}

// runTool runs bin/NAME (a tool `make tools` built) in dir with env added
// and a TUF root of its own, and returns its combined output.
func runTool(t testing.TB, name, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(envtest.Root(), "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/%s is not built: run `make tools`: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "TUF_ROOT="+filepath.Join(dir, "tuf"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startSigner runs the signing controller in-process as the signer's
// service account (so the run guard sees the identity it trusts). The
// returned function stops it at once (also called when the test ends).
func startSigner(t *testing.T, env *envtest.Env, opts signer.Options) (stop func()) {
	t.Helper()
	return startSignerB(t, env, opts)
}

func startSignerB(t testing.TB, env *envtest.Env, opts signer.Options) (stop func()) {
	t.Helper()
	grantSignerRBAC(t, env)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: envtest.Signer, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true))
	if _, bench := t.(*testing.B); bench {
		log = logr.Discard() // a benchmark measures signing, not logging
	}
	go func() {
		done <- signer.Run(ctx, signer.Config{RestConfig: cfg, Options: opts, ProbeAddr: "0", MetricsAddr: "0", Workers: 4}, log)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("signer: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// complete finishes a TaskRun as the Tekton controller, retrying on the
// conflicts the signer's finalizer patch can cause (Tekton retries too).
func complete(t *testing.T, env *envtest.Env, tekton client.Client, tr *pipelinev1.TaskRun, results ...pipelinev1.TaskRunResult) {
	t.Helper()
	completeResolved(t, env, tekton, tr, nil, results...)
}

// completeResolved is complete with the refSource Tekton records for a
// resolved remote task (nil: none). c writes the status: the Tekton
// controller, or whoever may write it where the run guard does not run.
func completeResolved(t *testing.T, env *envtest.Env, c client.Client, tr *pipelinev1.TaskRun, src *pipelinev1.RefSource, results ...pipelinev1.TaskRunResult) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &pipelinev1.TaskRun{}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tr), cur); err != nil {
			return err
		}
		if src != nil {
			cur.Status.Provenance = &pipelinev1.Provenance{RefSource: src}
		}
		return envtest.CompleteTaskRun(t.Context(), c, cur, true, results...)
	})
	if err != nil {
		t.Fatalf("completing %s/%s: %v", tr.Namespace, tr.Name, err)
	}
}

// imageResults are the IMAGE_URL/IMAGE_DIGEST results claiming img.
func imageResults(img name.Digest) []pipelinev1.TaskRunResult {
	return []pipelinev1.TaskRunResult{
		{Name: "IMAGE_URL", Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(img.Repository.Name())},
		{Name: "IMAGE_DIGEST", Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(img.DigestStr())},
	}
}

func waitAnnotation(t *testing.T, c client.Client, obj client.Object, key string) string {
	t.Helper()
	var v string
	if !waitFor(t.Context(), 30*time.Second, func() bool {
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false
		}
		v = obj.GetAnnotations()[key]
		return v != ""
	}) {
		t.Fatalf("%s/%s never got annotation %s (annotations %v)", obj.GetNamespace(), obj.GetName(), key, obj.GetAnnotations())
	}
	return v
}

func eventReasons(t *testing.T, c client.Client, obj client.Object) []string {
	t.Helper()
	var evs corev1.EventList
	if err := c.List(t.Context(), &evs, client.InNamespace(obj.GetNamespace())); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == obj.GetName() {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// TestSigner: a TaskRun admitted by the run guard and run by the real
// Tekton, whose step reports IMAGE_URL/IMAGE_DIGEST of an image in a
// loopback registry, is signed: chains.tekton.dev/signed "true", provenance
// on the run, and the real cosign verifies the image's signature and SLSA
// v1.0 attestation. Only the runs Tekton cannot be made to produce (10,000
// results, a run another controller manages) have hand-written statuses.
func TestSigner(t *testing.T) {
	dir := t.TempDir()
	env := startGuarded(t, append(signerFixtures(t, dir, map[string]string{
		"artifacts.taskrun.format":  "slsa/v2alpha4",
		"artifacts.taskrun.storage": "tekton,oci",
		"artifacts.oci.storage":     "oci",
		"builder.id":                "https://tollgate.dev/builders/test",
	}), serviceAccount(signerNS, "tekton-builder"))...)
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = startSigner(t, env, signer.Options{Namespace: signerNS, Registry: store, RetryDelay: 200 * time.Millisecond,
		SignManagedBy: []string{handWritten}})
	reg := registry.Start(t)
	alice := env.As(t, Alice)
	controller := env.As(t, envtest.TektonController, "system:serviceaccounts") // writes the statuses Tekton cannot be made to
	tk := tekton.Start(t, env, tekton.Options{FeatureFlags: map[string]string{"set-security-context": "true"}})
	ctx := t.Context()

	img := reg.PushRandom(t, "team-a/widget-api", "1.0")
	tr := imageTaskRun("build-and-sign", img)
	tr.Spec.TaskSpec.Steps[0].Script = "sleep 2\n" + tr.Spec.TaskSpec.Steps[0].Script
	tr.Spec.TaskSpec.Params = pipelinev1.ParamSpecs{{Name: "CHAINS-GIT_URL"}, {Name: "CHAINS-GIT_COMMIT"}}
	tr.Spec.Params = pipelinev1.Params{
		{Name: "CHAINS-GIT_URL", Value: *pipelinev1.NewStructuredValues("https://github.com/acme/widget-api")},
		{Name: "CHAINS-GIT_COMMIT", Value: *pipelinev1.NewStructuredValues(strings.Repeat("c", 40))},
	}
	if err := alice.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	// The signer protects the run before it finishes.
	if !waitFor(ctx, 20*time.Second, func() bool {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr)
		return len(tr.Finalizers) > 0
	}) {
		t.Fatalf("no finalizer on the running TaskRun: %v", tr.Finalizers)
	}
	if c := waitDone(t, env, tk, tr, 2*time.Minute); !c.IsTrue() {
		t.Fatalf("%s: %s: %s", tr.Name, c.Reason, c.Message)
	}
	if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
	}
	if len(tr.Finalizers) != 0 {
		t.Errorf("finalizers left after signing: %v", tr.Finalizers)
	}

	// The provenance on the run names the builder, the git source and the stamp.
	payload, err := base64.StdEncoding.DecodeString(tr.Annotations["chains.tekton.dev/payload-taskrun-"+string(tr.UID)])
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Predicate     struct {
			BuildDefinition struct {
				InternalParameters struct {
					Tollgate struct {
						SpecDigest string `json:"specDigest"`
					} `json:"tollgate"`
				} `json:"internalParameters"`
				ResolvedDependencies []struct {
					URI    string            `json:"uri"`
					Digest map[string]string `json:"digest"`
				} `json:"resolvedDependencies"`
			} `json:"buildDefinition"`
			RunDetails struct {
				Builder struct {
					ID string `json:"id"`
				} `json:"builder"`
			} `json:"runDetails"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatalf("payload: %v\n%s", err, payload)
	}
	if st.Predicate.RunDetails.Builder.ID != "https://tollgate.dev/builders/test" {
		t.Errorf("builder id = %q", st.Predicate.RunDetails.Builder.ID)
	}
	if st.Predicate.BuildDefinition.InternalParameters.Tollgate.SpecDigest != tr.Annotations[specdigest.Annotation] {
		t.Errorf("provenance spec digest %q, run stamped %q", st.Predicate.BuildDefinition.InternalParameters.Tollgate.SpecDigest, tr.Annotations[specdigest.Annotation])
	}
	foundGit := false
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		if d.URI == "git+https://github.com/acme/widget-api.git" && d.Digest["sha1"] == strings.Repeat("c", 40) {
			foundGit = true
		}
	}
	if !foundGit {
		t.Errorf("no git material in %s", payload)
	}

	t.Run("the image the signer signed passes the image gate", func(t *testing.T) {
		pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
		if err != nil {
			t.Fatal(err)
		}
		applyAll(t, env.Client,
			namespace("shop", map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "release-key"}, Data: map[string][]byte{"cosign.pub": pub}})
		applyImagePolicy(t, env.Client, imagePolicy("signer-built", reg.Host, nil), metav1.ConditionTrue)
		p := podOf("shop", "widget-api", img.Context().Tag("1.0").String())
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatalf("the signer's image was not admitted: %v", err)
		}
		if !strings.HasSuffix(p.Spec.Containers[0].Image, "@"+img.DigestStr()) {
			t.Errorf("not pinned: %q", p.Spec.Containers[0].Image)
		}
		other := reg.PushRandom(t, "team-a/not-built-here", "1.0")
		denied(t, env.Client.Create(ctx, podOf("shop", "stranger", other.Context().Tag("1.0").String())), "no signature is attached")
	})

	// tollgate provenance, given the run as the API server serves it, prints
	// the statement the controller stored.
	t.Run("tollgate provenance prints the stored statement", func(t *testing.T) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(pipelinev1.SchemeGroupVersion.WithKind("TaskRun"))
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), u); err != nil {
			t.Fatal(err)
		}
		runJSON, _ := u.MarshalJSON()
		file := filepath.Join(t.TempDir(), "run.json")
		os.WriteFile(file, runJSON, 0o644)
		bin := filepath.Join(t.TempDir(), "tollgate")
		build := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
		build.Dir = envtest.Root()
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building tollgate: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "provenance", "--set", "artifacts.taskrun.format=slsa/v2alpha4", "--set", "builder.id=https://tollgate.dev/builders/test", file).Output()
		if err != nil {
			t.Fatalf("tollgate provenance: %v", err)
		}
		var printed, stored any
		if err := json.Unmarshal(out, &printed); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(payload, &stored); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(stored, printed); diff != "" {
			t.Errorf("(-stored +printed):\n%s", diff)
		}
	})

	// The real cosign verifies what the signer stored in the registry.
	if out, err := cosignCLI(t, dir, nil, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
		t.Fatalf("cosign verify: %v\n%s", err, out)
	}
	if out, err := cosignCLI(t, dir, nil, "verify-attestation", "--key", "cosign.pub", "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
		t.Fatalf("cosign verify-attestation: %v\n%s", err, out)
	}

	t.Run("a PipelineRun that built an image is signed in SLSA v0.2 and cosign verifies it", func(t *testing.T) {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["artifacts.pipelinerun.format"] = "slsa/v1"
		cm.Data["artifacts.pipelinerun.storage"] = "tekton,oci"
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the signer's cache sees the new configuration
		img := reg.PushRandom(t, "team-a/widget-web", "2.0")
		pr := imagePipelineRun("pipeline-build", img)
		runToSuccess(t, env, tk, alice, pr)
		if got := waitAnnotation(t, env.Client, pr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, pr))
		}
		if out, err := cosignCLI(t, dir, nil, "verify-attestation", "--key", "cosign.pub", "--type", "slsaprovenance", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
			t.Fatalf("cosign verify-attestation --type slsaprovenance: %v\n%s", err, out)
		}
	})

	t.Run("a run whose registry push is denied ends failed, StorageFailed", func(t *testing.T) {
		img := reg.PushRandom(t, "denied/app", "1.0")
		reg.DenyPush("denied/")
		tr := imageTaskRun("push-denied", img)
		runToSuccess(t, env, tk, alice, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "failed" {
			t.Fatalf("signed = %q, want failed", got)
		}
		evs := strings.Join(eventReasons(t, env.Client, tr), "\n")
		if !strings.Contains(evs, signer.ReasonStorageFailed) || !strings.Contains(evs, "DENIED") || !strings.Contains(evs, "attempt 1 of 3; will retry in 200ms") || !strings.Contains(evs, "attempt 2 of 3; will retry in 400ms") {
			t.Errorf("events do not name the denied push and the retries: %s", evs)
		}
		if tr.Annotations[signer.AnnotationRetries] != strconv.Itoa(signer.MaxAttempts) {
			t.Errorf("retries = %q, want %d", tr.Annotations[signer.AnnotationRetries], signer.MaxAttempts)
		}
	})

	// Tekton leaves a run another controller manages alone, so its status
	// is written here, as that controller would.
	t.Run("a run managed by another controller is left alone", func(t *testing.T) {
		tr := taskRun(ns, "managed-elsewhere", "tekton-builder", safeStep("build"))
		tr.Spec.ManagedBy = ptr.To("kueue.x-k8s.io/multikueue")
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		complete(t, env, controller, tr)
		time.Sleep(2 * time.Second)
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
			t.Fatal(err)
		}
		if v, ok := tr.Annotations[signer.AnnotationSigned]; ok || len(tr.Finalizers) > 0 {
			t.Errorf("signed=%q finalizers=%v on a run another controller manages", v, tr.Finalizers)
		}
	})

	// failedWith runs tr with the real Tekton, or, when tr is managed by
	// handWritten, completes it with results as Tekton would, and wants the
	// signer to fail it for reason, naming detail.
	failedWith := func(t *testing.T, tr *pipelinev1.TaskRun, reason, detail string, results ...pipelinev1.TaskRunResult) {
		t.Helper()
		if tr.Spec.ManagedBy != nil && *tr.Spec.ManagedBy == handWritten {
			if err := alice.Create(ctx, tr); err != nil {
				t.Fatal(err)
			}
			complete(t, env, controller, tr, results...)
		} else {
			runToSuccess(t, env, tk, alice, tr)
		}
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "failed" {
			t.Fatalf("signed = %q, want failed", got)
		}
		evs := strings.Join(eventReasons(t, env.Client, tr), "\n")
		if !strings.Contains(evs, reason) || !strings.Contains(evs, detail) {
			t.Errorf("events do not say %s (%s):\n%s", reason, detail, evs)
		}
	}
	str := func(name, v string) pipelinev1.TaskRunResult {
		return pipelinev1.TaskRunResult{Name: name, Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(v)}
	}

	t.Run("a malformed image digest fails the run, MalformedHint", func(t *testing.T) {
		failedWith(t, resultsTaskRun("bad-digest", "IMAGE_URL", reg.Host+"/team-a/widget-api", "IMAGE_DIGEST", "sha256:NOTHEX"),
			signer.ReasonMalformedHint, "IMAGE_URL")
	})

	t.Run("a digest of an image that is not in the registry fails the run, StorageFailed", func(t *testing.T) {
		failedWith(t, resultsTaskRun("no-such-image", "IMAGE_URL", reg.Host+"/team-a/ghost", "IMAGE_DIGEST", "sha256:"+strings.Repeat("e", 64)),
			signer.ReasonStorageFailed, "not found in registry")
	})

	// Tekton cannot be made to report 10,000 results (a step's results
	// must fit its 4 KB termination message), so this status is written.
	t.Run("provenance too large for annotations fails the run, StorageFailed", func(t *testing.T) {
		var many []pipelinev1.TaskRunResult
		for i := 0; i < 10000; i++ {
			many = append(many, str(fmt.Sprintf("RESULT_%05d", i), strings.Repeat("v", 20)))
		}
		tr := taskRun(ns, "ten-thousand-results", "tekton-builder", safeStep("build"))
		tr.Spec.ManagedBy = ptr.To(handWritten)
		failedWith(t, tr, signer.ReasonStorageFailed, "does not fit", many...)
	})

	t.Run("a run with no type-hinted output and only oci storage ends failed, NoArtifacts", func(t *testing.T) {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["artifacts.taskrun.storage"] = "oci"
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the signer's cache sees the new configuration
		tr := taskRun(ns, "builds-nothing", "tekton-builder", safeStep("test"))
		runToSuccess(t, env, tk, alice, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "failed" {
			t.Fatalf("signed = %q, want failed", got)
		}
		if evs := strings.Join(eventReasons(t, env.Client, tr), "\n"); !strings.Contains(evs, signer.ReasonNoArtifacts) {
			t.Errorf("no NoArtifacts event: %s", evs)
		}
	})

	t.Run("pushes to a private registry use the run's pull secrets, and only them", func(t *testing.T) {
		private := registry.StartWithAuth(t, "builder", "pull-secret-password")
		dockerConfig := fmt.Sprintf(`{"auths":{"%s":{"username":"builder","password":"pull-secret-password"}}}`, private.Host)
		applyAll(t, env.Client,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockerConfig)}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "private-builder"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
		)
		img := private.PushRandom(t, "team-a/private-app", "1.0")
		tr := imageTaskRun("private-push", img)
		tr.Spec.ServiceAccountName = "private-builder"
		runToSuccess(t, env, tk, alice, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
		}
		// A run whose service account has no pull secret for it cannot push there.
		img2 := private.PushRandom(t, "team-a/private-app2", "1.0")
		failedWith(t, imageTaskRun("private-push-without-secret", img2), signer.ReasonStorageFailed, "UNAUTHORIZED")
	})

	t.Run("with the kms signer, cosign verifies with the KMS key", func(t *testing.T) {
		bin := t.TempDir()
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "sigstore-kms-tollgatetest"), "./testing/kmsplugin")
		build.Dir = envtest.Root()
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the KMS plugin: %v\n%s", err, out)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		ref := "tollgatetest://" + filepath.Join(bin, "key.pem")
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["artifacts.taskrun.storage"] = "oci"
		cm.Data["artifacts.taskrun.signer"] = "kms"
		cm.Data["artifacts.oci.signer"] = "kms"
		cm.Data["signers.kms.kmsref"] = ref
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		img := reg.PushRandom(t, "team-a/kms-signed", "1.0")
		tr := imageTaskRun("kms-signed", img)
		runToSuccess(t, env, tk, alice, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
		}
		penv := []string{"PATH=" + os.Getenv("PATH")}
		if out, err := cosignCLI(t, dir, penv, "verify", "--key", ref, "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
			t.Fatalf("cosign verify --key %s: %v\n%s", ref, err, out)
		}
		if out, err := cosignCLI(t, dir, penv, "verify-attestation", "--key", ref, "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
			t.Fatalf("cosign verify-attestation --key %s: %v\n%s", ref, err, out)
		}
		// And the cosign key does not verify it: it was not used.
		if out, err := cosignCLI(t, dir, nil, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err == nil {
			t.Fatalf("the x509 key verified a KMS-signed image:\n%s", out)
		}

		// A chains-config that does not parse keeps this one (KMS) in force,
		// and says so on the ConfigMap.
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["artifacts.taskrun.format"] = "no-such-format"
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		img = reg.PushRandom(t, "team-a/kms-signed", "1.1")
		tr = imageTaskRun("kms-signed-after-a-bad-config", img)
		runToSuccess(t, env, tk, alice, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
		}
		if out, err := cosignCLI(t, dir, penv, "verify", "--key", ref, "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
			t.Fatalf("the last good configuration (KMS) was not in force: cosign verify --key %s: %v\n%s", ref, err, out)
		}
		if evs := strings.Join(eventReasons(t, env.Client, cm), "\n"); !strings.Contains(evs, "InvalidConfig: ConfigMap "+signerNS+"/chains-config") || !strings.Contains(evs, "no-such-format") {
			t.Errorf("no InvalidConfig event naming the bad key: %s", evs)
		}
	})

	t.Run("with an awskms:// key in a real KMS API (local-kms), cosign verifies with the same reference", func(t *testing.T) {
		// The signer resolves awskms:// in-process (the provider is linked
		// in), through the AWS SDK's standard chain: endpoint, region and
		// credentials from the environment.
		kmsEnv := sigstore.StartLocalKMS(t)
		for _, kv := range kmsEnv {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		const ref = "awskms:///alias/tollgate-signer"
		if out, err := cosignCLI(t, t.TempDir(), kmsEnv, "generate-key-pair", "--kms", ref); err != nil {
			t.Fatalf("cosign generate-key-pair --kms %s: %v\n%s", ref, err, out)
		}
		reconfigure(t, env, map[string]string{
			"artifacts.taskrun.format":  "slsa/v2alpha4",
			"artifacts.taskrun.storage": "oci",
			"artifacts.taskrun.signer":  "kms",
			"artifacts.oci.signer":      "kms",
			"signers.kms.kmsref":        ref,
		})
		img, _ := buildSigned(t, env, tk, alice, reg, "awskms-signed")
		for _, args := range [][]string{
			{"verify", "--key", ref, "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()},
			{"verify-attestation", "--key", ref, "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()},
		} {
			if out, err := cosignCLI(t, dir, kmsEnv, args...); err != nil {
				t.Fatalf("cosign %s --key %s: %v\n%s", args[0], ref, err, out)
			}
		}
		// Another KMS key does not verify it.
		const other = "awskms:///alias/not-the-signer"
		if out, err := cosignCLI(t, t.TempDir(), kmsEnv, "generate-key-pair", "--kms", other); err != nil {
			t.Fatalf("cosign generate-key-pair --kms %s: %v\n%s", other, err, out)
		}
		if out, err := cosignCLI(t, dir, kmsEnv, "verify", "--key", other, "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err == nil {
			t.Fatalf("another KMS key verified the signature:\n%s", out)
		}
	})

	t.Run("in sigstore-bundle encoding, cosign v3 verifies the bundles the signer attaches as referrers", func(t *testing.T) {
		reconfigure(t, env, map[string]string{
			"artifacts.taskrun.format":    "slsa/v2alpha4",
			"artifacts.taskrun.storage":   "oci",
			"artifacts.oci.storage":       "oci",
			"storage.oci.encoding-format": "sigstore-bundle",
			"transparency.enabled":        "false",
		})
		img, _ := buildSigned(t, env, tk, alice, reg, "bundled")
		for _, args := range [][]string{
			{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()},
			{"verify-attestation", "--key", "cosign.pub", "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()},
		} {
			if out, err := cosign3(t, dir, args...); err != nil {
				t.Fatalf("cosign v3 %s: %v\n%s", args[0], err, out)
			}
		}
		// And Tollgate's own gate decision (tollgate verify) accepts them.
		if code, got, out := tollgateVerify(t, tollgateBinary(t), "--key", filepath.Join(dir, "cosign.pub"), img.String()); code != 0 || !got.Verified {
			t.Fatalf("tollgate verify: exit %d\n%s", code, out)
		}
		// One signature and one provenance bundle, attached once.
		idx, err := remote.Referrers(img)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := idx.IndexManifest(); err != nil || len(m.Manifests) != 2 {
			t.Fatalf("referrers: %v %+v", err, m)
		}
		// Nothing in the legacy layout: the bundles are what verified.
		if out, err := cosignCLI(t, dir, nil, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err == nil {
			t.Fatalf("cosign v2 found a legacy signature:\n%s", out)
		}
	})

	t.Run("a run whose spec does not match its stamp ends failed, SpecChanged", func(t *testing.T) {
		// Outside the guarded namespaces a stamp can be anything; the
		// signer still checks it on the run Tekton ran.
		tr := taskRun(signerNS, "forged-stamp", "tekton-builder", safeStep("test"))
		tr.Annotations = map[string]string{specdigest.Annotation: "sha256:" + strings.Repeat("0", 64)}
		runToSuccess(t, env, tk, env.Client, tr)
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "failed" {
			t.Fatalf("signed = %q, want failed", got)
		}
		if evs := strings.Join(eventReasons(t, env.Client, tr), "\n"); !strings.Contains(evs, signer.ReasonSpecChanged) {
			t.Errorf("no SpecChanged event: %s", evs)
		}
	})
}

// signerFixtures generates a cosign key pair in dir (cosign.key, cosign.pub)
// and returns the signer's namespace, its signing-secrets as `cosign
// generate-key-pair k8s://…` would write them, and a chains-config.
// reconfigure replaces the chains-config's data and gives the signer's
// cache a moment to see it.
func reconfigure(t *testing.T, env *envtest.Env, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data = data
	if err := env.Client.Update(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
}

// handWritten is the spec.managedBy of the runs whose statuses a test
// writes because Tekton cannot be made to produce them; the signers in
// these tests sign them (signer.Options.SignManagedBy).
const handWritten = "tollgate.test/hand-written"

// runToSuccess creates obj as c and waits until the real Tekton has run
// it to success.
func runToSuccess(t *testing.T, env *envtest.Env, tk *tekton.Tekton, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(t.Context(), obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
	if cond := waitDone(t, env, tk, obj, 2*time.Minute); !cond.IsTrue() {
		t.Fatalf("%s: %s: %s", obj.GetName(), cond.Reason, cond.Message)
	}
}

// buildSigned runs a build of a new image team-a/RUN as alice with the
// real Tekton, waits for the signer to sign it, and returns the image and
// the run. annotations (key and value pairs) are added while the run
// runs, as a user does with kubectl annotate: Tekton's defaulting strips
// chains.tekton.dev/* from a run at creation.
func buildSigned(t *testing.T, env *envtest.Env, tk *tekton.Tekton, alice client.Client, reg *registry.Registry, run string, annotations ...string) (name.Digest, *pipelinev1.TaskRun) {
	t.Helper()
	img := reg.PushRandom(t, "team-a/"+run, "1.0")
	tr := imageTaskRun(run, img)
	if len(annotations) > 0 {
		tr.Spec.TaskSpec.Steps[0].Script = "sleep 3\n" + tr.Spec.TaskSpec.Steps[0].Script
	}
	if err := alice.Create(t.Context(), tr); err != nil {
		t.Fatalf("creating %s: %v", run, err)
	}
	if len(annotations) > 0 {
		patch := client.MergeFrom(tr.DeepCopy())
		for i := 0; i+1 < len(annotations); i += 2 {
			metav1.SetMetaDataAnnotation(&tr.ObjectMeta, annotations[i], annotations[i+1])
		}
		if err := alice.Patch(t.Context(), tr, patch); err != nil {
			t.Fatalf("annotating %s: %v", run, err)
		}
	}
	if c := waitDone(t, env, tk, tr, 2*time.Minute); !c.IsTrue() {
		t.Fatalf("%s: %s: %s", run, c.Reason, c.Message)
	}
	if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
	}
	return img, tr
}

func signerFixtures(t testing.TB, dir string, chainsConfig map[string]string) []client.Object {
	t.Helper()
	if out, err := cosignCLIB(t, dir, []string{"COSIGN_PASSWORD=pw"}, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	key, err := os.ReadFile(filepath.Join(dir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	return []client.Object{
		namespace(signerNS, nil),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "signing-secrets"},
			Data: map[string][]byte{"cosign.key": key, "cosign.password": []byte("pw")}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "chains-config"}, Data: chainsConfig},
	}
}

// resultsTaskRun is a TaskRun as tekton-builder whose step writes the
// results given as name and value pairs (values without a single quote),
// for the real Tekton to run.
func resultsTaskRun(name string, results ...string) *pipelinev1.TaskRun {
	tr := taskRun(ns, name, "tekton-builder", safeStep("build"))
	var script strings.Builder
	for i := 0; i+1 < len(results); i += 2 {
		fmt.Fprintf(&script, "printf '%%s' '%s' > $(results.%s.path)\n", results[i+1], results[i])
		tr.Spec.TaskSpec.Results = append(tr.Spec.TaskSpec.Results, pipelinev1.TaskResult{Name: results[i]})
	}
	if script.Len() > 0 {
		tr.Spec.TaskSpec.Steps[0].Script = script.String()
	}
	return tr
}

// imageTaskRun is a TaskRun as tekton-builder whose step reports an image
// already in the registry as its IMAGE_URL and IMAGE_DIGEST results, for
// the real Tekton to run.
func imageTaskRun(name string, img name.Digest) *pipelinev1.TaskRun {
	return resultsTaskRun(name, "IMAGE_URL", img.Repository.Name(), "IMAGE_DIGEST", img.DigestStr())
}

// imagePipelineRun is a PipelineRun as tekton-builder of one task that
// reports img (imageTaskRun's step), with the pipeline results naming it.
func imagePipelineRun(name string, img name.Digest) *pipelinev1.PipelineRun {
	task := imageTaskRun(name, img).Spec.TaskSpec
	pr := pipelineRun(ns, name, "tekton-builder", nil)
	pr.Spec.PipelineSpec.Tasks = []pipelinev1.PipelineTask{{Name: "build", TaskSpec: &pipelinev1.EmbeddedTask{TaskSpec: *task}}}
	pr.Spec.PipelineSpec.Results = []pipelinev1.PipelineResult{
		{Name: "IMAGE_URL", Value: *pipelinev1.NewStructuredValues("$(tasks.build.results.IMAGE_URL)")},
		{Name: "IMAGE_DIGEST", Value: *pipelinev1.NewStructuredValues("$(tasks.build.results.IMAGE_DIGEST)")},
	}
	return pr
}

// grantSignerRBAC gives the signer's service account what the chart will:
// read and patch runs, read its configuration, service accounts and pull
// secrets, write Events.
func grantSignerRBAC(t testing.TB, env *envtest.Env) {
	t.Helper()
	applyAll(t, env.Client,
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "test-tollgate-signer"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"tekton.dev"}, Resources: []string{"taskruns", "pipelineruns"}, Verbs: []string{"get", "list", "watch", "patch", "update"}},
				{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"tollgate.dev"}, Resources: []string{"clusterrunpolicies"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-tollgate-signer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-tollgate-signer"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: signerNS, Name: "tollgate-signer"}},
		},
	)
}

// startSignerProcess builds and starts `tollgate signer` as a process, with
// a kubeconfig that acts as the signer's service account, its defaults but
// for the flags that fit a test (no leader election, no probe or metrics
// ports) and args; bin is the tollgate binary (tollgateBinary).
func startSignerProcess(t testing.TB, env *envtest.Env, bin string, args ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := writeKubeconfig(t, env, filepath.Join(dir, "kubeconfig"), envtest.Signer)
	grantSignerRBAC(t, env)
	logFile, err := os.Create(filepath.Join(dir, "signer.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("tollgate signer output:\n%s", b)
		}
	})
	cmd := exec.Command(bin, append([]string{"signer", "--kubeconfig", kubeconfig, "--namespace", signerNS, "--leader-elect=false",
		"--probe-address", "0", "--metrics-address", "0"}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// TestSignerRestart: a backlog of finished runs, the signer killed in the
// middle of it and started again: every run ends signed, and every image
// carries exactly one signature and one attestation.
func TestSignerRestart(t *testing.T) {
	dir := t.TempDir()
	reg := registry.Start(t)
	env := startGuarded(t, append(signerFixtures(t, dir, map[string]string{
		"artifacts.taskrun.format":  "slsa/v2alpha4",
		"artifacts.taskrun.storage": "tekton,oci",
	}), repositoryOwners("team-a-artifacts", ns, reg.Host+"/team-a/**"))...)
	tk := tekton.Start(t, env, tekton.Options{FeatureFlags: map[string]string{"set-security-context": "true"}})
	alice := env.As(t, Alice)
	ctx := t.Context()

	// A backlog of 20 builds run by the real Tekton while no signer runs.
	const n = 20
	var runs []*pipelinev1.TaskRun
	var images []string
	for i := 0; i < n; i++ {
		img := reg.PushRandom(t, fmt.Sprintf("team-a/app-%d", i), "1.0")
		tr := imageTaskRun(fmt.Sprintf("backlog-%d", i), img)
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, tr)
		images = append(images, img.String())
	}
	for _, tr := range runs {
		if c := waitDone(t, env, tk, tr, 2*time.Minute); !c.IsTrue() {
			t.Fatalf("%s: %s: %s", tr.Name, c.Reason, c.Message)
		}
	}
	signedCount := func() int {
		c := 0
		for _, tr := range runs {
			cur := &pipelinev1.TaskRun{}
			if env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur) == nil && cur.Annotations[signer.AnnotationSigned] == "true" {
				c++
			}
		}
		return c
	}
	store, _ := oci.New("", nil)
	opts := signer.Options{Namespace: signerNS, Registry: store, RetryDelay: 200 * time.Millisecond}
	// The first signer is the real `tollgate signer` process, killed with
	// SIGKILL in the middle of the backlog.
	proc := startSignerProcess(t, env, tollgateBinary(t), "--workers", "2")
	if !waitFor(ctx, 60*time.Second, func() bool { return signedCount() >= 3 }) {
		_ = proc.Process.Kill()
		t.Fatal("the first signer signed nothing")
	}
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	first := signedCount()
	t.Logf("the first signer signed %d of %d before it was killed", first, n)
	startSigner(t, env, opts)
	if !waitFor(ctx, 60*time.Second, func() bool { return signedCount() == n }) {
		t.Fatalf("after the restart, %d of %d runs are signed", signedCount(), n)
	}
	for _, ref := range images {
		d, err := name.NewDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, la := registry.Attached(t, d)
		if len(ls) != 1 || len(la) != 1 {
			t.Errorf("%s: %d signatures and %d attestations, want exactly one of each", ref, len(ls), len(la))
			for _, a := range la {
				p, _ := a.Payload()
				t.Logf("attestation: %s", p)
			}
		}
	}
}
