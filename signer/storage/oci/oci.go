// Package oci stores signatures and attestations in an OCI registry in
// cosign's layout: the `sha256-<hex>.sig` and `sha256-<hex>.att` tags of the
// image's repository (or of storage.oci.repository), so `cosign verify` and
// `cosign verify-attestation` find them.
package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Store writes to registries with the given remote options (transport) and
// keychain.
type Store struct {
	remote   []remote.Option
	keychain authn.Keychain
	// repository, when set, receives signatures and attestations instead of
	// the image's own repository (chains-config storage.oci.repository).
	repository *name.Repository
}

// New returns a store. repository may be empty; keychain may be nil
// (anonymous).
func New(repository string, keychain authn.Keychain, opts ...remote.Option) (*Store, error) {
	if keychain == nil {
		keychain = authn.NewMultiKeychain()
	}
	s := &Store{remote: opts, keychain: keychain}
	if repository != "" {
		r, err := name.NewRepository(repository)
		if err != nil {
			return nil, fmt.Errorf("storage.oci.repository %q: %w", repository, err)
		}
		s.repository = &r
	}
	return s, nil
}

// With returns a store that offers the credentials of kc first (a run's
// pull secrets), then its own.
func (s *Store) With(kc authn.Keychain) *Store {
	c := *s
	c.keychain = authn.NewMultiKeychain(kc, s.keychain)
	return &c
}

func (s *Store) ociOptions(ctx context.Context) []ociremote.Option {
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(s.keychain)}, s.remote...)
	o := []ociremote.Option{ociremote.WithRemoteOptions(opts...)}
	if s.repository != nil {
		o = append(o, ociremote.WithTargetRepository(*s.repository))
	}
	return o
}

func (s *Store) target(img name.Digest) name.Repository {
	if s.repository != nil {
		return *s.repository
	}
	return img.Repository
}

// SimpleSigningPayload returns the payload `cosign sign` signs for an image:
// the "cosign container image signature" JSON naming its digest.
func SimpleSigningPayload(img name.Digest) ([]byte, error) {
	return payload.Cosign{Image: img}.MarshalJSON()
}

// StoreSignature attaches a simple-signing signature (payload and the raw
// signature over it) to an image. It is idempotent: when the image already
// carries a signature over the same payload, nothing is written, so a
// signer restarted in the middle of a run does not sign an image twice.
func (s *Store) StoreSignature(ctx context.Context, img name.Digest, simpleSigning, sig []byte, m Material) error {
	se, err := ociremote.SignedEntity(img, s.ociOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("reading %s from the registry: %w", img, err)
	}
	if sigs, err := se.Signatures(); err == nil {
		if has, err := hasPayload(sigs, func(p []byte) bool { return bytes.Equal(p, simpleSigning) }); err != nil {
			return fmt.Errorf("reading the signatures of %s: %w", img, err)
		} else if has {
			return nil
		}
	}
	o, err := static.NewSignature(simpleSigning, base64.StdEncoding.EncodeToString(sig), m.options()...)
	if err != nil {
		return fmt.Errorf("building the signature: %w", err)
	}
	se, err = mutate.AttachSignatureToEntity(se, o)
	if err != nil {
		return fmt.Errorf("attaching the signature: %w", err)
	}
	if err := ociremote.WriteSignatures(s.target(img), se, s.ociOptions(ctx)...); err != nil {
		return fmt.Errorf("pushing the signature of %s to %s: %w", img, s.target(img), err)
	}
	return nil
}

// StoreAttestation attaches a DSSE envelope (an in-toto statement about the
// image, signed) to an image. It is idempotent: an attestation of the same
// statement already attached is not attached again.
func (s *Store) StoreAttestation(ctx context.Context, img name.Digest, envelope []byte, m Material) error {
	se, err := ociremote.SignedEntity(img, s.ociOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("reading %s from the registry: %w", img, err)
	}
	statement, err := envelopePayload(envelope)
	if err != nil {
		return err
	}
	if atts, err := se.Attestations(); err == nil {
		same := func(p []byte) bool {
			other, err := envelopePayload(p)
			return err == nil && sameJSON(other, statement)
		}
		if has, err := hasPayload(atts, same); err != nil {
			return fmt.Errorf("reading the attestations of %s: %w", img, err)
		} else if has {
			return nil
		}
	}
	att, err := static.NewAttestation(envelope, append(m.options(), static.WithLayerMediaType(types.DssePayloadType))...)
	if err != nil {
		return fmt.Errorf("building the attestation: %w", err)
	}
	se, err = mutate.AttachAttestationToEntity(se, att)
	if err != nil {
		return fmt.Errorf("attaching the attestation: %w", err)
	}
	if err := ociremote.WriteAttestations(s.target(img), se, s.ociOptions(ctx)...); err != nil {
		return fmt.Errorf("pushing the attestation of %s to %s: %w", img, s.target(img), err)
	}
	return nil
}

// Material is what a signature layer carries besides the signature, in
// cosign's annotations: a keyless signer's certificate and chain (PEM), and
// the Rekor bundle of its transparency log entry.
type Material struct {
	Cert, Chain []byte
	Rekor       *cbundle.RekorBundle
}

func (m Material) options() []static.Option {
	var opts []static.Option
	if len(m.Cert) > 0 {
		opts = append(opts, static.WithCertChain(m.Cert, m.Chain))
	}
	if m.Rekor != nil {
		opts = append(opts, static.WithBundle(m.Rekor))
	}
	return opts
}

// hasPayload reports whether any signature's payload satisfies match.
func hasPayload(sigs oci.Signatures, match func([]byte) bool) (bool, error) {
	list, err := sigs.Get()
	if err != nil {
		return false, err
	}
	for _, sg := range list {
		p, err := sg.Payload()
		if err != nil {
			return false, err
		}
		if match(p) {
			return true, nil
		}
	}
	return false, nil
}

// sameJSON reports whether two JSON documents are equal as JSON (another
// signer binary may have spaced the same statement differently).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// envelopePayload returns the statement a DSSE envelope signs.
func envelopePayload(envelope []byte) ([]byte, error) {
	var e struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(envelope, &e); err != nil {
		return nil, fmt.Errorf("reading the DSSE envelope: %w", err)
	}
	return base64.StdEncoding.DecodeString(e.Payload)
}
