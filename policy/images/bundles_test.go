package images_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
)

// TestVerifyBundles: sigstore bundles attached as OCI 1.1 referrers (cosign
// v3's layout), on a registry with the referrers API and on one without
// (the tag schema). What a bundle must prove, it proves; each way it can
// lie is refused with a message that says how.
func TestVerifyBundles(t *testing.T) {
	good := signing.SLSAv1("https://tollgate.dev/signer")
	for _, reg := range []struct {
		name string
		reg  *registry.Registry
	}{{"referrers API", registry.StartWithReferrers(t)}, {"referrers tag schema", registry.Start(t)}} {
		t.Run(reg.name, func(t *testing.T) {
			f := newFixture(t)
			f.reg = reg.reg
			p := keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1)
			signed := func(t *testing.T, repo string, sig, att signing.BundleOptions) images.Result {
				t.Helper()
				img := f.reg.PushRandom(t, repo, "v1")
				f.key.AttachBundleOf(t, img, signing.PredicateCosignSign, map[string]any{}, sig)
				f.key.AttachBundleOf(t, img, slsa.PredicateV1, good, att)
				res, err := f.verify(t, img, p)
				if err != nil {
					t.Fatalf("verification errored: %v", err)
				}
				return *res
			}
			t.Run("a signature and provenance bundle by the key verify, returning the statement", func(t *testing.T) {
				res := signed(t, "app/bundle", signing.BundleOptions{}, signing.BundleOptions{})
				if !res.Verified() || len(res.Attestations) != 1 || !strings.Contains(string(res.Attestations[0].Statement), "https://tollgate.dev/signer") || res.Signatures[0].Authority != "release-key" {
					t.Fatalf("result: %+v", res)
				}
			})
			t.Run("without the predicate type hint, the verified statement decides", func(t *testing.T) {
				res := signed(t, "app/no-hint", signing.BundleOptions{Hint: "-"}, signing.BundleOptions{Hint: "-"})
				if !res.Verified() {
					t.Fatalf("result: %+v", res)
				}
			})
			t.Run("an attestation for another digest", func(t *testing.T) {
				elsewhere := f.reg.PushRandom(t, "app/elsewhere", "v1")
				res := signed(t, "app/att-other-digest", signing.BundleOptions{}, signing.BundleOptions{Digest: elsewhere.DigestStr()})
				r := &res
				failed(t, r, nil, "provenance: no attestation of type https://slsa.dev/provenance/v1 verifies", "bundle sha256:", "provided artifact digest does not match any digest in statement")
				if len(res.Failures) != 1 {
					t.Errorf("only the attestation should fail: %+v", res.Failures)
				}
			})
			t.Run("a signature for another digest", func(t *testing.T) {
				elsewhere := f.reg.PushRandom(t, "app/elsewhere-sig", "v1")
				res := signed(t, "app/sig-other-digest", signing.BundleOptions{Digest: elsewhere.DigestStr()}, signing.BundleOptions{})
				failed(t, &res, nil, "signature: no signature verifies", "provided artifact digest does not match any digest in statement")
			})
			t.Run("a tampered DSSE payload", func(t *testing.T) {
				res := signed(t, "app/tampered", signing.BundleOptions{}, signing.BundleOptions{Tamper: true})
				failed(t, &res, nil, "provenance: no attestation of type https://slsa.dev/provenance/v1 verifies", "bundle sha256:", "signature")
			})
			t.Run("a bundle by another key", func(t *testing.T) {
				img := f.reg.PushRandom(t, "app/other-key", "v1")
				other := signing.NewKey(t)
				other.AttachBundleOf(t, img, signing.PredicateCosignSign, map[string]any{}, signing.BundleOptions{})
				res, err := f.verify(t, img, p)
				failed(t, res, err, "signature: no signature verifies with the authorities release-key among 1 attached", "release-key: bundle sha256:")
			})
			t.Run("a bundle that does not parse", func(t *testing.T) {
				img := f.reg.PushRandom(t, "app/garbage", "v1")
				signing.AttachBundle(t, img, []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), signing.PredicateCosignSign)
				res, err := f.verify(t, img, p)
				failed(t, res, err, "signature: no signature verifies", "the bundle does not parse")
			})
		})
	}
	t.Run("a policy can require one format", func(t *testing.T) {
		f := newFixture(t)
		legacy := f.reg.PushRandom(t, "app/legacy", "v1")
		f.key.Sign(t, legacy, signing.Options{})
		f.key.Attest(t, legacy, slsa.PredicateV1, good, signing.Options{})
		bundled := f.reg.PushRandom(t, "app/bundled", "v1")
		f.key.AttachBundleOf(t, bundled, signing.PredicateCosignSign, map[string]any{}, signing.BundleOptions{})
		f.key.AttachBundleOf(t, bundled, slsa.PredicateV1, good, signing.BundleOptions{})
		only := func(format v1alpha1.SignatureFormat) *images.Policy {
			return compile(t, v1alpha1.ClusterImagePolicySpec{
				Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
				Authorities:  []v1alpha1.Authority{{Name: "release-key", Key: &v1alpha1.KeyAuthority{Data: string(f.key.PublicPEM)}}},
				Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
				Formats:      []v1alpha1.SignatureFormat{format},
			})
		}
		for _, c := range []struct {
			format   v1alpha1.SignatureFormat
			accepted string
			refused  string
			says     string
		}{
			{v1alpha1.FormatBundle, "bundled", "legacy", "no signature in sigstore bundles attached as referrers (spec.formats) is attached"},
			{v1alpha1.FormatLegacy, "legacy", "bundled", "no signature in legacy .sig/.att tags (spec.formats) is attached"},
		} {
			imgs := map[string]name.Digest{"legacy": legacy, "bundled": bundled}
			p := only(c.format)
			if res, err := f.verify(t, imgs[c.accepted], p); err != nil || !res.Verified() {
				t.Errorf("formats [%s]: the %s image: %v %+v", c.format, c.accepted, err, res)
			}
			res, err := f.verify(t, imgs[c.refused], p)
			failed(t, res, err, c.says)
		}
	})
	t.Run("a referrers index listing 10,000 artifacts is refused before any is read", func(t *testing.T) {
		f := newFixture(t)
		f.reg = registry.StartWithReferrers(t)
		img := f.reg.PushRandom(t, "app/flood", "v1")
		index := signing.ReferrersIndex(10000)
		var reads int
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/referrers/") {
				w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
				_, _ = w.Write(index)
				return true
			}
			if strings.Contains(r.URL.Path, "/manifests/sha256:0000") {
				reads++
			}
			return false
		})
		_, err := f.verify(t, img, keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1))
		if err == nil || !strings.Contains(err.Error(), "lists more than 100 entries; refusing to read them") {
			t.Fatalf("err = %v", err)
		}
		if reads != 0 {
			t.Errorf("%d referrers were read", reads)
		}
	})
}

// TestVerifySignaturesRepository: an authority whose signatures are kept in
// another repository (COSIGN_REPOSITORY) reads them there, in both
// layouts; signatures next to the image do not count for it, and its
// signatures do not count for an authority without the field.
func TestVerifySignaturesRepository(t *testing.T) {
	f := newFixture(t)
	good := signing.SLSAv1("https://tollgate.dev/signer")
	sigs, err := name.NewRepository(f.reg.Host + "/signatures")
	if err != nil {
		t.Fatal(err)
	}
	policy := func(repo string) *images.Policy {
		return compile(t, v1alpha1.ClusterImagePolicySpec{
			Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
			Authorities:  []v1alpha1.Authority{{Name: "release-key", Key: &v1alpha1.KeyAuthority{Data: string(f.key.PublicPEM)}, SignaturesRepository: repo}},
			Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
		})
	}
	elsewhere, here := policy(sigs.Name()), policy("")

	legacy := f.reg.PushRandom(t, "app/legacy-elsewhere", "v1")
	f.key.Sign(t, legacy, signing.Options{Repository: &sigs})
	f.key.Attest(t, legacy, slsa.PredicateV1, good, signing.Options{Repository: &sigs})
	bundled := f.reg.PushRandom(t, "app/bundled-elsewhere", "v1")
	f.key.AttachBundleOf(t, bundled, signing.PredicateCosignSign, map[string]any{}, signing.BundleOptions{Repository: &sigs})
	f.key.AttachBundleOf(t, bundled, slsa.PredicateV1, good, signing.BundleOptions{Repository: &sigs})
	nextTo := f.reg.PushRandom(t, "app/next-to", "v1")
	f.key.Sign(t, nextTo, signing.Options{})
	f.key.Attest(t, nextTo, slsa.PredicateV1, good, signing.Options{})

	for _, img := range []name.Digest{legacy, bundled} {
		if res, err := f.verify(t, img, elsewhere); err != nil || !res.Verified() {
			t.Errorf("%s with signaturesRepository: %v %+v", img, err, res)
		}
		res, err := f.verify(t, img, here)
		failed(t, res, err, "no signature is attached")
	}
	res, err := f.verify(t, nextTo, elsewhere)
	failed(t, res, err, "no signature is attached")
}
