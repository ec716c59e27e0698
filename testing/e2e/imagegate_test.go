package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

const (
	gatedNS = "prod"
	warnNS  = "staging"
)

// imagePolicy is a policy trusting the key in Secret tollgate-system/release-key
// for every repository of the registry, requiring SLSA v1 provenance.
func imagePolicy(name, host string, mutate func(*v1alpha1.ClusterImagePolicySpec)) *v1alpha1.ClusterImagePolicy {
	p := &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImagePattern{{Glob: host + "/**"}},
			Authorities: []v1alpha1.Authority{{Name: "release", Key: &v1alpha1.KeyAuthority{
				SecretRef: &v1alpha1.SecretKeyRef{Namespace: signerNS, Name: "release-key"},
			}}},
			Attestations: []v1alpha1.AttestationRequirement{{Name: "slsa", PredicateType: slsa.PredicateV1}},
		},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

// applyImagePolicy creates an image policy and waits for its Ready status.
func applyImagePolicy(t *testing.T, c client.Client, p *v1alpha1.ClusterImagePolicy, want metav1.ConditionStatus) *v1alpha1.ClusterImagePolicy {
	t.Helper()
	if err := c.Create(t.Context(), p); err != nil {
		t.Fatalf("creating ClusterImagePolicy %s: %v", p.Name, err)
	}
	return waitReady(t, c, p, want)
}

func podOf(ns, name string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for i, img := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return p
}

func workloadTemplate(imgs ...string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: podOf("", "", imgs...).Spec}
}

func TestImageGate(t *testing.T) {
	reg := registry.Start(t)
	key := signing.NewKey(t)
	env := startGuarded(t,
		namespace(signerNS, nil),
		namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce, "team": "shop"}),
		namespace(warnNS, map[string]string{imagegate.LabelGate: imagegate.GateWarn, "team": "shop"}),
		namespace("cli", map[string]string{imagegate.LabelGate: imagegate.GateEnforce, "team": "cli"}),
		namespace("nobody", map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
		namespace("ungated", nil),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "ops-admin"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "ops@example.com"}},
		},
	)
	admin := env.Client
	ctx := t.Context()
	applyImagePolicy(t, admin, imagePolicy("release", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}
	}), metav1.ConditionTrue)

	good := signing.SLSAv1("https://tollgate.dev/builders/test")
	signed := func(t *testing.T, repo string) name.Digest {
		img := reg.PushRandom(t, repo, "v1")
		key.Sign(t, img, signing.Options{})
		key.Attest(t, img, slsa.PredicateV1, good, signing.Options{})
		return img
	}
	tagOf := func(img name.Digest) string { return img.Context().Tag("v1").String() }

	t.Run("a signed image with provenance is admitted and pinned to the verified digest", func(t *testing.T) {
		img := signed(t, "shop/web")
		p := podOf(gatedNS, "web", tagOf(img))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if want := tagOf(img) + "@" + img.DigestStr(); p.Spec.Containers[0].Image != want {
			t.Fatalf("image %q, want it pinned to %q", p.Spec.Containers[0].Image, want)
		}
	})

	t.Run("an unsigned image is denied naming the container, image, rule and fix", func(t *testing.T) {
		img := reg.PushRandom(t, "shop/unsigned", "v1")
		denied(t, admin.Create(ctx, podOf(gatedNS, "unsigned", tagOf(img))),
			`Pod prod/unsigned`, `[signature] container "c0" (spec.containers[0].image)`, img.DigestStr(),
			"no signature is attached (authorities: release)", "fix: sign the image", `(policy "release")`,
			"[slsa]", "no attestation of type https://slsa.dev/provenance/v1")
	})

	t.Run("a signature without the required provenance is denied", func(t *testing.T) {
		img := reg.PushRandom(t, "shop/sig-only", "v1")
		key.Sign(t, img, signing.Options{})
		err := admin.Create(ctx, podOf(gatedNS, "sig-only", tagOf(img)))
		denied(t, err, "[slsa]", "no attestation of type https://slsa.dev/provenance/v1 is attached")
		if strings.Contains(err.Error(), "[signature]") {
			t.Errorf("the signature verified and must not be reported: %v", err)
		}
	})

	t.Run("init and ephemeral containers are checked", func(t *testing.T) {
		ok := signed(t, "shop/app")
		bad := reg.PushRandom(t, "shop/debug", "v1")
		p := podOf(gatedNS, "with-init", tagOf(ok))
		p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: tagOf(bad)}}
		denied(t, admin.Create(ctx, p), `container "setup" (spec.initContainers[0].image)`)

		p = podOf(gatedNS, "debuggable", tagOf(ok))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: tagOf(bad)}}}
		denied(t, admin.SubResource("ephemeralcontainers").Update(ctx, p), `container "debugger" (spec.ephemeralContainers[0].image)`, "no signature is attached")
		p.Spec.EphemeralContainers[0].Image = tagOf(ok)
		if err := admin.SubResource("ephemeralcontainers").Update(ctx, p); err != nil {
			t.Fatalf("a signed ephemeral container: %v", err)
		}
		if got := p.Spec.EphemeralContainers[0].Image; got != tagOf(ok)+"@"+ok.DigestStr() {
			t.Errorf("ephemeral container image %q is not pinned", got)
		}
	})

	t.Run("every workload kind is gated and pinned in its template", func(t *testing.T) {
		ok := signed(t, "shop/worker")
		bad := reg.PushRandom(t, "shop/rogue", "v1")
		pinned := tagOf(ok) + "@" + ok.DigestStr()
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
		build := map[string]func(img string) (client.Object, func() string){
			"Deployment": func(img string) (client.Object, func() string) {
				o := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "d"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: workloadTemplate(img)}}
				return o, func() string { return o.Spec.Template.Spec.Containers[0].Image }
			},
			"ReplicaSet": func(img string) (client.Object, func() string) {
				o := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "rs"}, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: workloadTemplate(img)}}
				return o, func() string { return o.Spec.Template.Spec.Containers[0].Image }
			},
			"StatefulSet": func(img string) (client.Object, func() string) {
				o := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "ss"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: workloadTemplate(img)}}
				return o, func() string { return o.Spec.Template.Spec.Containers[0].Image }
			},
			"DaemonSet": func(img string) (client.Object, func() string) {
				o := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "ds"}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: workloadTemplate(img)}}
				return o, func() string { return o.Spec.Template.Spec.Containers[0].Image }
			},
			"Job": func(img string) (client.Object, func() string) {
				tpl := workloadTemplate(img)
				tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
				o := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "job"}, Spec: batchv1.JobSpec{Template: tpl}}
				return o, func() string { return o.Spec.Template.Spec.Containers[0].Image }
			},
			"CronJob": func(img string) (client.Object, func() string) {
				tpl := workloadTemplate(img)
				tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
				o := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "cron"}, Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tpl}}}}
				return o, func() string { return o.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image }
			},
		}
		for kind, b := range build {
			o, _ := b(tagOf(bad))
			denied(t, admin.Create(ctx, o), kind+" prod/", "no signature is attached")
			o, image := b(tagOf(ok))
			if err := admin.Create(ctx, o); err != nil {
				t.Fatalf("%s with a signed image: %v", kind, err)
			}
			if image() != pinned {
				t.Errorf("%s image %q, want %q", kind, image(), pinned)
			}
		}
	})

	t.Run("a pod claiming an admitted owner is checked all the same", func(t *testing.T) {
		// Connaisseur once approved children of approved parents by their
		// ownerReferences; the gate judges every Pod by its own images.
		ok := signed(t, "shop/owned")
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: gatedNS, Name: "owner"}, Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: workloadTemplate(tagOf(ok))}}
		if err := admin.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
		bad := reg.PushRandom(t, "shop/orphan", "v1")
		p := podOf(gatedNS, "owned", tagOf(bad))
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
		denied(t, admin.Create(ctx, p), "no signature is attached")
	})

	t.Run("a tag re-pointed after admission does not change what runs", func(t *testing.T) {
		img := signed(t, "shop/moving")
		p := podOf(gatedNS, "moving", tagOf(img))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		// Someone pushes an unsigned image to the same tag.
		evil := reg.PushRandom(t, "shop/moving", "v1")
		if evil.DigestStr() == img.DigestStr() {
			t.Fatal("the re-pointed tag names the same digest")
		}
		got := &corev1.Pod{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(got.Spec.Containers[0].Image, "@"+img.DigestStr()) {
			t.Fatalf("the admitted pod pulls %q, not the verified digest", got.Spec.Containers[0].Image)
		}
		denied(t, admin.Create(ctx, podOf(gatedNS, "moving-2", tagOf(img))), evil.DigestStr(), "no signature is attached")
	})

	t.Run("a new image on UPDATE is checked", func(t *testing.T) {
		// Updating an existing pod's image skips nothing: a new image on UPDATE is checked.
		img := signed(t, "shop/update")
		p := podOf(gatedNS, "update", tagOf(img))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		other := reg.PushRandom(t, "shop/update-other", "v1")
		p.Spec.Containers[0].Image = tagOf(other)
		denied(t, admin.Update(ctx, p), "no signature is attached")
	})

	t.Run("a warn namespace admits with warnings", func(t *testing.T) {
		img := reg.PushRandom(t, "shop/warned", "v1")
		var w recordedWarnings
		warned := env.AsWithWarnings(t, "ops@example.com", &w)
		p := podOf(warnNS, "warned", tagOf(img))
		if err := warned.Create(ctx, p); err != nil {
			t.Fatalf("warn namespace denied: %v", err)
		}
		if !w.contains("tollgate: [signature]") || !w.contains("no signature is attached") {
			t.Fatalf("warnings: %q", w.all())
		}
		if !strings.HasSuffix(p.Spec.Containers[0].Image, "@"+img.DigestStr()) {
			t.Errorf("a warned image is pinned too: %q", p.Spec.Containers[0].Image)
		}
	})

	t.Run("namespaces that are not gated are not reviewed", func(t *testing.T) {
		img := reg.PushRandom(t, "shop/anything", "v1")
		p := podOf("ungated", "free", tagOf(img))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if p.Spec.Containers[0].Image != tagOf(img) {
			t.Errorf("an ungated pod was mutated: %q", p.Spec.Containers[0].Image)
		}
	})

	t.Run("images no policy covers are denied", func(t *testing.T) {
		denied(t, admin.Create(ctx, podOf(gatedNS, "elsewhere", "registry.example.com/other/app:v1")),
			`[unmatched]`, "registry.example.com/other/app:v1", "matches no image glob of the policies selecting namespace prod")
	})

	t.Run("an uppercase or malformed digest is denied", func(t *testing.T) {
		img := signed(t, "shop/digests")
		upper := img.Context().String() + "@sha256:" + strings.ToUpper(img.DigestStr()[7:])
		denied(t, admin.Create(ctx, podOf(gatedNS, "upper", upper)), "[image]", "is not sha256: followed by 64 lowercase hex digits")
		denied(t, admin.Create(ctx, podOf(gatedNS, "short", img.Context().String()+"@sha256:abc")), "64 lowercase hex")
	})

	t.Run("a registry that cannot be reached fails closed, naming it", func(t *testing.T) {
		denied(t, admin.Create(ctx, podOf("prod", "down", "127.0.0.1:1/shop/app:v1")), "[unmatched]")
		p := imagePolicy("loopback-down", "127.0.0.1:1", func(s *v1alpha1.ClusterImagePolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}
		})
		applyImagePolicy(t, admin, p, metav1.ConditionTrue)
		t.Cleanup(func() { admin.Delete(ctx, p) })
		denied(t, admin.Create(ctx, podOf(gatedNS, "down", "127.0.0.1:1/shop/app:v1")), "127.0.0.1:1", "resolving the tag", "connection refused")
	})

	t.Run("a gated namespace no policy selects denies", func(t *testing.T) {
		denied(t, admin.Create(ctx, podOf("nobody", "p", "busybox")), "[noPolicy]", "no ClusterImagePolicy selects namespace nobody")
	})

	t.Run("a policy whose key Secret is missing is not ready and says why", func(t *testing.T) {
		p := imagePolicy("missing-key", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"nothing": "here"}}
			s.Authorities[0].Key.SecretRef.Name = "no-such-key"
		})
		got := applyImagePolicy(t, admin, p, metav1.ConditionFalse)
		cond := meta.FindStatusCondition(got.Status.Conditions, imagegate.ConditionReady)
		if !strings.Contains(cond.Message, "no-such-key") || !strings.Contains(cond.Message, "not in force") {
			t.Errorf("condition: %s", cond.Message)
		}
	})

	t.Run("the API server refuses malformed policies", func(t *testing.T) {
		for name, mutate := range map[string]func(*v1alpha1.ClusterImagePolicySpec){
			"key and keyless": func(s *v1alpha1.ClusterImagePolicySpec) {
				s.Authorities[0].Keyless = &v1alpha1.KeylessAuthority{Identities: []v1alpha1.Identity{{Issuer: "i", Subject: "s"}}, TrustRoot: v1alpha1.TrustRoot{FulcioRoots: "x", RekorPublicKey: "y"}}
			},
			"two key sources": func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities[0].Key.Data = "pem" },
			"issuer and issuerRegExp": func(s *v1alpha1.ClusterImagePolicySpec) {
				s.Authorities[0] = v1alpha1.Authority{Name: "ci", Keyless: &v1alpha1.KeylessAuthority{
					Identities: []v1alpha1.Identity{{Issuer: "i", IssuerRegExp: "i.*", Subject: "s"}}, TrustRoot: v1alpha1.TrustRoot{FulcioRoots: "x", RekorPublicKey: "y"}}}
			},
			"no attestations":   func(s *v1alpha1.ClusterImagePolicySpec) { s.Attestations = nil },
			"a glob with a tag": func(s *v1alpha1.ClusterImagePolicySpec) { s.Images[0].Glob = "registry.example.com/app@sha256" },
		} {
			p := imagePolicy("bad-"+strings.ReplaceAll(name, " ", "-"), reg.Host, mutate)
			if err := admin.Create(ctx, p); err == nil || !apierrors.IsInvalid(err) {
				t.Errorf("%s: want the API server to refuse it, got %v", name, err)
			}
		}
	})

	t.Run("the cache's counters are on /metrics", func(t *testing.T) {
		body := metricsText(t, env)
		for _, m := range []string{"tollgate_image_cache_hits_total", "tollgate_image_verifications_total", "tollgate_image_verification_errors_total", "tollgate_image_cache_entries", `tollgate_admission_requests_total{outcome="denied",path="/mutate-workloads"}`} {
			if !strings.Contains(body, m) {
				t.Errorf("/metrics has no %s", m)
			}
		}
		if strings.Contains(string(body), "tollgate_image_verifications_total 0\n") {
			t.Error("no verification was counted")
		}
	})

	t.Run("the cosign CLI's signature and attestation pass the gate", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := cosignCLI(t, dir, []string{"COSIGN_PASSWORD="}, "generate-key-pair"); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
		}
		pub, _ := os.ReadFile(filepath.Join(dir, "cosign.pub"))
		if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "cli-key"}, Data: map[string][]byte{"cosign.pub": pub}}); err != nil {
			t.Fatal(err)
		}
		applyImagePolicy(t, admin, imagePolicy("cli", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "cli"}}
			s.Authorities[0].Key.SecretRef.Name = "cli-key"
			s.Attestations[0].PredicateType = slsa.PredicateV02
		}), metav1.ConditionTrue)
		img := reg.PushRandom(t, "cli/app", "v1")
		pred := filepath.Join(dir, "predicate.json")
		os.WriteFile(pred, []byte(`{"builder":{"id":"https://tollgate.dev/builders/cli"},"buildType":"https://tekton.dev/attestations/chains@v2"}`), 0o644)
		for _, args := range [][]string{
			{"sign", "--key", "cosign.key", "--tlog-upload=false", "--yes", img.String()},
			{"attest", "--key", "cosign.key", "--tlog-upload=false", "--yes", "--type", "slsaprovenance", "--predicate", "predicate.json", img.String()},
		} {
			if out, err := cosignCLI(t, dir, []string{"COSIGN_PASSWORD="}, args...); err != nil {
				t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
			}
		}
		p := podOf("cli", "cli", tagOf(img))
		if err := admin.Create(ctx, p); err != nil {
			t.Fatalf("an image signed and attested by the cosign CLI: %v", err)
		}
		if !strings.HasSuffix(p.Spec.Containers[0].Image, "@"+img.DigestStr()) {
			t.Errorf("not pinned: %q", p.Spec.Containers[0].Image)
		}
		// The same image is not release-signed: the shop namespaces refuse it.
		denied(t, admin.Create(ctx, podOf(gatedNS, "cli", tagOf(img))), `(policy "release")`)
	})
}

// TestImageGateCredentials: a pod's pull secrets reach the registry they
// are written for, and no other, even when that registry redirects.
func TestImageGateCredentials(t *testing.T) {
	private := registry.StartWithAuth(t, "puller", "s3cret")
	public := registry.Start(t)
	key := signing.NewKey(t)
	dockerConfig := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, private.Host, base64.StdEncoding.EncodeToString([]byte("puller:s3cret")))
	env := startGuarded(t,
		namespace(signerNS, nil),
		namespace("private", map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "private", Name: "pull"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockerConfig)}},
	)
	ctx := t.Context()
	applyImagePolicy(t, env.Client, imagePolicy("both", private.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Images = append(s.Images, v1alpha1.ImagePattern{Glob: public.Host + "/**"})
	}), metav1.ConditionTrue)
	good := signing.SLSAv1("https://tollgate.dev/builders/test")
	auth := &authn.Basic{Username: "puller", Password: "s3cret"}

	privImg := private.PushRandom(t, "team/app", "v1")
	key.Sign(t, privImg, signing.Options{Auth: auth})
	key.Attest(t, privImg, slsa.PredicateV1, good, signing.Options{Auth: auth})
	pubImg := public.PushRandom(t, "team/app", "v1")
	key.Sign(t, pubImg, signing.Options{})
	key.Attest(t, pubImg, slsa.PredicateV1, good, signing.Options{})
	secretHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))

	withSecret := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		return p
	}
	t.Run("a private image is verified with the pod's pull secret", func(t *testing.T) {
		p := withSecret(podOf("private", "a", privImg.Context().Tag("v1").String()))
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the service account's pull secrets count too", func(t *testing.T) {
		sa := serviceAccount("private", "deployer")
		sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		if err := env.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		p := podOf("private", "by-sa", privImg.Context().Tag("v1").String())
		p.Spec.ServiceAccountName = "deployer"
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("without the pull secret the private registry's refusal denies, naming it", func(t *testing.T) {
		denied(t, env.Client.Create(ctx, podOf("private", "b", privImg.Context().Tag("v1").String())), private.Host, "UNAUTHORIZED")
	})
	t.Run("the secret for one registry is never sent to another, even through a redirect", func(t *testing.T) {
		fresh := private.PushRandom(t, "team/fresh", "v1") // not in the cache: its layers are read
		key.Sign(t, fresh, signing.Options{Auth: auth})
		key.Attest(t, fresh, slsa.PredicateV1, good, signing.Options{Auth: auth})
		// The private registry redirects its blob reads to the public one.
		private.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/team/fresh/blobs/") {
				http.Redirect(w, r, "http://"+public.Host+r.URL.Path, http.StatusTemporaryRedirect)
				return true
			}
			return false
		})
		var redirected atomic.Int32
		public.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/team/fresh/blobs/") {
				redirected.Add(1)
			}
			return false
		})
		privBefore, pubBefore := len(private.Authorizations()), len(public.Authorizations())
		p := withSecret(podOf("private", "c", pubImg.Context().Tag("v1").String()))
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "private", Image: fresh.Context().Tag("v1").String()})
		// The redirected layers are not found on the public registry, so
		// the private image fails; what matters is who saw the secret.
		denied(t, env.Client.Create(ctx, p), fresh.DigestStr())
		if redirected.Load() == 0 {
			t.Fatal("no read was redirected: the test proves nothing")
		}
		for _, a := range public.Authorizations()[pubBefore:] {
			if a == secretHeader {
				t.Fatal("the public registry received the private registry's credentials")
			}
		}
		seen := false
		for _, a := range private.Authorizations()[privBefore:] {
			seen = seen || a == secretHeader
		}
		if !seen {
			t.Fatal("the private registry never received its credentials: the test proves nothing")
		}
	})
}
