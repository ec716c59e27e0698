package signing

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
)

// BundleMediaType is the media type of the sigstore bundles cosign v3 writes.
const BundleMediaType = images.BundleMediaType

// PredicateCosignSign is the predicate type of cosign v3's image signature.
const PredicateCosignSign = images.PredicateCosignSign

// BundleOptions vary a bundle, to craft the bad cases.
type BundleOptions struct {
	// Digest is the statement's subject instead of the image's digest.
	Digest string
	// Tamper changes the statement after it was signed.
	Tamper bool
	// Hint is the referrer's predicate type annotation (default: the
	// statement's; "-" leaves it out).
	Hint string
	// Repository receives the referrer instead of the image's repository.
	Repository *name.Repository
}

// Bundle returns a sigstore bundle (v0.3) holding a DSSE envelope over an
// in-toto statement about digest, signed with k, as cosign v3 writes with
// a key and no transparency log.
func (k *Key) Bundle(t testing.TB, img name.Digest, predicateType string, predicate any, o BundleOptions) []byte {
	t.Helper()
	digest := img.DigestStr()
	if o.Digest != "" {
		digest = o.Digest
	}
	st := Statement(img, digest, predicateType, predicate)
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(k.Envelope(t, ctypes.IntotoPayloadType, st), &env); err != nil {
		t.Fatal(err)
	}
	if o.Tamper {
		env.Payload = base64.StdEncoding.EncodeToString(Statement(img, digest, predicateType, map[string]any{"tampered": true}))
	}
	b, err := json.Marshal(map[string]any{
		"mediaType":            BundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": ""}},
		"dsseEnvelope": map[string]any{
			"payload":     env.Payload,
			"payloadType": env.PayloadType,
			"signatures":  []any{map[string]any{"sig": env.Signatures[0].Sig}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AttachBundle attaches bundle to img as an OCI 1.1 referrer, as cosign v3
// does: through the referrers API, or the sha256-<hex> tag where the
// registry has none.
func AttachBundle(t testing.TB, img name.Digest, bundle []byte, predicateType string, in ...name.Repository) {
	t.Helper()
	repo := img.Context()
	if len(in) > 0 {
		repo = in[0]
	}
	if predicateType == "-" {
		predicateType = ""
	}
	if err := oci.AttachBundle(repo, img, bundle, predicateType); err != nil {
		t.Fatalf("attaching a bundle to %s: %v", img, err)
	}
}

// AttachBundleOf signs and attaches a bundle in one step; hint as
// BundleOptions.Hint.
func (k *Key) AttachBundleOf(t testing.TB, img name.Digest, predicateType string, predicate any, o BundleOptions) {
	t.Helper()
	hint := o.Hint
	if hint == "" {
		hint = predicateType
	}
	var in []name.Repository
	if o.Repository != nil {
		in = append(in, *o.Repository)
	}
	AttachBundle(t, img, k.Bundle(t, img, predicateType, predicate, o), hint, in...)
}

// ReferrersIndex is an OCI index listing n referrers of digest, each a
// bundle artifact that does not exist: what a hostile registry answers.
func ReferrersIndex(n int) []byte {
	ms := make([]map[string]any, n)
	for i := range ms {
		ms[i] = map[string]any{"mediaType": string(types.OCIManifestSchema1), "artifactType": BundleMediaType,
			"digest": fmt.Sprintf("sha256:%064x", i), "size": 512}
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIImageIndex), "manifests": ms})
	return b
}

// AttachedBundles returns the sigstore bundles attached to img as
// referrers (the referrers API, or the tag schema), keyed by the
// referrers' predicate type annotation, as cosign v3 wrote them. A registry
// may report a referrer's artifact type as the empty config's; the bundle
// layer's media type decides.
func AttachedBundles(t testing.TB, img name.Digest) map[string][]byte {
	t.Helper()
	idx, err := remote.Referrers(img)
	if err != nil {
		t.Fatalf("listing the referrers of %s: %v", img, err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, d := range manifest.Manifests {
		art, err := remote.Image(img.Context().Digest(d.Digest.String()))
		if err != nil {
			t.Fatalf("reading referrer %s: %v", d.Digest, err)
		}
		m, err := art.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 1 || m.Layers[0].MediaType != types.MediaType(images.BundleMediaType) {
			continue
		}
		layer, err := art.LayerByDigest(m.Layers[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[m.Annotations[images.AnnotationBundlePredicateType]] = b
	}
	return out
}
