package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	slsa02 "github.com/in-toto/attestation/go/predicates/provenance/v02"
	slsa1 "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"google.golang.org/protobuf/encoding/protojson"
)

// RequirementSignature names the signature requirement in failures.
const RequirementSignature = "signature"

// Result is what verifying one digest under one policy established.
type Result struct {
	Digest string `json:"digest"`
	Policy string `json:"policy"`
	// Signatures are the authorities whose signatures over the digest verified.
	Signatures []VerifiedSignature `json:"signatures,omitempty"`
	// Attestations are the verified statements, by requirement.
	Attestations []VerifiedAttestation `json:"attestations,omitempty"`
	// Failures are the requirements not met; empty means verified.
	Failures []Failure `json:"failures,omitempty"`
}

// Verified reports whether every requirement was met.
func (r *Result) Verified() bool { return len(r.Failures) == 0 }

func (r *Result) size() int64 {
	n := int64(256 + len(r.Digest) + len(r.Policy))
	for _, a := range r.Attestations {
		n += int64(len(a.Statement) + 128)
	}
	for _, f := range r.Failures {
		n += int64(len(f.Message) + 64)
	}
	return n + int64(len(r.Signatures)*96)
}

// VerifiedSignature is one verified signature.
type VerifiedSignature struct {
	Authority string `json:"authority"`
	// Identity is the certificate's issuer and subject for keyless signatures.
	Identity string `json:"identity,omitempty"`
}

// VerifiedAttestation is one verified in-toto statement.
type VerifiedAttestation struct {
	Requirement   string          `json:"requirement"`
	Authority     string          `json:"authority"`
	PredicateType string          `json:"predicateType"`
	Statement     json.RawMessage `json:"statement"`
}

// Failure is one requirement not met, with what was found instead.
type Failure struct {
	Requirement string `json:"requirement"`
	Message     string `json:"message"`
}

func (f Failure) String() string { return f.Requirement + ": " + f.Message }

// Verifier fetches and verifies signatures and attestations.
type Verifier struct {
	registry *Registry
	limits   Limits
}

// NewVerifier returns a verifier reading through the registry client.
func NewVerifier(r *Registry) *Verifier { return &Verifier{registry: r, limits: r.limits} }

// Registry returns the verifier's registry client.
func (v *Verifier) Registry() *Registry { return v.registry }

// Verify checks the digest of repo against the policy. An error means the
// registry could not be read (nothing was decided); a Result with failures
// means the image does not meet the policy.
func (v *Verifier) Verify(ctx context.Context, repo name.Repository, digest string, p *Policy, kc authn.Keychain) (*Result, error) {
	h, err := v1.NewHash(digest)
	if err != nil || !digestPattern.MatchString(digest) {
		return nil, fmt.Errorf("%w: digest %q", ErrInvalidImage, digest)
	}
	res := &Result{Digest: digest, Policy: p.Name}
	// Each authority's signatures are in the image's repository or in its
	// own signaturesRepository: each repository is read once.
	byRepo := map[string]*stored{}
	for _, a := range p.authorities {
		r := a.signatures(repo)
		if byRepo[r.Name()] != nil {
			continue
		}
		s, err := v.registry.open(ctx, r, kc)
		if err != nil {
			return nil, err
		}
		defer s.close() // what was read stays counted in flight until the verification ends
		st, err := v.read(ctx, s, digest, p)
		if err != nil {
			return nil, err
		}
		byRepo[r.Name()] = st
	}
	v.verifySignatures(ctx, res, byRepo, repo, h, p)
	for _, req := range p.requirements {
		v.verifyAttestations(ctx, res, byRepo, repo, h, p, req)
	}
	return res, ctx.Err()
}

// signatures is the repository holding the authority's signatures of an
// image in repo.
func (a *authority) signatures(repo name.Repository) name.Repository {
	if a.repository != nil {
		return *a.repository
	}
	return repo
}

// stored is what one repository holds for a digest, everywhere cosign puts
// it: the legacy tags (.sig, .att) and sigstore bundles attached as
// referrers (as spec.formats allows).
type stored struct {
	sigs, atts []attachment
	bundles    []bundleAttachment
}

func (v *Verifier) read(ctx context.Context, s *repo, digest string, p *Policy) (*stored, error) {
	st := &stored{}
	var err error
	if p.legacy {
		if st.sigs, err = v.fetch(ctx, s, digest, "sig", ctypes.SimpleSigningMediaType); err != nil {
			return nil, err
		}
		if len(p.requirements) > 0 {
			if st.atts, err = v.fetch(ctx, s, digest, "att", ctypes.DssePayloadType); err != nil {
				return nil, err
			}
		}
	}
	if p.bundles {
		if st.bundles, err = v.fetchBundles(ctx, s, digest); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// verifyBundles returns the first statement of predicate type pt that a
// bundle signed by authority a verifies for the image, adding why the
// others did not to reasons.
func verifyBundles(a *authority, bundles []bundleAttachment, h v1.Hash, pt string, reasons *[]string) (statement, predicate json.RawMessage, identity string, ok bool) {
	for _, b := range bundles {
		if b.err != nil || (b.predicateType != "" && b.predicateType != pt) {
			continue
		}
		raw, id, err := a.bundle.verifyBundle(b.bundle, h)
		if err != nil {
			*reasons = append(*reasons, fmt.Sprintf("%s: bundle %s: %s", a.name, b.desc.Digest, oneLine(err)))
			continue
		}
		st, pred, err := statementOf(raw, h, pt)
		if err != nil {
			if b.predicateType != "" || !errors.Is(err, errOtherPredicate) { // unhinted: another kind of statement
				*reasons = append(*reasons, fmt.Sprintf("bundle %s signed by %s but %s", b.desc.Digest, a.name, oneLine(err)))
			}
			continue
		}
		return st, pred, id, true
	}
	return nil, nil, "", false
}

func (v *Verifier) verifySignatures(ctx context.Context, res *Result, byRepo map[string]*stored, repo name.Repository, h v1.Hash, p *Policy) {
	var reasons []string
	for _, a := range p.authorities {
		st := byRepo[a.signatures(repo).Name()]
		verified := false
		for _, sig := range st.sigs {
			if sig.err != nil {
				continue
			}
			co := a.opts
			co.ClaimVerifier = cosign.SimpleClaimVerifier
			if err := logged(a, sig.sig); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s: %s", a.name, err))
				continue
			}
			if _, err := cosign.VerifyImageSignature(ctx, sig.sig, h, &co); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s: %s", a.name, oneLine(err)))
				continue
			}
			res.Signatures = append(res.Signatures, VerifiedSignature{Authority: a.name, Identity: certIdentity(sig.sig)})
			verified = true
			break
		}
		if !verified {
			if _, _, id, ok := verifyBundles(a, st.bundles, h, PredicateCosignSign, &reasons); ok {
				res.Signatures = append(res.Signatures, VerifiedSignature{Authority: a.name, Identity: id})
			}
		}
	}
	if len(res.Signatures) > 0 {
		return
	}
	res.Failures = append(res.Failures, Failure{Requirement: RequirementSignature, Message: notFound("signature", found(byRepo, func(st *stored) []attachment { return st.sigs }, PredicateCosignSign), reasons, p)})
}

func (v *Verifier) verifyAttestations(ctx context.Context, res *Result, byRepo map[string]*stored, repo name.Repository, h v1.Hash, p *Policy, req requirement) {
	var reasons []string
	ok := false
	for _, a := range p.authorities {
		if ok {
			break
		}
		ok = verifyLegacyAttestation(ctx, res, byRepo[a.signatures(repo).Name()].atts, a, h, req, &reasons)
	}
	for _, a := range p.authorities {
		if ok {
			break
		}
		st, predicate, _, verified := verifyBundles(a, byRepo[a.signatures(repo).Name()].bundles, h, req.predicateType, &reasons)
		if !verified {
			continue
		}
		if req.producer != nil {
			if err := req.producer.check(req.predicateType, predicate, h); err != nil {
				reasons = append(reasons, fmt.Sprintf("signed by %s but %s", a.name, oneLine(err)))
				continue
			}
		}
		res.Attestations = append(res.Attestations, VerifiedAttestation{Requirement: req.name, Authority: a.name, PredicateType: req.predicateType, Statement: st})
		ok = true
	}
	if !ok {
		res.Failures = append(res.Failures, Failure{Requirement: req.name, Message: notFound(fmt.Sprintf("attestation of type %s", req.predicateType), found(byRepo, func(st *stored) []attachment { return st.atts }, req.predicateType), reasons, p)})
	}
}

// attached is what was found for a requirement: how many attachments, and
// why those that could not be read could not.
type attached struct {
	count      int
	unreadable []string
}

// found counts, over every repository read, the legacy attachments (of
// one kind) and the bundles that may be of predicate type pt.
func found(byRepo map[string]*stored, legacy func(*stored) []attachment, pt string) attached {
	var f attached
	for _, st := range byRepo {
		for _, a := range legacy(st) {
			f.count++
			if a.err != nil {
				f.unreadable = append(f.unreadable, oneLine(a.err))
			}
		}
		for _, b := range st.bundles {
			if b.predicateType != "" && b.predicateType != pt {
				continue
			}
			f.count++
			if b.err != nil {
				f.unreadable = append(f.unreadable, oneLine(b.err))
			}
		}
	}
	return f
}

// errOtherPredicate: a verified statement of another predicate type.
var errOtherPredicate = errors.New("the predicate type is")

// statementOf checks a verified in-toto statement: its type, a subject
// with the image's digest, the predicate type, and that the predicate
// parses. It returns the statement and its predicate.
func statementOf(raw []byte, h v1.Hash, predicateType string) (json.RawMessage, json.RawMessage, error) {
	var st struct {
		Type    string `json:"_type"`
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, nil, fmt.Errorf("the statement is not JSON: %w", err)
	}
	switch st.Type {
	case "https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1":
	default:
		return nil, nil, fmt.Errorf("the statement's _type is %q, not an in-toto statement", st.Type)
	}
	subject := false
	for _, s := range st.Subject {
		if s.Digest["sha256"] == h.Hex {
			subject = true
		}
	}
	if !subject {
		return nil, nil, fmt.Errorf("no subject of the statement has the digest %s", h)
	}
	if st.PredicateType != predicateType {
		return nil, nil, fmt.Errorf("%w %q", errOtherPredicate, st.PredicateType)
	}
	if err := parsePredicate(st.PredicateType, st.Predicate); err != nil {
		return nil, nil, fmt.Errorf("the %s predicate does not parse: %w", st.PredicateType, err)
	}
	return raw, st.Predicate, nil
}

func parsePredicate(predicateType string, b json.RawMessage) error {
	if len(b) == 0 || b[0] != '{' {
		return errors.New("the predicate is not a JSON object")
	}
	un := protojson.UnmarshalOptions{DiscardUnknown: true}
	switch predicateType {
	case slsa.PredicateV02:
		var p slsa02.Provenance
		if err := un.Unmarshal(b, &p); err != nil {
			return err
		}
		if p.GetBuilder().GetId() == "" {
			return errors.New("builder.id is empty")
		}
	case slsa.PredicateV1:
		var p slsa1.Provenance
		if err := un.Unmarshal(b, &p); err != nil {
			return err
		}
		return p.Validate()
	default:
		var m map[string]any
		return json.Unmarshal(b, &m)
	}
	return nil
}

// notFound explains a missing requirement from what the layers held.
func notFound(what string, found attached, reasons []string, p *Policy) string {
	names := make([]string, 0, len(p.authorities))
	for _, a := range p.authorities {
		names = append(names, a.name)
	}
	if !p.legacy || !p.bundles {
		only := "legacy .sig/.att tags"
		if p.bundles {
			only = "sigstore bundles attached as referrers"
		}
		what += " in " + only + " (spec.formats)"
	}
	if found.count == 0 {
		return fmt.Sprintf("no %s is attached (authorities: %s)", what, strings.Join(names, ", "))
	}
	reasons = append(reasons, found.unreadable...)
	sort.Strings(reasons)
	reasons = compact(reasons)
	const show = 3
	more := ""
	if len(reasons) > show {
		more = fmt.Sprintf(" (and %d more)", len(reasons)-show)
		reasons = reasons[:show]
	}
	return fmt.Sprintf("no %s verifies with the authorities %s among %d attached: %s%s", what, strings.Join(names, ", "), found.count, strings.Join(reasons, "; "), more)
}

func compact(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
