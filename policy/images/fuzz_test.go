package images_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/signing"
)

// rawManifest puts bytes as a manifest, whatever they hold.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error) { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(m, &probe) == nil && probe.MediaType != "" {
		return probe.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

// FuzzVerify feeds what a registry owner controls — signature and
// attestation layers, their annotations (certificates, chains, Rekor
// bundles) and the attachment manifest itself — through the real
// verification path (a loopback registry, cosign's verification) under a
// keyless and a key authority. Verify must return, never panic: the gate
// recovers panics too, but each one found here is a denial an attacker can
// cause, so it is fixed at its source.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	fulcio := signing.NewFulcio(f)
	keyless := keylessPolicy(f, fulcio)
	keyed := compile(f, v1alpha1.ClusterImagePolicySpec{
		Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
		Authorities:  []v1alpha1.Authority{{Name: "release-key", Key: &v1alpha1.KeyAuthority{Data: string(fx.key.PublicPEM)}}},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
	})
	img := fx.reg.PushRandom(f, "fuzz/app", "v1")
	cert := fulcio.Issue(f, issuer, subject)
	st := signing.Statement(img, img.DigestStr(), slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/signer"))
	envelope := cert.Envelope(f, ctypes.IntotoPayloadType, st)
	sigPayload := signing.SimpleSigningPayload(img, img.DigestStr())
	certAnn := func(extra map[string]string) []byte {
		m := map[string]string{"dev.sigstore.cosign/certificate": string(cert.PEM), "dev.sigstore.cosign/chain": string(cert.ChainPEM), "predicateType": slsa.PredicateV1}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	f.Add(sigPayload, envelope, certAnn(nil), []byte(nil))
	for _, c := range signing.CraftedAttestations() {
		env := c.Envelope
		if env == nil {
			env = envelope
		}
		f.Add(sigPayload, env, certAnn(c.Annotations), []byte(nil))
	}
	f.Add([]byte("null"), []byte("null"), []byte(`{"dev.sigstore.cosign/signature":"!!"}`), []byte(nil))
	f.Add([]byte(nil), []byte(nil), []byte(nil), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","size":-1,"digest":"sha256:00"}]}`))
	f.Add([]byte(nil), []byte(nil), []byte(nil), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":{"a":1}}`))

	tag := func(suffix string) name.Tag {
		return img.Context().Tag(strings.Replace(img.DigestStr(), ":", "-", 1) + "." + suffix)
	}
	write := func(t *testing.T, suffix string, layer []byte, mediaType types.MediaType, ann map[string]string) {
		l := static.NewLayer(layer, mediaType)
		im, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, Annotations: ann})
		if err != nil {
			t.Skip(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := remote.Write(tag(suffix), im, remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err != nil {
			t.Skip(err)
		}
	}
	f.Fuzz(func(t *testing.T, sigLayer, attLayer, annotations, manifest []byte) {
		ann := map[string]string{}
		if json.Unmarshal(annotations, &ann) != nil {
			ann = map[string]string{"dev.sigstore.cosign/certificate": string(cert.PEM), "dev.sigstore.cosign/bundle": string(annotations)}
		}
		sigAnn := map[string]string{"dev.sigstore.cosign/signature": "MEUCIQ=="}
		for k, v := range ann {
			sigAnn[k] = v
		}
		write(t, "sig", sigLayer, types.MediaType(ctypes.SimpleSigningMediaType), sigAnn)
		if len(manifest) > 0 {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := remote.Put(tag("att"), rawManifest(manifest), remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err != nil {
				t.Skip(err)
			}
		} else {
			write(t, "att", attLayer, types.MediaType(ctypes.DssePayloadType), ann)
		}
		for _, p := range []*images.Policy{keyless, keyed} {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			res, err := fx.verifier.Verify(ctx, img.Repository, img.DigestStr(), p, authn.NewMultiKeychain())
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the verification hung: %v", err)
			}
			if err == nil && res.Verified() && p == keyed {
				t.Fatalf("verified with a key and a root that signed nothing: %+v", res)
			}
		}
	})
}

// FuzzVerifyBundles feeds what a registry owner controls in cosign v3's
// layout — the referrers index and the bundle itself — through the real
// verification path (sigstore-go's bundle parsing and verification).
// Verify must return, never panic or hang, and never verify for a key that
// signed nothing.
func FuzzVerifyBundles(f *testing.F) {
	fx := newFixture(f)
	img := fx.reg.PushRandom(f, "fuzz/bundled", "v1")
	stranger := signing.NewKey(f) // signs nothing the fuzzer is given
	// A keyless authority too, whose root issued nothing the fuzzer is
	// given: certificates, chains and log entries go through sigstore-go's
	// keyless path.
	root := signing.NewFulcio(f)
	p := compile(f, v1alpha1.ClusterImagePolicySpec{
		Images: []v1alpha1.ImagePattern{{Glob: "**"}},
		Authorities: []v1alpha1.Authority{
			{Name: "stranger", Key: &v1alpha1.KeyAuthority{Data: string(stranger.PublicPEM)}},
			{Name: "keyless", Keyless: &v1alpha1.KeylessAuthority{
				Identities: []v1alpha1.Identity{{IssuerRegExp: ".*", SubjectRegExp: ".*"}},
				TrustRoot:  v1alpha1.TrustRoot{FulcioRoots: string(root.RootPEM), RekorPublicKey: string(root.RekorPEM)},
			}},
		},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: slsa.PredicateV1}},
	})
	good := fx.key.Bundle(f, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/signer"), signing.BundleOptions{})
	f.Add(good, []byte(nil))
	f.Add(fx.key.Bundle(f, img, signing.PredicateCosignSign, map[string]any{}, signing.BundleOptions{Tamper: true}), []byte(nil))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[]}}`), []byte(nil))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"x509CertificateChain":{"certificates":[{"rawBytes":"AAAA"}]},"tlogEntries":[{}]}}`), []byte(nil))
	other := signing.NewFulcio(f).Issue(f, "https://issuer.example", "https://subject.example")
	certDER, _ := pem.Decode(other.PEM)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"`+base64.StdEncoding.EncodeToString(certDER.Bytes)+`"},"tlogEntries":[{"logIndex":"1","logId":{"keyId":"AAAA"},"kindVersion":{"kind":"dsse","version":"0.0.1"},"integratedTime":"1","inclusionPromise":{"signedEntryTimestamp":"AAAA"},"canonicalizedBody":"e30="}]},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}}`), []byte(nil))
	f.Add([]byte("null"), []byte(`{"manifests":[{"digest":"sha256:00","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}`))
	f.Add([]byte(nil), []byte(`{"manifests":{"a":1}}`))

	subject, err := remote.Head(img)
	if err != nil {
		f.Fatal(err)
	}
	var index atomic.Pointer[[]byte]
	fx.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		_, _ = w.Write(*index.Load())
		return true
	})
	f.Fuzz(func(t *testing.T, bundle, idx []byte) {
		layer := static.NewLayer(bundle, types.MediaType(signing.BundleMediaType))
		art, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer})
		if err != nil {
			t.Skip(err)
		}
		art = mutate.MediaType(art, types.OCIManifestSchema1)
		art = mutate.Annotations(art, map[string]string{"dev.sigstore.bundle.predicateType": slsa.PredicateV1}).(v1.Image)
		art = mutate.Subject(art, v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}).(v1.Image)
		d, err := art.Digest()
		if err != nil {
			t.Skip(err)
		}
		if len(idx) == 0 {
			idx, _ = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex, "manifests": []any{map[string]any{
				"mediaType": types.OCIManifestSchema1, "artifactType": signing.BundleMediaType, "digest": d.String(), "size": 1}}})
		}
		index.Store(&idx)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := remote.Write(img.Context().Digest(d.String()), art, remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err != nil {
			t.Skip(err)
		}
		vctx, vcancel := context.WithTimeout(t.Context(), 10*time.Second)
		res, err := fx.verifier.Verify(vctx, img.Repository, img.DigestStr(), p, authn.NewMultiKeychain())
		vcancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the verification hung: %v", err)
		}
		if err == nil && res.Verified() {
			t.Fatalf("verified with a key and a root that signed nothing: %+v", res)
		}
	})
}
