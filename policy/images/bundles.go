package images

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Sigstore bundles: what cosign v3 writes by default (`cosign sign` and
// `cosign attest`), attached to the image as OCI 1.1 referrers. A
// signature is a DSSE envelope over an in-toto statement whose subject is
// the image and whose predicate type is PredicateCosignSign; an
// attestation is the same with its own predicate type.
const (
	// bundleMediaTypePrefix starts every bundle media type (v0.1 to v0.3).
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// BundleMediaType is the media type of the bundles cosign v3 writes.
	BundleMediaType = bundleMediaTypePrefix + ".v0.3+json"
	// AnnotationBundleContent says what a referrer's bundle holds.
	AnnotationBundleContent = "dev.sigstore.bundle.content"
	// AnnotationBundlePredicateType is cosign's hint of a referrer's
	// predicate type; the verified statement decides.
	AnnotationBundlePredicateType = "dev.sigstore.bundle.predicateType"
	// PredicateCosignSign is the predicate type of cosign v3's signature
	// of an image.
	PredicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
	// emptyConfig is the config media type of an artifact manifest; a
	// registry that predates artifactType reports it as the referrer's type.
	emptyConfig = "application/vnd.oci.empty.v1+json"
)

// bundleAttachment is one sigstore bundle attached to the image.
type bundleAttachment struct {
	desc          v1.Descriptor // the referrer manifest
	predicateType string        // the referrer's hint, may be empty
	bundle        *sgbundle.Bundle
	err           error
}

// referrers lists the image's referrers that may be sigstore bundles: from
// the registry's referrers API or, where it has none (404), from the
// referrers tag schema (sha256-<hex>). No more than MaxAttachments are
// taken, counted before each descriptor is decoded.
func (r *repo) referrers(ctx context.Context, digest string) ([]v1.Descriptor, error) {
	accept := []string{string(types.OCIImageIndex)}
	body, _, err := r.get(ctx, fmt.Sprintf("%s://%s/v2/%s/referrers/%s", r.name.Registry.Scheme(), r.name.RegistryStr(), r.name.RepositoryStr(), digest), accept, r.limits.MaxManifestBytes)
	where := "the referrers API"
	if errors.Is(err, errNotFound) {
		tag := strings.Replace(digest, ":", "-", 1)
		m, terr := r.manifest(ctx, tag, accept)
		if errors.Is(terr, errNotFound) {
			return nil, nil
		}
		if terr != nil {
			return nil, terr
		}
		body, err, where = m.Bytes, nil, "the referrers tag "+tag
	}
	if err != nil {
		return nil, err
	}
	descs, err := r.boundedList(body, "manifests", where)
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, d := range descs {
		at := d.ArtifactType
		if strings.HasPrefix(at, bundleMediaTypePrefix) || at == "" || at == emptyConfig {
			out = append(out, d)
		}
	}
	return out, nil
}

// boundedList decodes the descriptor list under key of a manifest or
// index, refusing more than MaxAttachments.
func (r *repo) boundedList(body []byte, key, where string) ([]v1.Descriptor, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %s of %s is not JSON: %v", ErrRegistry, r.name.RegistryStr(), where, r.name, err)
	}
	list, ok := doc[key]
	if !ok || string(list) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(list))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("%w: %s: %s of %s has no %s list", ErrRegistry, r.name.RegistryStr(), where, r.name, key)
	}
	var out []v1.Descriptor
	for dec.More() {
		if len(out) == r.limits.MaxAttachments {
			return nil, fmt.Errorf("%w: %s: %s of %s lists more than %d entries; refusing to read them", ErrRegistry, r.name.RegistryStr(), where, r.name, r.limits.MaxAttachments)
		}
		var d v1.Descriptor
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: %s: %s of %s has a malformed entry: %v", ErrRegistry, r.name.RegistryStr(), where, r.name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// fetchBundles reads the sigstore bundles attached to digest. A referrer
// that is not a bundle is skipped; one that cannot be read within the
// limits, names another subject or does not parse is kept with its error,
// so a failure can say what was found.
func (v *Verifier) fetchBundles(ctx context.Context, s *repo, digest string) ([]bundleAttachment, error) {
	descs, err := s.referrers(ctx, digest)
	if err != nil {
		return nil, err
	}
	var out []bundleAttachment
	for _, d := range descs {
		a, isBundle, err := v.fetchBundle(ctx, s, digest, d)
		if err != nil && (ctx.Err() != nil || errors.Is(err, errBudget) || errors.Is(err, errBusy)) {
			return nil, err
		}
		if !isBundle {
			continue
		}
		a.err = err
		out = append(out, a)
	}
	return out, nil
}

// fetchBundle reads one referrer: its manifest (by digest, hash-checked),
// which must name digest as its subject and hold one bundle layer, and
// that layer (bounded, hash-checked), parsed as a sigstore bundle.
func (v *Verifier) fetchBundle(ctx context.Context, s *repo, digest string, d v1.Descriptor) (bundleAttachment, bool, error) {
	a := bundleAttachment{desc: d}
	if d.Digest.Algorithm != "sha256" || !digestPattern.MatchString(d.Digest.String()) {
		return a, strings.HasPrefix(d.ArtifactType, bundleMediaTypePrefix), fmt.Errorf("a referrer has the digest %q; only sha256 is accepted", d.Digest)
	}
	m, err := s.manifest(ctx, d.Digest.String(), []string{string(types.OCIManifestSchema1)})
	if err != nil {
		return a, strings.HasPrefix(d.ArtifactType, bundleMediaTypePrefix), err
	}
	var mf struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			ArtifactType string `json:"artifactType"`
		} `json:"config"`
		Subject     *v1.Descriptor    `json:"subject"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(m.Bytes, &mf); err != nil {
		return a, false, nil
	}
	layers, err := s.boundedList(m.Bytes, "layers", "referrer "+d.Digest.String())
	if err != nil {
		return a, true, err
	}
	var layer *v1.Descriptor
	for i := range layers {
		if strings.HasPrefix(string(layers[i].MediaType), bundleMediaTypePrefix) {
			if layer != nil {
				return a, true, fmt.Errorf("referrer %s holds more than one bundle", d.Digest)
			}
			layer = &layers[i]
		}
	}
	if layer == nil {
		return a, false, nil // another kind of referrer (an SBOM, a legacy layout)
	}
	a.predicateType = mf.Annotations[AnnotationBundlePredicateType]
	if mf.Subject == nil || mf.Subject.Digest.String() != digest {
		return a, true, fmt.Errorf("referrer %s does not name %s as its subject", d.Digest, digest)
	}
	raw, err := s.blob(ctx, *layer, v.limits.MaxAttachmentBytes)
	if err != nil {
		return a, true, err
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return a, true, fmt.Errorf("referrer %s: the bundle does not parse: %v", d.Digest, err)
	}
	a.bundle = &b
	return a, true, nil
}

// bundleVerifier checks bundles for one authority: sigstore-go's verifier
// over the authority's trust material, with the identities a keyless
// authority accepts (none: the bundle must be signed by the key).
type bundleVerifier struct {
	verifier   *verify.Verifier
	identities []verify.PolicyOption
}

// keyBundleVerifier verifies bundles signed with a key: the signature
// alone, as for legacy signatures from a key (no transparency log, no
// timestamps required).
func keyBundleVerifier(v signature.Verifier) (*bundleVerifier, error) {
	key := root.NewExpiringKey(v, time.Time{}, time.Time{}) // a key authority has no validity period
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
	sv, err := verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
	if err != nil {
		return nil, err
	}
	return &bundleVerifier{verifier: sv}, nil
}

// verifyBundle verifies one bundle against the image digest and returns
// the in-toto statement it signs (checked by verifyStatement's rules) and,
// for a certificate, its identity.
func (bv *bundleVerifier) verifyBundle(b *sgbundle.Bundle, h v1.Hash) (payload []byte, identity string, err error) {
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		return nil, "", err
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, "", errors.New("the bundle holds a message signature, not a DSSE envelope; cosign signs images with DSSE")
	}
	if env.GetPayloadType() != ctypes.IntotoPayloadType {
		return nil, "", fmt.Errorf("the envelope's payload type is %q, not %q", env.GetPayloadType(), ctypes.IntotoPayloadType)
	}
	policy := []verify.PolicyOption{verify.WithKey()}
	if len(bv.identities) > 0 {
		policy = bv.identities
	}
	res, err := bv.verifier.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), policy...))
	if err != nil {
		if strings.Contains(err.Error(), "not enough verified log entries") {
			err = fmt.Errorf("%w (the bundle carries no entry of a Rekor log the authority trusts, and it requires one: transparency: Require)", err)
		}
		return nil, "", err
	}
	if res.Signature != nil && res.Signature.Certificate != nil {
		c := res.Signature.Certificate
		identity = certSummary(c.Issuer, c.SubjectAlternativeName)
	}
	return env.GetPayload(), identity, nil
}
