package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tollgate-dev/tollgate/policy/images"
)

// maxReferrers bounds the referrers read to find an existing bundle.
const maxReferrers = 100

// SignStatement is the statement cosign v3 signs for an image: its digest
// as the subject, PredicateCosignSign, an empty predicate.
func SignStatement(img name.Digest) ([]byte, error) {
	alg, hex, ok := strings.Cut(img.DigestStr(), ":")
	if !ok {
		return nil, fmt.Errorf("%s has no digest", img)
	}
	return json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"digest": map[string]string{alg: hex}}},
		"predicateType": images.PredicateCosignSign,
		"predicate":     map[string]any{},
	})
}

// Bundle wraps a DSSE envelope (JSON, as sign.Signer.Envelope returns it)
// in a sigstore bundle: signed by a key (the public key's hint, the SHA-256
// of its DER, base64) — what `cosign attest --key` writes — or, given
// certDER, by a keyless signer's certificate; with the envelope's
// transparency log entries (JSON, as sign.Log.DSSE returns them), or none.
func Bundle(envelope, publicKeyDER, certDER []byte, tlogEntries ...json.RawMessage) ([]byte, error) {
	var env json.RawMessage
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("reading the DSSE envelope: %w", err)
	}
	if tlogEntries == nil {
		tlogEntries = []json.RawMessage{}
	}
	material := map[string]any{"tlogEntries": tlogEntries}
	if len(certDER) > 0 {
		material["certificate"] = map[string]any{"rawBytes": base64.StdEncoding.EncodeToString(certDER)}
	} else {
		hint := sha256.Sum256(publicKeyDER)
		material["publicKey"] = map[string]any{"hint": base64.StdEncoding.EncodeToString(hint[:])}
	}
	return json.Marshal(map[string]any{
		"mediaType":            images.BundleMediaType,
		"verificationMaterial": material,
		"dsseEnvelope":         env,
	})
}

// StoreBundle attaches a bundle to an image as an OCI 1.1 referrer —
// through the registry's referrers API or, where it has none, the
// sha256-<hex> tag schema (go-containerregistry keeps that index). It is
// idempotent: when a referrer bundle of the image already signs the same
// statement, nothing is written, so a signer restarted in the middle of a
// run does not attach it twice.
func (s *Store) StoreBundle(ctx context.Context, img name.Digest, bundle, statement []byte, predicateType string) error {
	repo := s.target(img)
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(s.keychain)}, s.remote...)
	subject := repo.Digest(img.DigestStr())
	has, err := hasBundle(subject, statement, opts)
	if err != nil {
		return fmt.Errorf("reading the referrers of %s: %w", img, err)
	}
	if has {
		return nil
	}
	if err := AttachBundle(repo, img, bundle, predicateType, opts...); err != nil {
		return fmt.Errorf("pushing the bundle of %s to %s: %w", img, repo, err)
	}
	return nil
}

// AttachBundle writes bundle into repo as an OCI 1.1 referrer of img, as
// cosign v3 does: an artifact manifest with the bundle as its one layer,
// img as its subject and cosign's annotations (predicate type and content).
func AttachBundle(repo name.Repository, img name.Digest, bundle []byte, predicateType string, opts ...remote.Option) error {
	desc, err := remote.Head(img, opts...)
	if err != nil {
		return fmt.Errorf("reading %s from the registry: %w", img, err)
	}
	art, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer(bundle, types.MediaType(images.BundleMediaType))})
	if err != nil {
		return err
	}
	ann := map[string]string{images.AnnotationBundleContent: "dsse-envelope"}
	if predicateType != "" {
		ann[images.AnnotationBundlePredicateType] = predicateType
	}
	art = mutate.MediaType(art, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, "application/vnd.oci.empty.v1+json")
	art = mutate.Annotations(art, ann).(v1.Image)
	art = mutate.Subject(art, v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}).(v1.Image)
	d, err := art.Digest()
	if err != nil {
		return err
	}
	return remote.Write(repo.Digest(d.String()), art, opts...)
}

// hasBundle reports whether a referrer of subject is a bundle signing the
// same statement.
func hasBundle(subject name.Digest, statement []byte, opts []remote.Option) (bool, error) {
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return false, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return false, err
	}
	if len(m.Manifests) > maxReferrers {
		return false, fmt.Errorf("%s has %d referrers, more than the %d the signer reads", subject, len(m.Manifests), maxReferrers)
	}
	for _, d := range m.Manifests {
		img, err := remote.Image(subject.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return false, err
		}
		layers, err := img.Layers()
		if err != nil {
			return false, err
		}
		for _, l := range layers {
			mt, err := l.MediaType()
			if err != nil || !strings.HasPrefix(string(mt), "application/vnd.dev.sigstore.bundle") {
				continue
			}
			if same, err := signsStatement(l, statement); err != nil {
				return false, err
			} else if same {
				return true, nil
			}
		}
	}
	return false, nil
}

// signsStatement reports whether a bundle layer's envelope carries statement.
func signsStatement(l v1.Layer, statement []byte) (bool, error) {
	rc, err := l.Compressed()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 8<<20))
	if err != nil {
		return false, err
	}
	var b struct {
		DSSEEnvelope json.RawMessage `json:"dsseEnvelope"`
	}
	if json.Unmarshal(raw, &b) != nil || len(b.DSSEEnvelope) == 0 {
		return false, nil
	}
	payload, err := envelopePayload(b.DSSEEnvelope)
	if err != nil {
		return false, nil
	}
	return sameJSON(payload, statement), nil
}
