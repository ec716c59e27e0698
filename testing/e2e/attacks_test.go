package e2e

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
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
		key.Attest(t, img, images.SLSAProvenanceV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
		return img
	}

	t.Run("crafted attestation layers are denied and the webhook keeps serving", func(t *testing.T) {
		for i, c := range signing.CraftedAttestations() {
			img := reg.PushRandom(t, "crafted/"+strings.ToLower(strings.ReplaceAll(c.Name, " ", "-")), "v1")
			cert := fulcio.Issue(t, issuer, subject)
			cert.Sign(t, img, signing.Options{Cert: cert})
			signing.AttachCrafted(t, img, cert, images.SLSAProvenanceV1, c)
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
