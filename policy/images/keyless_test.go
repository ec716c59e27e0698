package images_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/signing"
)

const ciIssuer = issuer

// keylessSpec is a policy trusting fulcio's certificates for subject from
// ciIssuer, requiring SLSA v1 provenance.
func keylessSpec(fulcio *signing.Fulcio, transparency v1alpha1.TransparencyMode, subject string) v1alpha1.ClusterImagePolicySpec {
	return v1alpha1.ClusterImagePolicySpec{
		Images: []v1alpha1.ImagePattern{{Glob: "**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Transparency: transparency, Keyless: &v1alpha1.KeylessAuthority{
			Identities: []v1alpha1.Identity{{Issuer: ciIssuer, Subject: subject}},
			TrustRoot:  v1alpha1.TrustRoot{FulcioRoots: string(fulcio.RootPEM), RekorPublicKey: string(fulcio.RekorPEM)},
		}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
	}
}

// TestKeylessTransparency: a keyless authority requires the Rekor entry by
// default; Ignore accepts a signature without one only while its
// certificate is valid.
func TestKeylessTransparency(t *testing.T) {
	f := newFixture(t)
	fulcio := signing.NewFulcio(t)
	const subject = "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main"
	sign := func(t *testing.T, repo string, c *signing.Cert, noLog bool) name.Digest {
		img := f.reg.PushRandom(t, repo, "v1")
		c.Sign(t, img, signing.Options{Cert: c, NoLog: noLog})
		return img
	}
	def, require, ignore := compile(t, keylessSpec(fulcio, "", subject)), compile(t, keylessSpec(fulcio, v1alpha1.TransparencyRequire, subject)), compile(t, keylessSpec(fulcio, v1alpha1.TransparencyIgnore, subject))

	t.Run("without a log entry: denied by default and by Require", func(t *testing.T) {
		img := sign(t, "keyless/unlogged", fulcio.Issue(t, ciIssuer, subject), true)
		for _, p := range []*images.Policy{def, require} {
			res, err := f.verify(t, img, p)
			failed(t, res, err, "signature: no signature verifies", "no transparency log entry (Rekor bundle)", "transparency: Require")
		}
		res, err := f.verify(t, img, ignore)
		if err != nil || len(res.Signatures) != 1 {
			t.Fatalf("transparency: Ignore, a valid certificate: %v %+v", err, res)
		}
	})
	t.Run("an expired certificate without a log entry is denied, even by Ignore", func(t *testing.T) {
		c := fulcio.IssueFor(t, ciIssuer, subject, time.Now().Add(-time.Hour), time.Now().Add(-50*time.Minute))
		img := sign(t, "keyless/expired", c, true)
		for _, p := range []*images.Policy{def, ignore} {
			res, err := f.verify(t, img, p)
			failed(t, res, err, "signature: no signature verifies")
		}
		res, _ := f.verify(t, img, ignore)
		if msg := res.Failures[0].Message; !strings.Contains(msg, "expired") {
			t.Errorf("the denial does not say the certificate expired: %s", msg)
		}
	})
	t.Run("a certificate that had expired when its entry was logged is denied", func(t *testing.T) {
		// The test Rekor integrates entries now: the entry dates the
		// signature after the certificate's end.
		c := fulcio.IssueFor(t, ciIssuer, subject, time.Now().Add(-time.Hour), time.Now().Add(-50*time.Minute))
		img := sign(t, "keyless/expired-logged", c, false)
		res, err := f.verify(t, img, require)
		failed(t, res, err, "signature: no signature verifies")
	})
}

func TestCompileKeylessTrustRoot(t *testing.T) {
	fulcio := signing.NewFulcio(t)
	key := signing.NewKey(t)
	secrets := map[string]map[string][]byte{
		"both": {images.TrustedRootKey: []byte("{}"), images.FulcioRootsKey: fulcio.RootPEM},
		"none": {"other": []byte("x")},
	}
	deps := images.Deps{Secret: func(_ context.Context, _, name string) (map[string][]byte, error) { return secrets[name], nil }}
	base := keylessSpec(fulcio, "", "someone")
	for _, tc := range []struct {
		name   string
		mutate func(a *v1alpha1.Authority)
		want   string
	}{
		{"inline PEM and a trusted root", func(a *v1alpha1.Authority) { a.Keyless.TrustRoot.TrustedRoot = "{}" }, "exactly one of secretRef, configMapRef, trustedRoot and the PEM fields"},
		{"a trusted root that is not one", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot = v1alpha1.TrustRoot{TrustedRoot: `{"mediaType": "nope"}`}
		}, "not a sigstore trusted root"},
		{"a Secret with both forms", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot = v1alpha1.TrustRoot{SecretRef: &v1alpha1.SecretRef{Namespace: "ns", Name: "both"}}
		}, "holds both trusted_root.json and PEM keys"},
		{"a Secret with neither", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot = v1alpha1.TrustRoot{SecretRef: &v1alpha1.SecretRef{Namespace: "ns", Name: "none"}}
		}, "has neither trusted_root.json nor fulcio.pem"},
		{"a ConfigMap that cannot be read here", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot = v1alpha1.TrustRoot{ConfigMapRef: &v1alpha1.SecretRef{Namespace: "ns", Name: "root"}}
		}, "configmap ns/root: ConfigMaps cannot be read here"},
		{"a ConfigMap and a Secret", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot = v1alpha1.TrustRoot{ConfigMapRef: &v1alpha1.SecretRef{Namespace: "ns", Name: "root"}, SecretRef: &v1alpha1.SecretRef{Namespace: "ns", Name: "none"}}
		}, "exactly one of secretRef, configMapRef"},
		{"no root among the certificates", func(a *v1alpha1.Authority) {
			a.Keyless.TrustRoot.FulcioRoots = string(fulcio.Issue(t, ciIssuer, "x").PEM)
		}, "hold no root"},
		{"Require without a Rekor key", func(a *v1alpha1.Authority) { a.Keyless.TrustRoot.RekorPublicKey = "" }, "no Rekor log is trusted"},
		{"a Rekor key that is not one", func(a *v1alpha1.Authority) { a.Keyless.TrustRoot.RekorPublicKey = "nope" }, "the Rekor public key is not a PEM public key"},
		{"Require on a key authority", func(a *v1alpha1.Authority) {
			a.Keyless, a.Key, a.Transparency = nil, &v1alpha1.KeyAuthority{Data: string(key.PublicPEM)}, v1alpha1.TransparencyRequire
		}, "transparency: Require needs a keyless authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := *base.DeepCopy()
			tc.mutate(&spec.Authorities[0])
			_, err := images.Compile(t.Context(), &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: spec}, deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("Ignore without a Rekor key compiles", func(t *testing.T) {
		spec := *base.DeepCopy()
		spec.Authorities[0].Transparency = v1alpha1.TransparencyIgnore
		spec.Authorities[0].Keyless.TrustRoot.RekorPublicKey = ""
		if _, err := images.Compile(t.Context(), &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: spec}, deps); err != nil {
			t.Fatal(err)
		}
	})
}
