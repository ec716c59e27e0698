package images

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/tollgate-dev/tollgate/policy/rego"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"

	// The cloud KMS providers, in-process.
	_ "github.com/tollgate-dev/tollgate/internal/kmsproviders"
)

// Keys of the Secrets a policy may reference.
const (
	DefaultPublicKeyKey = "cosign.pub"
	FulcioRootsKey      = "fulcio.pem"
	RekorPublicKeyKey   = "rekor.pub"
	CTLogPublicKeyKey   = "ctlog.pub"
)

// Deps are the sources of trust material a policy may reference.
type Deps struct {
	// Secret returns the data of a Secret. Required only for policies that
	// reference Secrets.
	Secret func(ctx context.Context, namespace, name string) (map[string][]byte, error)
	// KMS returns the public key of a sigstore KMS reference. Nil: KMSPublicKey.
	KMS func(ctx context.Context, ref string) (crypto.PublicKey, error)
	// ConfigMaps reads ConfigMaps that Rego modules reference (nil: they
	// cannot be referenced).
	ConfigMaps rego.ConfigMaps
}

// KMSPublicKey asks a sigstore KMS provider (or plugin) for a public key.
func KMSPublicKey(ctx context.Context, ref string) (crypto.PublicKey, error) {
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return sv.PublicKey()
}

// Policy is a compiled ClusterImagePolicy. It is immutable.
type Policy struct {
	Name       string
	UID        string
	Generation int64
	Mode       v1alpha1.ImageMode
	Unmatched  v1alpha1.UnmatchedAction

	selector     labels.Selector
	globs        []*Glob
	authorities  []*authority
	requirements []requirement
	rego         *rego.Program // policy-level user rules, or nil
	// legacy and bundles: the layouts read (spec.formats).
	legacy, bundles bool
	// fingerprint identifies the policy and its resolved trust material:
	// results verified under one fingerprint are never served under another.
	fingerprint string
}

type authority struct {
	name string
	opts cosign.CheckOpts
	// bundle verifies sigstore bundles; nil: this authority verifies
	// none (keyless, until it is given a trusted root).
	bundle *bundleVerifier
	// repository holds this authority's signatures instead of the image's
	// own; nil: the image's.
	repository *name.Repository
}

type requirement struct {
	name          string
	predicateType string
	rego          *rego.Program // over this requirement's statements, or nil
	producer      *producer     // who may have produced the image, or nil
}

// Compile checks a policy and resolves its trust material. The error names
// the field at fault.
func Compile(ctx context.Context, p *v1alpha1.ClusterImagePolicy, deps Deps) (*Policy, error) {
	if deps.KMS == nil {
		deps.KMS = KMSPublicKey
	}
	out := &Policy{Name: p.Name, UID: string(p.UID), Generation: p.Generation}
	var err error
	if out.Mode, out.Unmatched, err = modes(&p.Spec); err != nil {
		return nil, err
	}
	if out.legacy, out.bundles, err = formats(p.Spec.Formats); err != nil {
		return nil, err
	}
	sel := labels.Everything()
	if p.Spec.NamespaceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.namespaceSelector: %w", err)
		}
		sel = s
	}
	out.selector = sel

	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", p.UID, p.Generation)
	if len(p.Spec.Images) == 0 {
		return nil, errors.New("spec.images: at least one glob is required")
	}
	for i, ip := range p.Spec.Images {
		g, err := CompileGlob(ip.Glob)
		if err != nil {
			return nil, fmt.Errorf("spec.images[%d]: %w", i, err)
		}
		out.globs = append(out.globs, g)
	}
	if len(p.Spec.Authorities) == 0 {
		return nil, errors.New("spec.authorities: at least one authority is required")
	}
	if out.authorities, err = compileAuthorities(ctx, p.Spec.Authorities, deps, h); err != nil {
		return nil, err
	}
	if len(p.Spec.Attestations) == 0 {
		return nil, errors.New("spec.attestations: at least one attestation (e.g. https://slsa.dev/provenance/v1) is required")
	}
	for i := range p.Spec.Attestations {
		req, err := compileRequirement(ctx, p.Name, &p.Spec.Attestations[i])
		if err != nil {
			return nil, fmt.Errorf("spec.attestations[%d] (%s)%w", i, p.Spec.Attestations[i].Name, err)
		}
		out.requirements = append(out.requirements, req)
	}
	for _, r := range out.requirements {
		fmt.Fprintf(h, "%s\x00%s\x00", r.name, r.predicateType)
	}
	if len(p.Spec.Rego) > 0 {
		mods, err := rego.Sources(ctx, p.Name, p.Spec.Rego, deps.ConfigMaps)
		if err == nil {
			out.rego, err = rego.Compile(ctx, mods, rego.DefaultOptions())
		}
		if err != nil {
			return nil, fmt.Errorf("spec.rego: %w", err)
		}
	}
	// Rego is evaluated on every request, never cached: it is not part of
	// the fingerprint (the generation is).
	out.fingerprint = hex.EncodeToString(h.Sum(nil))
	return out, nil
}

// formats returns which layouts the policy reads: both when none is named.
func formats(fs []v1alpha1.SignatureFormat) (legacy, bundles bool, err error) {
	if len(fs) == 0 {
		return true, true, nil
	}
	for i, f := range fs {
		switch f {
		case v1alpha1.FormatLegacy:
			legacy = true
		case v1alpha1.FormatBundle:
			bundles = true
		default:
			return false, false, fmt.Errorf("spec.formats[%d]: %q is not Legacy or Bundle", i, f)
		}
	}
	return legacy, bundles, nil
}

// modes returns the policy's mode and unmatchedImages, defaulted
// (Enforce, Deny) and checked.
func modes(spec *v1alpha1.ClusterImagePolicySpec) (v1alpha1.ImageMode, v1alpha1.UnmatchedAction, error) {
	mode, unmatched := spec.Mode, spec.UnmatchedImages
	if mode == "" {
		mode = v1alpha1.ImageEnforce
	}
	if unmatched == "" {
		unmatched = v1alpha1.UnmatchedDeny
	}
	switch mode {
	case v1alpha1.ImageEnforce, v1alpha1.ImageWarn:
	default:
		return "", "", fmt.Errorf("spec.mode: %q is not Enforce or Warn", mode)
	}
	switch unmatched {
	case v1alpha1.UnmatchedDeny, v1alpha1.UnmatchedWarn, v1alpha1.UnmatchedAllow:
	default:
		return "", "", fmt.Errorf("spec.unmatchedImages: %q is not Deny, Warn or Allow", unmatched)
	}
	return mode, unmatched, nil
}

// compileAuthorities compiles the authorities, writing their trust
// material and signature repositories into the fingerprint h.
func compileAuthorities(ctx context.Context, specs []v1alpha1.Authority, deps Deps, h io.Writer) ([]*authority, error) {
	var out []*authority
	for i := range specs {
		a, material, err := compileAuthority(ctx, &specs[i], deps)
		if err != nil {
			return nil, fmt.Errorf("spec.authorities[%d] (%s): %w", i, specs[i].Name, err)
		}
		if r := specs[i].SignaturesRepository; r != "" {
			repo, err := name.NewRepository(r, name.StrictValidation)
			if err != nil {
				return nil, fmt.Errorf("spec.authorities[%d] (%s).signaturesRepository: %w", i, specs[i].Name, err)
			}
			a.repository = &repo
			fmt.Fprintf(h, "repo\x00%s\x00", repo.Name())
		}
		fmt.Fprintf(h, "%s\x00", a.name)
		h.Write(material)
		out = append(out, a)
	}
	return out, nil
}

// compileRequirement compiles one required attestation: its predicate
// type, producer and Rego. Errors start with the field (".producer: ...").
func compileRequirement(ctx context.Context, policy string, r *v1alpha1.AttestationRequirement) (requirement, error) {
	req := requirement{name: r.Name, predicateType: r.PredicateType}
	if r.PredicateType == "" {
		return req, errors.New(": predicateType is empty")
	}
	prod, err := compileProducer(r.Producer)
	if err != nil {
		return req, fmt.Errorf(".%w", err)
	}
	if prod != nil && r.PredicateType != slsa.PredicateV1 && r.PredicateType != slsa.PredicateV02 {
		return req, fmt.Errorf(".producer: needs predicateType %s or %s", slsa.PredicateV1, slsa.PredicateV02)
	}
	req.producer = prod
	if r.Rego != "" {
		prog, err := rego.Compile(ctx, []rego.Module{{Name: policy + "/attestations/" + r.Name + ".rego", Source: r.Rego}}, rego.DefaultOptions())
		if err != nil {
			return req, fmt.Errorf(".rego: %w", err)
		}
		req.rego = prog
	}
	return req, nil
}

func compileAuthority(ctx context.Context, a *v1alpha1.Authority, deps Deps) (*authority, []byte, error) {
	switch {
	case a.Key != nil && a.Keyless == nil:
		if a.Transparency == v1alpha1.TransparencyRequire {
			return nil, nil, errors.New("transparency: Require needs a keyless authority (its trust root names the Rekor log); a key authority verifies the signature alone")
		}
		pub, material, err := publicKey(ctx, a.Key, deps)
		if err != nil {
			return nil, nil, fmt.Errorf("key: %w", err)
		}
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, nil, fmt.Errorf("key: %w", err)
		}
		// Tollgate's signer and `cosign sign --tlog-upload=false` do not
		// write to Rekor: a key authority verifies the signature alone.
		bv, err := keyBundleVerifier(v)
		if err != nil {
			return nil, nil, fmt.Errorf("key: %w", err)
		}
		return &authority{name: a.Name, opts: cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, IgnoreSCT: true, Offline: true}, bundle: bv}, material, nil
	case a.Keyless != nil && a.Key == nil:
		return keyless(ctx, a, deps)
	default:
		return nil, nil, errors.New("exactly one of key and keyless is required")
	}
}

func publicKey(ctx context.Context, k *v1alpha1.KeyAuthority, deps Deps) (crypto.PublicKey, []byte, error) {
	var pemBytes []byte
	switch {
	case k.Data != "" && k.SecretRef == nil && k.KMS == "":
		pemBytes = []byte(k.Data)
	case k.SecretRef != nil && k.Data == "" && k.KMS == "":
		key := k.SecretRef.Key
		if key == "" {
			key = DefaultPublicKeyKey
		}
		data, err := secret(ctx, deps, k.SecretRef.Namespace, k.SecretRef.Name)
		if err != nil {
			return nil, nil, err
		}
		if pemBytes = data[key]; len(pemBytes) == 0 {
			return nil, nil, fmt.Errorf("secret %s/%s has no key %q", k.SecretRef.Namespace, k.SecretRef.Name, key)
		}
	case k.KMS != "" && k.Data == "" && k.SecretRef == nil:
		pub, err := deps.KMS(ctx, k.KMS)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the public key of %s: %w", k.KMS, err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, nil, fmt.Errorf("the public key of %s: %w", k.KMS, err)
		}
		return pub, der, nil
	default:
		return nil, nil, errors.New("exactly one of data, secretRef and kms is required")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("not a PEM public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pub, der, nil
}

func secret(ctx context.Context, deps Deps, ns, name string) (map[string][]byte, error) {
	if deps.Secret == nil {
		return nil, fmt.Errorf("secret %s/%s: secrets cannot be read here", ns, name)
	}
	data, err := deps.Secret(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("reading secret %s/%s: %w", ns, name, err)
	}
	return data, nil
}

// Selects reports whether the policy applies in a namespace with these labels.
func (p *Policy) Selects(nsLabels map[string]string) bool {
	return p.selector.Matches(labels.Set(nsLabels))
}

// Matches reports whether one of the policy's globs matches the image.
func (p *Policy) Matches(img Image) bool {
	for _, g := range p.globs {
		if g.Match(img) {
			return true
		}
	}
	return false
}

// Fingerprint identifies the policy generation and its trust material.
func (p *Policy) Fingerprint() string { return p.fingerprint }

func cryptoSANs(c *x509.Certificate) []string { return cryptoutils.GetSubjectAlternateNames(c) }

// HasRego reports whether the policy has user rules.
func (p *Policy) HasRego() bool {
	if p.rego != nil {
		return true
	}
	for _, r := range p.requirements {
		if r.rego != nil {
			return true
		}
	}
	return false
}

// Packages returns the Rego packages the policy's modules define.
func (p *Policy) Packages() []string {
	out := p.rego.Packages()
	for _, r := range p.requirements {
		out = append(out, r.rego.Packages()...)
	}
	return out
}
