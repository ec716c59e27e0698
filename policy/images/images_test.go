package images_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		glob, image string
		match       bool
	}{
		{"registry.example.com/team/**", "registry.example.com/team/app:v1", true},
		{"registry.example.com/team/**", "registry.example.com/team/sub/app", true},
		{"registry.example.com/team/*", "registry.example.com/team/sub/app", false},
		{"registry.example.com/team/*", "registry.example.com/teamx/app", false},
		{"*", "busybox", true},
		{"*", "library/busybox:1.36", true},
		{"*", "someone/busybox", false},
		{"*/*", "someone/busybox", true},
		{"index.docker.io/library/busybox", "busybox", true},
		{"docker.io/library/busybox", "docker.io/busybox", true},
		{"busybox", "busybox", false}, // a bare name is refused below; here it never matches
		{"127.0.0.1:5000/**", "127.0.0.1:5000/a/b@sha256:" + strings.Repeat("a", 64), true},
		{"Registry.Example.com/team/**", "registry.example.com/team/app", true},
	}
	for _, c := range cases {
		g, err := images.CompileGlob(c.glob)
		if c.glob == "busybox" {
			if err == nil {
				t.Errorf("glob %q: want an error (no registry)", c.glob)
			}
			continue
		}
		if err != nil {
			t.Fatalf("glob %q: %v", c.glob, err)
		}
		img, err := images.ParseImage(c.image)
		if err != nil {
			t.Fatalf("image %q: %v", c.image, err)
		}
		if got := g.Match(img); got != c.match {
			t.Errorf("glob %q, image %q: match %v, want %v", c.glob, c.image, got, c.match)
		}
	}
	for _, bad := range []string{"registry.example.com/app:v1", "registry.example.com/a b", "registry.example.com/(a|b)"} {
		if _, err := images.CompileGlob(bad); err == nil {
			t.Errorf("glob %q: want an error", bad)
		}
	}
}

func TestParseImage(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	good := map[string]images.Image{
		"busybox":                                   {Tag: "latest"},
		"registry.example.com/app:v1":               {Tag: "v1"},
		"registry.example.com/app@sha256:" + hex:    {Tag: "latest", Digest: "sha256:" + hex},
		"registry.example.com/app:v1@sha256:" + hex: {Tag: "v1", Digest: "sha256:" + hex},
	}
	for ref, want := range good {
		got, err := images.ParseImage(ref)
		if err != nil {
			t.Fatalf("%q: %v", ref, err)
		}
		if got.Tag != want.Tag || got.Digest != want.Digest {
			t.Errorf("%q: tag %q digest %q, want %q %q", ref, got.Tag, got.Digest, want.Tag, want.Digest)
		}
	}
	bad := map[string]string{
		"registry.example.com/app@sha256:" + strings.ToUpper(hex): "64 lowercase hex",
		"registry.example.com/app@sha256:abc":                     "64 lowercase hex",
		"registry.example.com/app@sha512:" + hex + hex:            "64 lowercase hex",
		"registry.example.com/app@@sha256:" + hex:                 "more than one '@'",
		"":                      "empty",
		" busybox":              "whitespace",
		"Registry/UPPER/app:v1": "invalid image reference",
	}
	for ref, want := range bad {
		_, err := images.ParseImage(ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", ref, err, want)
		}
	}
}

// fixture is a registry, a trusted key and a verifier.
type fixture struct {
	reg      *registry.Registry
	key      *signing.Key
	verifier *images.Verifier
}

func newFixture(t testing.TB) *fixture {
	reg := registry.Start(t)
	r, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{reg: reg, key: signing.NewKey(t), verifier: images.NewVerifier(r)}
}

func keyPolicy(t *testing.T, pub []byte, predicateType string) *images.Policy {
	t.Helper()
	return compile(t, v1alpha1.ClusterImagePolicySpec{
		Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
		Authorities:  []v1alpha1.Authority{{Name: "release-key", Key: &v1alpha1.KeyAuthority{Data: string(pub)}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: predicateType}},
	})
}

func compile(t testing.TB, spec v1alpha1.ClusterImagePolicySpec) *images.Policy {
	t.Helper()
	p := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "test", UID: types.UID("uid-1"), Generation: 1}, Spec: spec}
	c, err := images.Compile(t.Context(), p, images.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) verify(t *testing.T, img name.Digest, p *images.Policy) (*images.Result, error) {
	t.Helper()
	return f.verifier.Verify(t.Context(), img.Repository, img.DigestStr(), p, authn.NewMultiKeychain())
}

// failed asserts the result failed with messages containing each want.
func failed(t *testing.T, res *images.Result, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("verification errored instead of failing: %v", err)
	}
	if res.Verified() {
		t.Fatalf("verified, want a failure containing %q", want)
	}
	var all []string
	for _, f := range res.Failures {
		all = append(all, f.String())
	}
	text := strings.Join(all, "\n")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("failures do not mention %q:\n%s", w, text)
		}
	}
}

func TestVerifyKey(t *testing.T) {
	f := newFixture(t)
	p := keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1)
	other := signing.NewKey(t)
	good := signing.SLSAv1("https://tollgate.dev/signer")

	t.Run("signature and provenance by the key verify, returning the statement", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/good", "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, slsa.PredicateV1, good, signing.Options{})
		res, err := f.verify(t, img, p)
		if err != nil || !res.Verified() {
			t.Fatalf("want verified: %v %+v", err, res)
		}
		if len(res.Attestations) != 1 || !strings.Contains(string(res.Attestations[0].Statement), "https://tollgate.dev/signer") || res.Signatures[0].Authority != "release-key" {
			t.Fatalf("result: %+v", res)
		}
	})
	t.Run("unsigned image fails naming the missing signature", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/unsigned", "v1")
		res, err := f.verify(t, img, p)
		failed(t, res, err, "signature: no signature is attached (authorities: release-key)", "provenance: no attestation of type https://slsa.dev/provenance/v1 is attached")
	})
	t.Run("valid signature with the attestation missing", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/no-att", "v1")
		f.key.Sign(t, img, signing.Options{})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "provenance: no attestation of type https://slsa.dev/provenance/v1 is attached")
		if len(res.Failures) != 1 {
			t.Errorf("only the attestation should fail: %+v", res.Failures)
		}
	})
	t.Run("signature by another key", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/other-key", "v1")
		other.Sign(t, img, signing.Options{})
		other.Attest(t, img, slsa.PredicateV1, good, signing.Options{})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "signature: no signature verifies with the authorities release-key among 1 attached", "invalid signature")
	})
	t.Run("signature for another digest", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/sig-other-digest", "v1")
		elsewhere := f.reg.PushRandom(t, "app/elsewhere", "v1")
		f.key.Sign(t, img, signing.Options{Digest: elsewhere.DigestStr()})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "invalid or missing digest in claim")
	})
	t.Run("attestation signed by the right key for another digest", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/att-other-digest", "v1")
		elsewhere := f.reg.PushRandom(t, "app/elsewhere2", "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, slsa.PredicateV1, good, signing.Options{Digest: elsewhere.DigestStr()})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "no matching subject digest found")
	})
	t.Run("wrong DSSE payload type", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/payload-type", "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, slsa.PredicateV1, good, signing.Options{PayloadType: "application/json"})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "invalid payloadType application/json")
	})
	t.Run("unparsable predicate", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/bad-predicate", "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, slsa.PredicateV1, map[string]any{"buildDefinition": "not an object"}, signing.Options{})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "signed by release-key but the https://slsa.dev/provenance/v1 predicate does not parse")
	})
	t.Run("predicate of another type", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/other-type", "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, "https://example.com/sbom", map[string]any{}, signing.Options{})
		res, err := f.verify(t, img, p)
		failed(t, res, err, `an attestation of type "https://example.com/sbom"`)
	})
	t.Run("statement lying about its predicate type under a matching annotation", func(t *testing.T) {
		img := f.reg.PushRandom(t, "app/lying-type", "v1")
		f.key.Sign(t, img, signing.Options{})
		st := signing.Statement(img, img.DigestStr(), "https://example.com/other", good)
		f.key.Attest(t, img, slsa.PredicateV1, nil, signing.Options{Statement: st})
		res, err := f.verify(t, img, p)
		failed(t, res, err, `the predicate type is "https://example.com/other"`)
	})
}

func TestVerifyIndex(t *testing.T) {
	f := newFixture(t)
	p := keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1)
	good := signing.SLSAv1("https://tollgate.dev/signer")

	// The digest checked is the one the workload pulls: signing an index
	// admits the index, not its platform manifests by their own digests,
	// and the reverse.
	index, platform := f.reg.PushRandomIndex(t, "multi/index-signed", "v1")
	f.key.Sign(t, index, signing.Options{})
	f.key.Attest(t, index, slsa.PredicateV1, good, signing.Options{})
	if res, err := f.verify(t, index, p); err != nil || !res.Verified() {
		t.Fatalf("signed index: %v %+v", err, res)
	}
	res, err := f.verify(t, platform, p)
	failed(t, res, err, "signature: no signature is attached")

	index2, platform2 := f.reg.PushRandomIndex(t, "multi/platform-signed", "v1")
	f.key.Sign(t, platform2, signing.Options{})
	f.key.Attest(t, platform2, slsa.PredicateV1, good, signing.Options{})
	if res, err := f.verify(t, platform2, p); err != nil || !res.Verified() {
		t.Fatalf("signed platform manifest: %v %+v", err, res)
	}
	res, err = f.verify(t, index2, p)
	failed(t, res, err, "signature: no signature is attached")

	// A tag names the index; resolving it yields the index digest.
	img, _ := images.ParseImage(index2.Context().Tag("v1").String())
	m, err := f.verifier.Registry().Resolve(t.Context(), img, authn.NewMultiKeychain())
	if err != nil || m.Digest != index2.DigestStr() || !m.IsIndex() {
		t.Fatalf("resolve: %v %+v", err, m)
	}
}

func TestVerifyKeyless(t *testing.T) {
	f := newFixture(t)
	fulcio := signing.NewFulcio(t)
	policy := func(id v1alpha1.Identity) *images.Policy {
		return compile(t, v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImagePattern{{Glob: "**"}},
			Authorities: []v1alpha1.Authority{{Name: "ci", Keyless: &v1alpha1.KeylessAuthority{
				Identities: []v1alpha1.Identity{id},
				TrustRoot:  v1alpha1.TrustRoot{FulcioRoots: string(fulcio.RootPEM), RekorPublicKey: string(fulcio.RekorPEM)},
			}}},
			Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
		})
	}
	const issuer = "https://token.actions.githubusercontent.com"
	signed := func(t *testing.T, repo, subject string) name.Digest {
		img := f.reg.PushRandom(t, repo, "v1")
		c := fulcio.Issue(t, issuer, subject)
		c.Sign(t, img, signing.Options{Cert: c})
		return img
	}
	exact := policy(v1alpha1.Identity{Issuer: issuer, Subject: "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main"})

	t.Run("certificate of the identity verifies", func(t *testing.T) {
		img := signed(t, "keyless/good", "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main")
		res, err := f.verify(t, img, exact)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Signatures) != 1 || !strings.Contains(res.Signatures[0].Identity, "refs/heads/main") {
			t.Fatalf("signature did not verify: %+v", res)
		}
	})
	t.Run("certificate of another identity fails", func(t *testing.T) {
		img := signed(t, "keyless/other", "https://github.com/evil/app/.github/workflows/release.yaml@refs/heads/main")
		res, err := f.verify(t, img, exact)
		failed(t, res, err, "none of the expected identities matched", "https://github.com/evil/app")
	})
	t.Run("an unanchored regexp does not match a longer subject", func(t *testing.T) {
		re := policy(v1alpha1.Identity{Issuer: issuer, SubjectRegExp: `https://github\.com/org/.*`})
		img := signed(t, "keyless/trick", "https://evil.example/x?https://github.com/org/app")
		res, err := f.verify(t, img, re)
		failed(t, res, err, "none of the expected identities matched")
		ok := signed(t, "keyless/regexp-good", "https://github.com/org/app/.github/workflows/release.yaml@refs/tags/v1")
		res, err = f.verify(t, ok, re)
		if err != nil || len(res.Signatures) != 1 {
			t.Fatalf("regexp identity should verify: %v %+v", err, res)
		}
	})
	t.Run("a certificate from another root fails", func(t *testing.T) {
		img := f.reg.PushRandom(t, "keyless/other-root", "v1")
		c := signing.NewFulcio(t).Issue(t, issuer, "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main")
		c.Sign(t, img, signing.Options{Cert: c})
		res, err := f.verify(t, img, exact)
		failed(t, res, err, "signature: no signature verifies")
	})
}

// TestVerifyHostileRegistry plays registries that lie, flood and bomb.
func TestVerifyHostileRegistry(t *testing.T) {
	f := newFixture(t)
	p := keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1)
	good := signing.SLSAv1("https://tollgate.dev/signer")
	signedImage := func(t *testing.T, repo string) name.Digest {
		img := f.reg.PushRandom(t, repo, "v1")
		f.key.Sign(t, img, signing.Options{})
		f.key.Attest(t, img, slsa.PredicateV1, good, signing.Options{})
		return img
	}
	sigTag := func(img name.Digest, suffix string) string {
		return "/v2/" + img.RepositoryStr() + "/manifests/" + strings.Replace(img.DigestStr(), ":", "-", 1) + "." + suffix
	}
	memBefore := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.TotalAlloc
	}
	allocated := func(before uint64) uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.TotalAlloc - before
	}
	defer f.reg.Intercept(func(http.ResponseWriter, *http.Request) bool { return false })

	t.Run("manifest bytes that do not match the digest asked for", func(t *testing.T) {
		img := signedImage(t, "hostile/tampered")
		path := "/v2/" + img.RepositoryStr() + "/manifests/" + img.DigestStr()
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", img.DigestStr())
			fmt.Fprint(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
			return true
		})
		parsed, _ := images.ParseImage(img.String())
		_, err := f.verifier.Registry().Resolve(t.Context(), parsed, authn.NewMultiKeychain())
		if err == nil || !strings.Contains(err.Error(), "served a manifest whose bytes hash to") {
			t.Fatalf("want a digest mismatch, got %v", err)
		}
	})
	t.Run("a tag's digest is computed from the bytes, not the header", func(t *testing.T) {
		img := f.reg.PushRandom(t, "hostile/header", "v1")
		raw, err := remote.Get(img)
		if err != nil {
			t.Fatal(err)
		}
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/hostile/header/manifests/v1") {
				return false
			}
			w.Header().Set("Content-Type", string(raw.MediaType))
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
			w.Write(raw.Manifest)
			return true
		})
		parsed, _ := images.ParseImage(img.Context().Tag("v1").String())
		m, err := f.verifier.Registry().Resolve(t.Context(), parsed, authn.NewMultiKeychain())
		if err != nil || m.Digest != img.DigestStr() {
			t.Fatalf("resolve: %v, digest %s, want %s", err, m.Digest, img.DigestStr())
		}
	})
	t.Run("10,000 signatures on one image", func(t *testing.T) {
		img := signedImage(t, "hostile/flood")
		path := sigTag(img, "sig")
		var layers []string
		for i := range 10000 {
			layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":200,"digest":"sha256:%064x","annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ"}}`, i))
		}
		body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:` + strings.Repeat("1", 64) + `"},"layers":[` + strings.Join(layers, ",") + `]}`
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			fmt.Fprint(w, body)
			return true
		})
		before := memBefore()
		_, err := f.verify(t, img, p)
		if err == nil || !strings.Contains(err.Error(), "has more than 100 layers") {
			t.Fatalf("want the layer limit, got %v", err)
		}
		if a := allocated(before); a > 64<<20 {
			t.Errorf("allocated %d MiB checking a flooded image", a>>20)
		}
	})
	t.Run("a 100 MB attachment is refused before it is read", func(t *testing.T) {
		img := signedImage(t, "hostile/huge")
		path := sigTag(img, "att")
		var fetchedBlob bool
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/blobs/sha256:"+strings.Repeat("2", 64)) {
				fetchedBlob = true
			}
			if r.URL.Path != path {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			fmt.Fprintf(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","size":%d,"digest":"sha256:%s"}]}`, strings.Repeat("1", 64), 100<<20, strings.Repeat("2", 64))
			return true
		})
		res, err := f.verify(t, img, p)
		failed(t, res, err, "a layer of 104857600 bytes is larger than the limit of 4194304")
		if fetchedBlob {
			t.Error("the oversized layer was fetched")
		}
	})
	t.Run("a layer whose body is larger than its descriptor, gzip-bombed", func(t *testing.T) {
		img := signedImage(t, "hostile/bomb")
		var bomb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for range 512 { // 512 MiB of zeros, about 0.5 MiB compressed
			zw.Write(zeros)
		}
		zw.Close()
		// Serve every attestation blob as the bomb, compressed on the wire.
		f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/hostile/bomb/blobs/") || r.Method != http.MethodGet {
				return false
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(bomb.Bytes())
			return true
		})
		before := memBefore()
		res, err := f.verify(t, img, p)
		failed(t, res, err, "signature: no signature verifies", "sent more than the limit of")
		if a := allocated(before); a > 64<<20 {
			t.Errorf("allocated %d MiB reading a gzip bomb", a>>20)
		}
	})
}

const issuer, subject = "https://token.actions.githubusercontent.com", "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main"

// keylessPolicy trusts fulcio's certificates for subject from issuer and
// requires SLSA v1 provenance.
func keylessPolicy(t testing.TB, fulcio *signing.Fulcio) *images.Policy {
	t.Helper()
	return compile(t, keylessSpec(fulcio, "", subject))
}

// TestVerifyCraftedAttestations: layers an attacker who can push to a
// repository crafts to crash the verifier (an empty Rekor bundle made
// cosign's VerifyBundle panic) are failures with a message, under a keyless
// authority, and never panics.
func TestVerifyCraftedAttestations(t *testing.T) {
	f := newFixture(t)
	fulcio := signing.NewFulcio(t)
	p := keylessPolicy(t, fulcio)
	for i, c := range signing.CraftedAttestations() {
		t.Run(c.Name, func(t *testing.T) {
			img := f.reg.PushRandom(t, fmt.Sprintf("crafted/%d", i), "v1")
			cert := fulcio.Issue(t, issuer, subject)
			cert.Sign(t, img, signing.Options{Cert: cert})
			signing.AttachCrafted(t, img, cert, slsa.PredicateV1, c)
			res, err := f.verify(t, img, p)
			failed(t, res, err, "provenance: ", c.Want)
			if len(res.Signatures) != 1 {
				t.Errorf("the good signature beside the crafted layer should still verify: %+v", res)
			}
		})
	}
}

// TestRegistryInFlightBound: a burst of distinct images with large
// attachments holds at most MaxInFlightBytes at once across all
// verifications (the rest fail as busy, uncached, and retry later), and
// every byte is returned when the verifications end.
func TestRegistryInFlightBound(t *testing.T) {
	reg := registry.Start(t)
	key := signing.NewKey(t)
	limits := images.DefaultLimits()
	limits.MaxInFlightBytes = 6 << 20
	r, err := images.NewRegistry(nil, limits)
	if err != nil {
		t.Fatal(err)
	}
	v := images.NewVerifier(r)
	p := keyPolicy(t, key.PublicPEM, slsa.PredicateV1)
	big := bytes.Repeat([]byte("x"), 3<<20)
	var imgs []name.Digest
	for i := range 12 {
		img := reg.PushRandom(t, fmt.Sprintf("burst/%d", i), "v1")
		signing.AttachAttestation(t, img, big, map[string]string{"predicateType": slsa.PredicateV1})
		imgs = append(imgs, img)
	}
	// Slow blobs down so the verifications overlap.
	reg.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/blobs/") {
			time.Sleep(30 * time.Millisecond)
		}
		return false
	})
	var wg sync.WaitGroup
	var busy atomic.Int32
	for _, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(t.Context(), img.Repository, img.DigestStr(), p, authn.NewMultiKeychain())
			if err != nil && strings.Contains(err.Error(), "retry") {
				busy.Add(1)
			}
		}()
	}
	wg.Wait()
	now, peak := r.InFlight()
	if peak > limits.MaxInFlightBytes {
		t.Errorf("%d bytes were held at once, over the bound of %d", peak, limits.MaxInFlightBytes)
	}
	if now != 0 {
		t.Errorf("%d bytes are still held after every verification ended", now)
	}
	if busy.Load() == 0 {
		t.Errorf("no verification met the bound (peak %d): the burst did not exercise it", peak)
	}
}

// TestTagResolutionFaults: a tag the registry did not answer for (down, a
// 5xx, a 429, nothing listening) is a fault — the denial is Internal (500
// at admission, an error row in the audit) — while an answer about the
// image (not found, unauthorized) is a verdict.
func TestTagResolutionFaults(t *testing.T) {
	f := newFixture(t)
	p := keyPolicy(t, f.key.PublicPEM, slsa.PredicateV1)
	cache, err := images.NewCache(images.DefaultCacheOptions())
	if err != nil {
		t.Fatal(err)
	}
	gate := &images.Gate{Verifier: f.verifier, Cache: cache}
	img := f.reg.PushRandom(t, "faults/app", "v1")
	defer f.reg.Intercept(func(http.ResponseWriter, *http.Request) bool { return false })
	status := func(code int) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, _ *http.Request) bool {
			http.Error(w, http.StatusText(code), code)
			return true
		}
	}
	for _, tc := range []struct {
		name     string
		ref      string
		answer   func(http.ResponseWriter, *http.Request) bool
		internal bool
	}{
		{"503", img.Context().Tag("v1").String(), status(http.StatusServiceUnavailable), true},
		{"429", img.Context().Tag("v1").String(), status(http.StatusTooManyRequests), true},
		{"nothing listening", "127.0.0.1:1/faults/app:v1", nil, true},
		{"no such tag", img.Context().Tag("v2").String(), nil, false},
		{"unauthorized", img.Context().Tag("v1").String(), status(http.StatusUnauthorized), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool { return tc.answer != nil && tc.answer(w, r) })
			out := gate.Check(t.Context(), images.NewSet(p), images.Request{
				Subject: "pod", Namespace: "prod", AllPolicies: true, ResolveTags: true, Operation: "CREATE",
				Images:      []images.ContainerImage{{Image: tc.ref, Container: "app", Field: "spec.containers[0].image"}},
				Credentials: func(context.Context) (authn.Keychain, string, error) { return authn.DefaultKeychain, "", nil },
			})
			if len(out.Denials) != 1 || !strings.Contains(out.Denials[0].Message, "resolving the tag") {
				t.Fatalf("denials: %+v", out.Denials)
			}
			if got := out.Denials[0].Internal; got != tc.internal {
				t.Errorf("Internal = %v, want %v: %s", got, tc.internal, out.Denials[0].String())
			}
		})
	}
}
