package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// TestAttackImageGate plays a registry owner against the image gate,
// through the real API server: crafted attestation layers that crashed
// cosign must be denials with a message while the webhook keeps serving,
// and a lookup of an empty repository must not poison the cache for the
// same digest signed in another.
func TestAttackImageGate(t *testing.T) {
	reg := registry.Start(t)
	key := signing.NewKey(t)
	fulcio := signing.NewFulcio(t)
	const issuer, subject = "https://token.actions.githubusercontent.com", "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main"
	env := startGuarded(t,
		namespace(signerNS, nil),
		namespace("keyless", map[string]string{imagegate.LabelGate: imagegate.GateEnforce, "trust": "keyless"}),
		namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce, "trust": "key"}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
	)
	admin, ctx := env.Client, t.Context()
	applyImagePolicy(t, admin, imagePolicy("keyless", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"trust": "keyless"}}
		s.Authorities = []v1alpha1.Authority{{Name: "ci", Keyless: &v1alpha1.KeylessAuthority{
			Identities: []v1alpha1.Identity{{Issuer: issuer, Subject: subject}},
			TrustRoot:  v1alpha1.TrustRoot{FulcioRoots: string(fulcio.RootPEM), RekorPublicKey: string(fulcio.RekorPEM)},
		}}}
	}), metav1.ConditionTrue)
	applyImagePolicy(t, admin, imagePolicy("key", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"trust": "key"}}
	}), metav1.ConditionTrue)
	signed := func(t *testing.T, repo string) name.Digest {
		img := reg.PushRandom(t, repo, "v1")
		key.Sign(t, img, signing.Options{})
		key.Attest(t, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
		return img
	}

	t.Run("crafted attestation layers are denied and the webhook keeps serving", func(t *testing.T) {
		for i, c := range signing.CraftedAttestations() {
			img := reg.PushRandom(t, "crafted/"+strings.ToLower(strings.ReplaceAll(c.Name, " ", "-")), "v1")
			cert := fulcio.Issue(t, issuer, subject)
			cert.Sign(t, img, signing.Options{Cert: cert})
			signing.AttachCrafted(t, img, cert, slsa.PredicateV1, c)
			denied(t, admin.Create(ctx, podOf("keyless", "crafted-"+string(rune('a'+i)), img.String())), "[slsa]", c.Want)
			// Still serving: a good image is admitted right after.
			good := signed(t, "alive/"+string(rune('a'+i)))
			if err := admin.Create(ctx, podOf(gatedNS, "alive-"+string(rune('a'+i)), good.String())); err != nil {
				t.Fatalf("after %s the webhook no longer admits a good image: %v", c.Name, err)
			}
		}
		if m := metricsText(t, env); !strings.Contains(m, "tollgate_image_verification_panics_total 0") {
			t.Errorf("no verification should have panicked:\n%s", grepLines(m, "panics"))
		}
	})

	t.Run("an empty repository's failure does not poison the same digest elsewhere", func(t *testing.T) {
		victim := signed(t, "victim/app")
		attacker := reg.Copy(t, victim, "attacker/empty", "v1")
		for i := range 3 {
			denied(t, admin.Create(ctx, podOf(gatedNS, "poison-"+string(rune('a'+i)), attacker.String())), "no signature is attached")
			if err := admin.Create(ctx, podOf(gatedNS, "victim-"+string(rune('a'+i)), victim.String())); err != nil {
				t.Fatalf("the victim's signed image was denied after the attacker's lookup: %v", err)
			}
		}
	})
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAttackClaimedImage plays a tenant who can create runs against the
// signer and the gate (issue 10, finding 1): a compliant inline TaskRun in
// team-b writes team-a's repository and a digest of its choosing into
// IMAGE_URL/IMAGE_DIGEST. Under the recommended setup — the namespace's
// repositories declared in a ClusterRunPolicy, and an image policy that
// requires the producer (owner namespace, trusted pinned task) — the
// signer refuses the claim and the image is denied in an enforce
// namespace; a signer that signs any claim (as Tekton Chains does) is
// caught by the gate; the owner's honest build through its trusted task
// passes.
func TestAttackClaimedImage(t *testing.T) {
	dir := t.TempDir()
	reg := registry.Start(t)
	bundle := reg.Host + "/tasks/build:1@sha256:" + strings.Repeat("b", 64)
	env := startGuarded(t, append(signerFixtures(t, dir, map[string]string{
		"artifacts.taskrun.format":  "slsa/v2alpha4",
		"artifacts.taskrun.storage": "oci",
		"artifacts.oci.storage":     "oci",
		"builder.id":                "https://tollgate.dev/builders/test",
	}),
		namespace("team-b", nil), serviceAccount("team-b", "tekton-builder"),
		namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
		repositoryOwners("team-a-artifacts", ns, reg.Host+"/team-a/**"),
		repositoryOwners("team-b-artifacts", "team-b", reg.Host+"/team-b/**"),
	)...)
	admin, ctx := env.Client, t.Context()
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts")
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// The recommended image policy: team-a's images, signed by the builder,
	// with provenance showing team-a's run and a trusted, pinned task.
	applyImagePolicy(t, admin, &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "team-a-images"}, Spec: v1alpha1.ClusterImagePolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{imagegate.LabelGate: imagegate.GateEnforce}},
		Images:            []v1alpha1.ImagePattern{{Glob: reg.Host + "/team-a/**"}},
		Authorities:       []v1alpha1.Authority{{Name: "builder", Key: &v1alpha1.KeyAuthority{Data: string(pub)}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "slsa", PredicateType: slsa.PredicateV1, Producer: &v1alpha1.ProducerRequirement{
			Namespaces:   []string{ns},
			TrustedTasks: []string{"oci://" + reg.Host + "/tasks/build:*@sha256:*"},
		}}},
	}}, metav1.ConditionTrue)
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := signer.Options{Namespace: signerNS, Registry: store, RequireStamp: true, RequireOwnership: true, RetryDelay: 200 * time.Millisecond}
	outer := t // signers outlive the subtests that restart them
	stopSigner := startSigner(outer, env, opts)

	// finish completes a run as Tekton would, claiming img; src, when set,
	// is the refSource Tekton records for a resolved remote task.
	finish := func(t *testing.T, tr *pipelinev1.TaskRun, img name.Digest, src *pipelinev1.RefSource) {
		t.Helper()
		completeResolved(t, env, tekton, tr, src, imageResults(img)...)
	}
	inlineRun := func(t *testing.T, namespace, runName string) *pipelinev1.TaskRun {
		t.Helper()
		tr := taskRun(namespace, runName, "tekton-builder", safeStep("build"))
		if err := admin.Create(ctx, tr); err != nil {
			t.Fatalf("the tenant's compliant inline run should be admitted: %v", err)
		}
		return tr
	}
	// An image in team-a's repository nobody signed: an old build, or one
	// pushed by a compromised job. The attacker wants it to run in prod.
	victim := reg.PushRandom(t, "team-a/app", "old")

	t.Run("the signer refuses another team's repository", func(t *testing.T) {
		tr := inlineRun(t, "team-b", "claim-team-a")
		finish(t, tr, victim, nil)
		if got := waitAnnotation(t, admin, tr, signer.AnnotationSigned); got != "failed" {
			t.Fatalf("signed = %q, want failed; events %v", got, eventReasons(t, admin, tr))
		}
		events := strings.Join(eventReasons(t, admin, tr), "\n")
		for _, want := range []string{signer.ReasonArtifactNotOwned, "result IMAGE_DIGEST", "TaskRun team-b/claim-team-a", reg.Host + "/team-a/app", "team-b-artifacts"} {
			if !strings.Contains(events, want) {
				t.Errorf("the Event does not name %q:\n%s", want, events)
			}
		}
		denied(t, admin.Create(ctx, podOf(gatedNS, "claimed", victim.String())), "no signature is attached")
	})

	t.Run("an inline task of the owning namespace is not a trusted producer", func(t *testing.T) {
		img := reg.PushRandom(t, "team-a/app", "inline")
		tr := inlineRun(t, ns, "inline-build")
		finish(t, tr, img, nil)
		if got := waitAnnotation(t, admin, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events %v", got, eventReasons(t, admin, tr))
		}
		denied(t, admin.Create(ctx, podOf(gatedNS, "inline", img.String())), "[slsa]", "TaskRun/inline-build", "is an inline task: an inline task is never a trusted producer")
	})

	t.Run("a signer that signs any claim is caught by the gate", func(t *testing.T) {
		stopSigner()
		chainsLike := opts
		chainsLike.RequireOwnership = false
		stopSigner = startSigner(outer, env, chainsLike)
		defer func() { stopSigner(); stopSigner = startSigner(outer, env, opts) }()
		img := reg.PushRandom(t, "team-a/app", "chains")
		tr := inlineRun(t, "team-b", "claim-unguarded")
		finish(t, tr, img, nil)
		if got := waitAnnotation(t, admin, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events %v", got, eventReasons(t, admin, tr))
		}
		denied(t, admin.Create(ctx, podOf(gatedNS, "chains", img.String())), "[slsa]", `in namespace "team-b", which is not among the image's owners team-a`)
	})

	t.Run("the owner's build through its trusted task is admitted", func(t *testing.T) {
		img := reg.PushRandom(t, "team-a/app", "1.0")
		tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "honest-build"}, Spec: pipelinev1.TaskRunSpec{
			ServiceAccountName: "tekton-builder",
			TaskRef: &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "bundles", Params: pipelinev1.Params{
				{Name: "bundle", Value: *pipelinev1.NewStructuredValues(bundle)},
				{Name: "name", Value: *pipelinev1.NewStructuredValues("build")},
				{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")},
			}}},
		}}
		if err := admin.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		finish(t, tr, img, &pipelinev1.RefSource{URI: bundle, Digest: map[string]string{"sha256": strings.Repeat("b", 64)}, EntryPoint: "build"})
		if got := waitAnnotation(t, admin, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q; events %v", got, eventReasons(t, admin, tr))
		}
		if err := admin.Create(ctx, podOf(gatedNS, "honest", img.String())); err != nil {
			t.Fatalf("the owner's honest build was denied: %v", err)
		}
	})
}

// TestAttackForeignChild (issue 10, finding 5): a tenant's TaskRun labelled
// as another PipelineRun's child (tekton.dev/pipelineRun, pipelineTask)
// never enters that run's provenance; the run's real child, which Tekton
// names in status.childReferences and owns, does.
func TestAttackForeignChild(t *testing.T) {
	dir := t.TempDir()
	reg := registry.Start(t)
	env := startGuarded(t, signerFixtures(t, dir, map[string]string{
		"artifacts.pipelinerun.format":                 "slsa/v2alpha4",
		"artifacts.pipelinerun.storage":                "tekton",
		"artifacts.pipelinerun.enable-deep-inspection": "true",
		"artifacts.taskrun.storage":                    "",
		"artifacts.oci.storage":                        "",
		"builder.id":                                   "https://tollgate.dev/builders/test",
	})...)
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	startSigner(t, env, signer.Options{Namespace: signerNS, Registry: store, RequireStamp: true, RetryDelay: 200 * time.Millisecond})
	admin, ctx := env.Client, t.Context()
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts")
	honest := reg.PushRandom(t, "team-a/app", "honest")
	foreign := reg.PushRandom(t, "team-a/app", "foreign")
	pr := pipelineRun(ns, "release", "tekton-builder", map[string][]pipelinev1.Step{"build": {safeStep("build")}}, "build")
	if err := admin.Create(ctx, pr); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"tekton.dev/pipelineRun": pr.Name, "tekton.dev/pipelineTask": "build"}
	// The real child, created by Tekton: owned by the PipelineRun.
	child := taskRun(ns, "release-build", "tekton-builder", safeStep("build"))
	child.Labels = labels
	child.OwnerReferences = []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "PipelineRun", Name: pr.Name, UID: pr.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	if err := tekton.Create(ctx, child); err != nil {
		t.Fatal(err)
	}
	// The tenant's run, dressed as a child of the release.
	fake := taskRun(ns, "release-build-x", "tekton-builder", safeStep("build"))
	fake.Labels = labels
	if err := admin.Create(ctx, fake); err != nil {
		t.Fatal(err)
	}
	complete(t, env, tekton, child, imageResults(honest)...)
	complete(t, env, tekton, fake, imageResults(foreign)...)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &pipelinev1.PipelineRun{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(pr), cur); err != nil {
			return err
		}
		cur.Status.PipelineSpec = cur.Spec.PipelineSpec
		cur.Status.ChildReferences = []pipelinev1.ChildStatusReference{
			{TypeMeta: runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}, Name: child.Name, PipelineTaskName: "build"},
			// A reference to a TaskRun the PipelineRun does not own is ignored too.
			{TypeMeta: runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}, Name: fake.Name, PipelineTaskName: "build"},
		}
		return envtest.CompletePipelineRun(ctx, tekton, cur, true)
	}); err != nil {
		t.Fatal(err)
	}
	if got := waitAnnotation(t, admin, pr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events %v", got, eventReasons(t, admin, pr))
	}
	payload, err := base64.StdEncoding.DecodeString(pr.Annotations["chains.tekton.dev/payload-pipelinerun-"+string(pr.UID)])
	if err != nil {
		t.Fatal(err)
	}
	text := string(payload)
	if !strings.Contains(text, honest.DigestStr()[7:]) {
		t.Errorf("the real child's image is missing from the provenance:\n%s", text)
	}
	if strings.Contains(text, foreign.DigestStr()[7:]) || strings.Contains(text, fake.Name) {
		t.Errorf("the tenant's TaskRun entered the PipelineRun's provenance:\n%s", text)
	}
}

// TestAttackReservedAnnotations (issue 10, finding 7): reserved annotations
// cannot reach a run through the places Tekton copies annotations from
// (taskRunSpecs metadata, embedded task metadata, Task and Pipeline
// objects), not even written by the Tekton controller itself; and the
// signer's finalizer cannot be removed before the signer has decided.
func TestAttackReservedAnnotations(t *testing.T) {
	env := startGuarded(t)
	grantSignerRBAC(t, env)
	admin, ctx := env.Client, t.Context()
	alice := env.As(t, Alice)
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts", "system:serviceaccounts:tekton-pipelines")
	signerClient := env.As(t, envtest.Signer, "system:serviceaccounts", "system:serviceaccounts:tollgate-system")
	forged := map[string]string{"chains.tekton.dev/signed": "true"}

	t.Run("in a PipelineRun's taskRunSpecs metadata", func(t *testing.T) {
		pr := pipelineRun(ns, "trs-forged", "tekton-builder", map[string][]pipelinev1.Step{"build": {safeStep("build")}}, "build")
		pr.Spec.TaskRunSpecs = []pipelinev1.PipelineTaskRunSpec{{PipelineTaskName: "build", Metadata: &pipelinev1.PipelineTaskMetadata{Annotations: forged}}}
		denied(t, alice.Create(ctx, pr), "[specIntegrity]", "spec.taskRunSpecs[0].metadata.annotations", "annotation chains.tekton.dev/signed is reserved")
	})
	t.Run("in an embedded task's metadata", func(t *testing.T) {
		pr := pipelineRun(ns, "embedded-forged", "tekton-builder", map[string][]pipelinev1.Step{"build": {safeStep("build")}}, "build")
		pr.Spec.PipelineSpec.Tasks[0].TaskSpec.Metadata = pipelinev1.PipelineTaskMetadata{Annotations: map[string]string{"tollgate.dev/signer-next-attempt": "2099-01-01T00:00:00Z"}}
		denied(t, alice.Create(ctx, pr), "spec.pipelineSpec.tasks[0].taskSpec.metadata.annotations", "annotation tollgate.dev/signer-next-attempt is reserved")
	})
	t.Run("on a Task or a Pipeline", func(t *testing.T) {
		task := &pipelinev1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged", Annotations: forged}, Spec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{safeStep("build")}}}
		denied(t, admin.Create(ctx, task), "Task team-a/forged", "annotation chains.tekton.dev/signed is reserved")
		p := &pipelinev1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged"}, Spec: pipelinev1.PipelineSpec{Tasks: []pipelinev1.PipelineTask{{
			Name: "build", TaskSpec: &pipelinev1.EmbeddedTask{Metadata: pipelinev1.PipelineTaskMetadata{Annotations: forged}, TaskSpec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{safeStep("build")}}},
		}}}}
		denied(t, admin.Create(ctx, p), "Pipeline team-a/forged", "spec.tasks[0].taskSpec.metadata.annotations")
		clean := &pipelinev1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clean", Annotations: map[string]string{"team": "a"}}, Spec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{safeStep("build")}}}
		if err := admin.Create(ctx, clean); err != nil {
			t.Fatalf("a Task without reserved annotations was denied: %v", err)
		}
		clean.Annotations["tollgate.dev/spec-digest"] = "sha256:" + strings.Repeat("0", 64)
		denied(t, admin.Update(ctx, clean), "annotation tollgate.dev/spec-digest is reserved")
	})
	t.Run("copied onto a run by the Tekton controller", func(t *testing.T) {
		tr := taskRun(ns, "copied", "tekton-builder", safeStep("build"))
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		tr.Annotations["chains.tekton.dev/signed"] = "true"
		denied(t, tekton.Update(ctx, tr), "annotation chains.tekton.dev/signed is reserved", envtest.TektonController)
	})
	t.Run("the signer's finalizer stays until the signer has decided", func(t *testing.T) {
		tr := taskRun(ns, "kept", "tekton-builder", safeStep("build"))
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		tr.Finalizers = []string{signer.Finalizer}
		if err := signerClient.Update(ctx, tr); err != nil {
			t.Fatalf("the signer adds its finalizer: %v", err)
		}
		tr.Finalizers = nil
		denied(t, alice.Update(ctx, tr), "metadata.finalizers", "may be removed only by Tollgate's signer")
		if err := admin.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
			t.Fatal(err)
		}
		tr.Annotations[signer.AnnotationSigned] = "failed"
		if err := signerClient.Update(ctx, tr); err != nil {
			t.Fatalf("the signer records its verdict: %v", err)
		}
		tr.Finalizers = nil
		if err := alice.Update(ctx, tr); err != nil {
			t.Fatalf("once the signer has decided, the finalizer may go: %v", err)
		}
	})
}

// TestAttackExemptionLabels (issue 10, finding 9): at Pod creation an
// exemption by pipeline applies only to a Pod whose owners — its TaskRun,
// and that TaskRun's PipelineRun, checked by UID — run that pipeline; a
// standalone TaskRun labelled with the exempt pipeline's name is judged in
// full.
func TestAttackExemptionLabels(t *testing.T) {
	env := startGuarded(t, &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "release-exempt"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Exemptions: []v1alpha1.Exemption{{Pipelines: []string{"release"}, Checks: []v1alpha1.CheckName{v1alpha1.CheckPodSecurity}, Reason: "the release pipeline builds with a privileged daemon, ticket SEC-7"}},
	}})
	admin, ctx := env.Client, t.Context()
	alice := env.As(t, Alice)
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts", "system:serviceaccounts:tekton-pipelines")
	waitPolicy(t, admin, "release-exempt", metav1.ConditionTrue)
	owned := func(o client.Object, kind string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: kind, Name: o.GetName(), UID: o.GetUID(), Controller: ptr.To(true)}}
	}
	privilegedPod := func(name string, owner *pipelinev1.TaskRun, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, OwnerReferences: owned(owner, "TaskRun")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "step-docker-build", Image: "docker@sha256:" + strings.Repeat("d", 64),
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
				Resources:       limits("1", "1Gi"),
			}}},
		}
	}

	t.Run("a standalone TaskRun claiming the exempt pipeline in its labels", func(t *testing.T) {
		tr := taskRun(ns, "sneaky", "tekton-builder", safeStep("build"))
		tr.Labels = map[string]string{"tekton.dev/pipeline": "release", "tekton.dev/pipelineTask": "build"}
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		pod := privilegedPod("sneaky-pod", tr, map[string]string{"tekton.dev/taskRun": tr.Name, "tekton.dev/pipeline": "release", "tekton.dev/pipelineTask": "build"})
		denied(t, tekton.Create(ctx, pod), "[podSecurity]", "privileged")
	})

	t.Run("a real child of the exempt pipeline's run is exempted", func(t *testing.T) {
		p := &pipelinev1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "release"}, Spec: *pipelineRun(ns, "", "", map[string][]pipelinev1.Step{"build": {safeStep("build")}}, "build").Spec.PipelineSpec}
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		pr := &pipelinev1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "release-1"}, Spec: pipelinev1.PipelineRunSpec{
			PipelineRef:     &pipelinev1.PipelineRef{Name: "release"},
			TaskRunTemplate: pipelinev1.PipelineTaskRunTemplate{ServiceAccountName: "tekton-builder"},
		}}
		if err := alice.Create(ctx, pr); err != nil {
			t.Fatal(err)
		}
		child := taskRun(ns, "release-1-build", "tekton-builder", safeStep("build"))
		child.Labels = map[string]string{"tekton.dev/pipeline": "release", "tekton.dev/pipelineTask": "build", "tekton.dev/pipelineRun": pr.Name}
		child.OwnerReferences = owned(pr, "PipelineRun")
		if err := tekton.Create(ctx, child); err != nil {
			t.Fatal(err)
		}
		pod := privilegedPod("release-1-build-pod", child, map[string]string{"tekton.dev/taskRun": child.Name, "tekton.dev/pipeline": "release", "tekton.dev/pipelineTask": "build"})
		if err := tekton.Create(ctx, pod); err != nil {
			t.Fatalf("the exempt pipeline's own Pod was denied: %v", err)
		}
	})
}

// TestAttackForgedStamp (issue 10, finding 8): in a namespace the run guard
// does not guard, whoever may create runs and write their status can put a
// correct spec digest on a fabricated run (anyone can compute it). The
// stamp's MAC, keyed with a Secret only the webhook and the signer read,
// cannot be forged or copied from another namespace: the signer refuses
// such runs and signs the admitted one.
func TestAttackForgedStamp(t *testing.T) {
	dir := t.TempDir()
	reg := registry.Start(t)
	env := startGuarded(t, signerFixtures(t, dir, map[string]string{
		"artifacts.taskrun.format":  "slsa/v2alpha4",
		"artifacts.taskrun.storage": "tekton",
		"artifacts.oci.storage":     "",
	})...)
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	startSigner(t, env, signer.Options{Namespace: signerNS, Registry: store, RequireStamp: true, StampKeySecret: "tollgate-stamp-key", RetryDelay: 200 * time.Millisecond})
	admin, ctx := env.Client, t.Context()
	alice := env.As(t, Alice) // may create runs and write their status anywhere
	img := reg.PushRandom(t, "team-a/app", "1.0")
	finish := func(c client.Client, tr *pipelinev1.TaskRun) {
		t.Helper()
		completeResolved(t, env, c, tr, nil, imageResults(img)...)
	}

	// The admitted run, in a guarded namespace, finished by Tekton.
	good := taskRun(ns, "admitted", "tekton-builder", safeStep("build"))
	if err := alice.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	if good.Annotations[specdigest.MACAnnotation] == "" {
		t.Fatalf("the run guard stamped no MAC: %v", good.Annotations)
	}
	finish(env.As(t, envtest.TektonController, "system:serviceaccounts"), good)
	if got := waitAnnotation(t, admin, good, signer.AnnotationSigned); got != "true" {
		t.Fatalf("the admitted run: signed = %q; events %v", got, eventReasons(t, admin, good))
	}

	for name, mac := range map[string]string{
		"no MAC":                             "",
		"a forged MAC":                       "k1:" + strings.Repeat("ab", 32),
		"the MAC of the same spec in team-a": good.Annotations[specdigest.MACAnnotation],
	} {
		t.Run(name, func(t *testing.T) {
			tr := taskRun(signerNS, "", "tekton-builder", safeStep("build"))
			tr.GenerateName = "forged-"
			raw, err := json.Marshal(tr)
			if err != nil {
				t.Fatal(err)
			}
			digest, err := specdigest.OfObject(raw)
			if err != nil {
				t.Fatal(err)
			}
			tr.Annotations = map[string]string{specdigest.Annotation: digest}
			if mac != "" {
				tr.Annotations[specdigest.MACAnnotation] = mac
			}
			// Outside the run guard: nothing stops the create or the status write.
			if err := alice.Create(ctx, tr); err != nil {
				t.Fatal(err)
			}
			finish(alice, tr)
			if got := waitAnnotation(t, admin, tr, signer.AnnotationSigned); got != "failed" {
				t.Fatalf("signed = %q, want failed; events %v", got, eventReasons(t, admin, tr))
			}
			if ev := strings.Join(eventReasons(t, admin, tr), "\n"); !strings.Contains(ev, signer.ReasonBadStamp) {
				t.Errorf("no %s Event:\n%s", signer.ReasonBadStamp, ev)
			}
		})
	}
}

// TestAttackPodNetworkCaller (issue 10, finding 4): with --client-ca-file
// the admission port serves only callers with a client certificate the
// CA signed — the real kube-apiserver, started with an admission
// configuration that presents one — and metrics and probes are on their
// own port. A caller on the pod network without that certificate cannot
// send the webhook a forged AdmissionReview.
func TestAttackPodNetworkCaller(t *testing.T) {
	env := prepareGuardedWith(t, envtest.Options{Webhooks: true, AdmissionClientCert: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probeAddr := l.Addr().String()
	l.Close()
	env.RunWebhook(t, webhook.Config{Server: webhook.Options{Addr: env.WebhookAddr, ClientCAFile: env.ClientCAFile, ProbeAddr: probeAddr}},
		zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)))
	if err := controlplane.WaitReady(t.Context(), probeAddr, nil, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	alice := env.As(t, Alice)

	t.Run("the API server, presenting its client certificate, is served", func(t *testing.T) {
		s := safeStep("docker-build")
		s.SecurityContext.Privileged = ptr.To(true)
		denied(t, alice.Create(ctx, taskRun(ns, "privileged", "tekton-builder", s)), "[podSecurity]", "privileged")
		if err := alice.Create(ctx, taskRun(ns, "safe", "tekton-builder", safeStep("build"))); err != nil {
			t.Fatalf("a safe run was not admitted: %v", err)
		}
	})

	review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"tekton.dev","version":"v1","kind":"TaskRun"},"resource":{"group":"tekton.dev","version":"v1","resource":"taskruns"},"namespace":"team-a","operation":"CREATE","userInfo":{"username":"mallory"},"object":{}}}`)
	post := func(cert *tls.Certificate) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(env.CAData)
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Post("https://"+env.WebhookAddr+webhook.PathValidateRuns, "application/json", bytes.NewReader(review))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	t.Run("a caller without a client certificate is refused", func(t *testing.T) {
		if err := post(nil); err == nil {
			t.Fatal("a forged AdmissionReview without a client certificate was served")
		}
	})
	t.Run("a caller with a certificate of another CA is refused", func(t *testing.T) {
		cert := otherClientCert(t)
		if err := post(&cert); err == nil {
			t.Fatal("a client certificate of another CA was accepted")
		}
	})
	t.Run("metrics and probes are on their own port", func(t *testing.T) {
		resp, err := http.Get("http://" + probeAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "tollgate_admission_requests_total") {
			t.Errorf("no admission metrics on the probe port:\n%.300s", body)
		}
	})
}

// otherClientCert is a client certificate from a CA the webhook does not trust.
func otherClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mallory"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestAttackStepActionAtPodTime (issue 10, finding 10): a remote Task —
// or a cluster Task edited after admission — whose steps use StepActions
// by unpinned references is caught when Tekton creates its Pod, from the
// Task spec Tekton stored on the TaskRun while it resolved them.
func TestAttackStepActionAtPodTime(t *testing.T) {
	env := startGuarded(t)
	ctx := t.Context()
	alice := env.As(t, Alice)
	tekton := env.As(t, envtest.TektonController, "system:serviceaccounts", "system:serviceaccounts:tekton-pipelines")
	bundle := "registry.example/tasks/build@sha256:" + strings.Repeat("b", 64)
	run := func(t *testing.T, name string, stepRef *pipelinev1.Ref) error {
		t.Helper()
		tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: pipelinev1.TaskRunSpec{
			ServiceAccountName: "tekton-builder",
			TaskRef: &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "bundles", Params: pipelinev1.Params{
				{Name: "bundle", Value: *pipelinev1.NewStructuredValues(bundle)}, {Name: "name", Value: *pipelinev1.NewStructuredValues("build")}, {Name: "kind", Value: *pipelinev1.NewStructuredValues("task")},
			}}},
		}}
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatalf("a run of a pinned bundle was denied: %v", err)
		}
		// Tekton resolved the Task and stores its spec while it resolves the StepAction.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := &pipelinev1.TaskRun{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); err != nil {
				return err
			}
			cur.Status.TaskSpec = &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "fetch", Ref: stepRef}}}
			return tekton.Status().Update(ctx, cur)
		}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-pod", Labels: map[string]string{"tekton.dev/taskRun": tr.Name},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "TaskRun", Name: tr.Name, UID: tr.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "step-fetch", Image: "img@sha256:" + strings.Repeat("a", 64),
				SecurityContext: restricted(), Resources: limits("1", "1Gi")}}},
		}
		return tekton.Create(ctx, pod)
	}
	gitRef := func(revision string) *pipelinev1.Ref {
		return &pipelinev1.Ref{ResolverRef: pipelinev1.ResolverRef{Resolver: "git", Params: pipelinev1.Params{
			{Name: "url", Value: *pipelinev1.NewStructuredValues("https://github.com/acme/steps.git")},
			{Name: "pathInRepo", Value: *pipelinev1.NewStructuredValues("fetch.yaml")},
			{Name: "revision", Value: *pipelinev1.NewStructuredValues(revision)},
		}}}
	}
	t.Run("a StepAction by branch is denied at Pod creation", func(t *testing.T) {
		denied(t, run(t, "unpinned-step", gitRef("main")), "[pinnedRefs]", `step "fetch"`, "not a full commit SHA")
	})
	t.Run("a StepAction by commit is admitted", func(t *testing.T) {
		if err := run(t, "pinned-step", gitRef(strings.Repeat("c", 40))); err != nil {
			t.Fatalf("a pinned StepAction's Pod was denied: %v", err)
		}
	})
}
