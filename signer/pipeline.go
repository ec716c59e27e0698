package signer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagepolicy "github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/images/pullsecrets"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/signer/config"
	"github.com/tollgate-dev/tollgate/signer/hints"
	"github.com/tollgate-dev/tollgate/signer/provenance"
	"github.com/tollgate-dev/tollgate/signer/sign"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/signer/storage/tekton"
)

// sign builds, signs and stores everything the configuration asks for, and
// returns the annotations to add, or why it could not: the run must be the
// one admitted (checkStamp), every artifact it claims must be its
// namespace's (claims), then the provenance is stored and the images
// signed.
func (r *Reconciler) sign(ctx context.Context, rn *run, cfg config.Config, s, imageSigner *sign.Signer, log *sign.Log) (map[string]string, *failure) {
	if f := r.checkStamp(ctx, rn); f != nil {
		return nil, f
	}
	images, owns, f := r.claims(ctx, rn)
	if f != nil {
		return nil, f
	}
	p := &publication{r: r, rn: rn, out: map[string]string{}, log: log}
	if art := rn.artifact(cfg); art.Enabled() {
		if f := p.provenance(ctx, cfg, art, s, images, owns); f != nil {
			return nil, f
		}
	}
	if cfg.OCI.Enabled() {
		if f := p.signatures(ctx, cfg, images, imageSigner); f != nil {
			return nil, f
		}
	}
	if p.stored == 0 {
		return nil, permanent(ReasonNoArtifacts, "nothing was signed and stored: the run has no type-hinted output (IMAGE_URL/IMAGE_DIGEST, IMAGES) for the configured storage (%s storage %v, artifacts.oci.storage %v) and tekton storage is not configured", strings.ToLower(rn.kind), rn.artifact(cfg).Storage, cfg.OCI.Storage)
	}
	return p.out, nil
}

// checkStamp refuses a run whose spec is not the one stamped at admission,
// whose stamp's MAC does not verify, or that carries no stamp where the run
// guard is installed.
func (r *Reconciler) checkStamp(ctx context.Context, rn *run) *failure {
	stamp, stamped := rn.obj.GetAnnotations()[specdigest.Annotation]
	switch {
	case stamped:
		got, err := specdigest.OfObject(rn.raw)
		if err != nil {
			return permanent(ReasonSpecChanged, "computing the spec digest: %v", err)
		}
		if got != stamp {
			return permanent(ReasonSpecChanged, "the spec no longer matches the digest stamped at admission (stamped %s, now %s): refusing to sign", stamp, got)
		}
		return r.verifyMAC(ctx, rn, stamp)
	case r.Opts.RequireStamp:
		return permanent(ReasonNoStamp, "the run carries no %s annotation though the run guard is installed: it was not admitted by Tollgate; refusing to sign", specdigest.Annotation)
	}
	return nil
}

// owner checks one claimed artifact against the repositories the run's
// namespace owns.
type owner func(ref string, digest map[string]string) *failure

// claims returns the images the run's results name, and the ownership
// check; a malformed hint or an image the namespace does not own fails the
// whole run: signing the rest and saying "signed" would leave it unsigned
// without anyone noticing.
func (r *Reconciler) claims(ctx context.Context, rn *run) ([]hints.Artifact, owner, *failure) {
	images, rejected := hints.Images(rn.results)
	if len(rejected) > 0 {
		msgs := make([]string, len(rejected))
		for i, rj := range rejected {
			msgs[i] = rj.String()
		}
		return nil, nil, permanent(ReasonMalformedHint, "%s", strings.Join(msgs, "; "))
	}
	owns, f := r.ownership(ctx, rn)
	if f != nil {
		return nil, nil, f
	}
	for _, img := range images {
		if f := owns(img.Name+"@sha256:"+img.Digest["sha256"], img.Digest); f != nil {
			return nil, nil, f
		}
	}
	return images, owns, nil
}

// publication is what one sign stores: the annotations to write on the run
// and how many things were stored, through the run's registry credentials
// (read only when something is pushed).
type publication struct {
	r        *Reconciler
	rn       *run
	out      map[string]string
	stored   int
	registry *oci.Store
	// log receives every signature when transparency is on for the run.
	log *sign.Log
}

func (p *publication) store(ctx context.Context) (*oci.Store, *failure) {
	if p.registry == nil {
		reg, f := p.r.registryFor(ctx, p.rn)
		if f != nil {
			return nil, f
		}
		p.registry = reg
	}
	return p.registry, nil
}

// provenance builds the run's statement, signs it and stores it in each
// configured backend.
func (p *publication) provenance(ctx context.Context, cfg config.Config, art config.Artifact, s *sign.Signer, images []hints.Artifact, owns owner) *failure {
	st, err := p.rn.statement(cfg)
	if err != nil {
		return permanent(ReasonProvenanceFailed, "building %s provenance: %v", art.Format, err)
	}
	// Every subject, not only those pushed: a statement stored on the
	// run can be copied to a registry by whoever reads the run.
	for _, sub := range st.GetSubject() {
		if f := owns(sub.GetName(), sub.GetDigest()); f != nil {
			return f
		}
	}
	payload, err := provenance.Marshal(st)
	if err != nil {
		return permanent(ReasonProvenanceFailed, "encoding provenance: %v", err)
	}
	env, err := s.Envelope(ctx, payload)
	if err != nil {
		return transient(ReasonProvenanceFailed, "signing provenance: %v", err)
	}
	// The intoto entry serves tekton storage and the legacy layout; a
	// bundle carries its own (dsse) entry.
	cert, chain := s.Certificate()
	m := oci.Material{Cert: cert, Chain: chain}
	if slices.Contains(art.Storage, config.StorageTekton) || cfg.OCIEncoding != config.EncodingBundle {
		var f *failure
		if m, f = p.logged(ctx, s, func(l *sign.Log) (*sign.Entry, error) { return l.Attestation(ctx, s, env) }); f != nil {
			return f
		}
	}
	for _, backend := range art.Storage {
		switch backend {
		case config.StorageTekton:
			a, err := tekton.Annotations(tekton.Key(p.rn.kind, string(p.rn.obj.GetUID())), payload, env, m.Cert, m.Chain, p.rn.obj.GetAnnotations())
			if err != nil {
				return permanent(ReasonStorageFailed, "%v", err)
			}
			for k, v := range a {
				p.out[k] = v
			}
			p.stored++
		case config.StorageOCI:
			for _, img := range images {
				d, f := imageDigest(img)
				if f != nil {
					return f
				}
				if f := p.attach(ctx, cfg, s, d, env, payload, st.GetPredicateType(), m); f != nil {
					return f
				}
			}
		}
	}
	return nil
}

// imageDigest is the image a hint names, by digest.
func imageDigest(img hints.Artifact) (name.Digest, *failure) {
	d, err := name.NewDigest(img.Name + "@sha256:" + img.Digest["sha256"])
	if err != nil {
		return name.Digest{}, permanent(ReasonStorageFailed, "%v", err)
	}
	return d, nil
}

// signatures signs each image and stores the signature next to it (the
// configuration allows oci storage only): cosign's simple signing in the
// legacy layout, or, in bundle encoding, cosign v3's signature statement.
func (p *publication) signatures(ctx context.Context, cfg config.Config, images []hints.Artifact, s *sign.Signer) *failure {
	for _, img := range images {
		d, f := imageDigest(img)
		if f != nil {
			return f
		}
		if cfg.OCIEncoding == config.EncodingBundle {
			st, err := oci.SignStatement(d)
			if err != nil {
				return permanent(ReasonStorageFailed, "%v", err)
			}
			env, err := s.Envelope(ctx, st)
			if err != nil {
				return transient(ReasonStorageFailed, "signing %s: %v", d, err)
			}
			cert, chain := s.Certificate()
			if f := p.attach(ctx, cfg, s, d, env, st, imagepolicy.PredicateCosignSign, oci.Material{Cert: cert, Chain: chain}); f != nil {
				return f
			}
			continue
		}
		ss, err := oci.SimpleSigningPayload(d)
		if err != nil {
			return permanent(ReasonStorageFailed, "%v", err)
		}
		sig, err := s.Sign(ctx, ss)
		if err != nil {
			return transient(ReasonStorageFailed, "signing %s: %v", d, err)
		}
		m, f := p.logged(ctx, s, func(l *sign.Log) (*sign.Entry, error) { return l.Signature(ctx, s, ss, sig) })
		if f != nil {
			return f
		}
		reg, f := p.store(ctx)
		if f != nil {
			return f
		}
		if err := reg.StoreSignature(ctx, d, ss, sig, m); err != nil {
			return transient(ReasonStorageFailed, "%v", err)
		}
		p.stored++
	}
	return nil
}

// attach stores a signed statement (a DSSE envelope) about an image in the
// configured encoding: cosign's .att tag, or a sigstore bundle attached as
// a referrer.
func (p *publication) attach(ctx context.Context, cfg config.Config, s *sign.Signer, d name.Digest, env, statement []byte, predicateType string, m oci.Material) *failure {
	reg, f := p.store(ctx)
	if f != nil {
		return f
	}
	if cfg.OCIEncoding == config.EncodingBundle {
		der, err := s.PublicKeyDER()
		if err != nil {
			return transient(ReasonStorageFailed, "the signing key: %v", err)
		}
		var certDER []byte
		if leaf := s.Leaf(); leaf != nil {
			certDER = leaf.Raw
		}
		var entries []json.RawMessage
		if p.log != nil {
			e, url, err := p.log.DSSE(ctx, s, env)
			if err != nil {
				return outage(ReasonTransparencyFailed, "%v: the run is signed once the log takes its entries", err)
			}
			entries = append(entries, e)
			if _, ok := p.out[AnnotationTransparency]; !ok {
				p.out[AnnotationTransparency] = url
			}
		}
		b, err := oci.Bundle(env, der, certDER, entries...)
		if err != nil {
			return permanent(ReasonStorageFailed, "%v", err)
		}
		if err := reg.StoreBundle(ctx, d, b, statement, predicateType); err != nil {
			return transient(ReasonStorageFailed, "%v", err)
		}
	} else if err := reg.StoreAttestation(ctx, d, env, m); err != nil {
		return transient(ReasonStorageFailed, "%v", err)
	}
	p.stored++
	return nil
}

// logged uploads one signature to the transparency log when it is on for
// the run, recording the entry's address on the run as Chains does, and
// returns what the signature's layer carries (the certificate of a keyless
// signer, the entry's Rekor bundle). A log that does not answer is a
// transient failure: the run stays unsigned and is retried — it is never
// marked signed without its entry.
func (p *publication) logged(ctx context.Context, s *sign.Signer, upload func(*sign.Log) (*sign.Entry, error)) (oci.Material, *failure) {
	cert, chain := s.Certificate()
	m := oci.Material{Cert: cert, Chain: chain}
	if p.log == nil {
		return m, nil
	}
	e, err := upload(p.log)
	if err != nil {
		return m, outage(ReasonTransparencyFailed, "%v: the run is signed once the log takes its entries", err)
	}
	m.Rekor = e.Bundle
	if _, ok := p.out[AnnotationTransparency]; !ok { // the first entry: the provenance's when there is one
		p.out[AnnotationTransparency] = e.URL
	}
	return m, nil
}

// verifyMAC checks the stamp's MAC with the run guard's keys.
func (r *Reconciler) verifyMAC(ctx context.Context, rn *run, digest string) *failure {
	if r.Opts.StampKeySecret == "" {
		return nil
	}
	sec := &corev1.Secret{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Opts.Namespace, Name: r.Opts.StampKeySecret}, sec); err != nil {
		return transient(ReasonBadStamp, "reading the stamp keys %s/%s: %v", r.Opts.Namespace, r.Opts.StampKeySecret, err)
	}
	keys, err := specdigest.ParseKeys(sec.Data)
	if err != nil {
		return transient(ReasonBadStamp, "the stamp keys %s/%s: %v", r.Opts.Namespace, r.Opts.StampKeySecret, err)
	}
	ann := rn.obj.GetAnnotations()
	mac, ok := ann[specdigest.MACAnnotation]
	if !ok {
		return permanent(ReasonBadStamp, "the run carries no %s: the run guard did not admit it (a namespace it does not guard?); refusing to sign", specdigest.MACAnnotation)
	}
	if err := keys.Verify(rn.obj.GetNamespace(), rn.kind, digest, mac); err != nil {
		return permanent(ReasonBadStamp, "%s: %v; refusing to sign", specdigest.MACAnnotation, err)
	}
	return nil
}

// ownership returns the check of a claimed artifact against the
// repositories the run's namespace owns. Artifacts that are not image
// references (packages, files) are not the image gate's and pass.
func (r *Reconciler) ownership(ctx context.Context, rn *run) (owner, *failure) {
	if !r.Opts.RequireOwnership {
		return func(string, map[string]string) *failure { return nil }, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: rn.obj.GetNamespace()}, ns); err != nil {
		return nil, transient(ReasonArtifactNotOwned, "reading namespace %s to decide which repositories it owns: %v", rn.obj.GetNamespace(), err)
	}
	var policies v1alpha1.ClusterRunPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return nil, transient(ReasonArtifactNotOwned, "listing ClusterRunPolicies to decide which repositories namespace %s owns: %v", ns.Name, err)
	}
	o := runs.OwnershipFor(policies.Items, ns.Labels)
	return func(ref string, digest map[string]string) *failure {
		if _, err := imagepolicy.ParseImage(ref); err != nil {
			return nil
		}
		if err := o.Owns(ref); err != nil {
			return permanent(ReasonArtifactNotOwned, "%s claims %s (%s): %v; refusing to sign", claimedBy(rn.results, digest), ref, rn.kind+" "+rn.obj.GetNamespace()+"/"+rn.obj.GetName(), err)
		}
		return nil
	}, nil
}

// claimedBy names the results that hold one of the digest's values.
func claimedBy(results []hints.Result, digest map[string]string) string {
	var names []string
	for _, res := range results {
		for _, hex := range digest {
			if hex != "" && strings.Contains(res.Value.StringVal, hex) {
				names = append(names, res.Name)
				break
			}
		}
	}
	if len(names) == 0 {
		return "the run's provenance"
	}
	return "result " + strings.Join(names, ", ")
}

// registryFor returns the registry store with the run's image pull
// credentials: the pull secrets of its service account and of its
// podTemplate, as the kubelet would use them to pull its images.
func (r *Reconciler) registryFor(ctx context.Context, rn *run) (*oci.Store, *failure) {
	ns := rn.obj.GetNamespace()
	names := append([]string(nil), rn.pullSecrets...)
	if rn.serviceAccount != "" {
		sa := &corev1.ServiceAccount{}
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: rn.serviceAccount}, sa)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, transient(ReasonStorageFailed, "reading service account %s/%s for its pull secrets: %v", ns, rn.serviceAccount, err)
		default:
			for _, ref := range sa.ImagePullSecrets {
				names = append(names, ref.Name)
			}
		}
	}
	var secrets []corev1.Secret
	for _, n := range names {
		sec := &corev1.Secret{}
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, sec)
		if apierrors.IsNotFound(err) {
			continue // the kubelet skips a missing pull secret too
		}
		if err != nil {
			return nil, transient(ReasonStorageFailed, "reading pull secret %s/%s: %v", ns, n, err)
		}
		secrets = append(secrets, *sec)
	}
	if len(secrets) == 0 {
		return r.Opts.Registry, nil
	}
	kc, err := pullsecrets.New(secrets)
	if err != nil {
		return nil, permanent(ReasonStorageFailed, "%v", err)
	}
	return r.Opts.Registry.With(kc), nil
}
