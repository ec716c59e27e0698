package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
)

// cosign's legacy layout: simple-signing signatures in the sha256-<hex>.sig
// tag and DSSE attestations in .att, each a layer whose annotations carry
// the signature, certificate, chain and Rekor bundle; verified with
// cosign's library.

// attachment is one fetched signature or attestation layer.
type attachment struct {
	desc v1.Descriptor
	sig  oci.Signature
	err  error
}

// fetch reads the layers of an attachment manifest. Layers of another
// media type are skipped; a layer that cannot be read within the limits is
// kept with its error, so a failure can say what was found.
func (v *Verifier) fetch(ctx context.Context, s *repo, digest, suffix, mediaType string) ([]attachment, error) {
	descs, err := s.attachments(ctx, digest, suffix)
	if err != nil {
		return nil, err
	}
	out := make([]attachment, 0, len(descs))
	for _, d := range descs {
		if string(d.MediaType) != mediaType {
			continue
		}
		a := attachment{desc: d}
		payload, err := s.blob(ctx, d, v.limits.MaxAttachmentBytes)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errBudget) || errors.Is(err, errBusy) {
				return nil, err
			}
			a.err = err
			out = append(out, a)
			continue
		}
		a.sig, a.err = staticSignature(payload, d)
		out = append(out, a)
	}
	return out, nil
}

// staticSignature rebuilds a layer as cosign reads it: the certificate,
// chain and Rekor bundle come from the layer's annotations.
func staticSignature(payload []byte, d v1.Descriptor) (oci.Signature, error) {
	ann := maps.Clone(d.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	opts := []static.Option{static.WithAnnotations(ann), static.WithLayerMediaType(d.MediaType)}
	if cert := ann[static.CertificateAnnotationKey]; cert != "" {
		opts = append(opts, static.WithCertChain([]byte(cert), []byte(ann[static.ChainAnnotationKey])))
	}
	if b := ann[static.BundleAnnotationKey]; b != "" {
		rb, err := rekorBundle(b)
		if err != nil {
			return nil, err
		}
		opts = append(opts, static.WithBundle(rb))
	}
	return static.NewSignature(payload, ann[static.SignatureAnnotationKey], opts...)
}

// rekorBundle decodes a layer's Rekor bundle and checks the shape cosign's
// verification assumes without checking (it type-asserts the body): an
// attacker's "{}" or a body of the wrong JSON type is refused here, with a
// message, instead of crashing cosign.
func rekorBundle(s string) (*bundle.RekorBundle, error) {
	var rb bundle.RekorBundle
	if err := json.Unmarshal([]byte(s), &rb); err != nil {
		return nil, fmt.Errorf("the layer's Rekor bundle is not a JSON object of the bundle's fields: %w", err)
	}
	body, ok := rb.Payload.Body.(string)
	switch {
	case !ok:
		return nil, fmt.Errorf("the layer's Rekor bundle has a body of JSON type %s, not a base64 string", jsonType(rb.Payload.Body))
	case body == "":
		return nil, errors.New("the layer's Rekor bundle has no body")
	case len(rb.SignedEntryTimestamp) == 0:
		return nil, errors.New("the layer's Rekor bundle has no signed entry timestamp")
	case rb.Payload.LogID == "":
		return nil, errors.New("the layer's Rekor bundle names no log")
	}
	return &rb, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// verifyLegacyAttestation looks for an attestation of the requirement in
// the legacy layout that authority a signed.
func verifyLegacyAttestation(ctx context.Context, res *Result, atts []attachment, a *authority, h v1.Hash, req requirement, reasons *[]string) bool {
	for _, att := range atts {
		if att.err != nil {
			continue
		}
		if hint := att.desc.Annotations["predicateType"]; hint != "" && hint != req.predicateType {
			*reasons = append(*reasons, fmt.Sprintf("an attestation of type %q", hint))
			continue
		}
		co := a.opts
		co.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
		if err := logged(a, att.sig); err != nil {
			*reasons = append(*reasons, fmt.Sprintf("%s: %s", a.name, err))
			continue
		}
		if _, err := cosign.VerifyBlobAttestation(ctx, att.sig, h, &co); err != nil {
			*reasons = append(*reasons, fmt.Sprintf("%s: %s", a.name, oneLine(err)))
			continue
		}
		st, predicate, err := statement(att.sig, h, req.predicateType)
		if err != nil {
			*reasons = append(*reasons, fmt.Sprintf("signed by %s but %s", a.name, oneLine(err)))
			continue
		}
		if req.producer != nil {
			if err := req.producer.check(req.predicateType, predicate, h); err != nil {
				*reasons = append(*reasons, fmt.Sprintf("signed by %s but %s", a.name, oneLine(err)))
				continue
			}
		}
		res.Attestations = append(res.Attestations, VerifiedAttestation{Requirement: req.name, Authority: a.name, PredicateType: req.predicateType, Statement: st})
		return true
	}
	return false
}

// statement decodes a verified envelope's statement and checks what
// cosign's claim verifier does not: the statement type, the predicate type
// and that the predicate parses. It returns the statement and its predicate.
func statement(sig oci.Signature, h v1.Hash, predicateType string) (json.RawMessage, json.RawMessage, error) {
	payload, err := sig.Payload()
	if err != nil {
		return nil, nil, err
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, nil, fmt.Errorf("the envelope is not JSON: %w", err)
	}
	if env.PayloadType != ctypes.IntotoPayloadType {
		return nil, nil, fmt.Errorf("the envelope's payload type is %q, not %q", env.PayloadType, ctypes.IntotoPayloadType)
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("the envelope's payload is not base64: %w", err)
	}
	return statementOf(raw, h, predicateType)
}

// logged says why a layer cannot meet an authority that requires the log:
// cosign's own message for a missing Rekor bundle is "offline verification
// failed".
func logged(a *authority, sig oci.Signature) error {
	if a.opts.IgnoreTlog {
		return nil
	}
	if b, err := sig.Bundle(); err == nil && b != nil {
		return nil
	}
	return errors.New("the signature carries no transparency log entry (Rekor bundle), and the authority requires one (transparency: Require)")
}

func certIdentity(sig oci.Signature) string {
	cert, err := sig.Cert()
	if err != nil || cert == nil {
		return ""
	}
	ce := cosign.CertExtensions{Cert: cert}
	sans := cryptoSANs(cert)
	return fmt.Sprintf("%s %s", ce.GetIssuer(), strings.Join(sans, ","))
}
