package images

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Keyless authorities: signatures by short-lived Fulcio certificates,
// recorded in a Rekor log. The trust root — given as a sigstore
// trusted_root.json or as PEM fields — becomes one sigstore-go trusted
// material, which both layouts verify against: cosign's library reads it
// for legacy signatures (CheckOpts.TrustedMaterial) and sigstore-go for
// bundles, so a certificate chain, a log key and a validity period mean the
// same in both.

// TrustedRootKey is the key of a Secret holding a sigstore trusted root.
const TrustedRootKey = "trusted_root.json"

// keyless compiles a keyless authority.
func keyless(ctx context.Context, a *v1alpha1.Authority, deps Deps) (*authority, []byte, error) {
	k := a.Keyless
	tm, material, err := trustRoot(ctx, k.TrustRoot, deps)
	if err != nil {
		return nil, nil, fmt.Errorf("keyless.trustRoot: %w", err)
	}
	tlog := a.Transparency != v1alpha1.TransparencyIgnore
	if tlog && len(tm.RekorLogs()) == 0 {
		return nil, nil, errors.New("keyless.trustRoot: no Rekor log is trusted, and transparency is Require (keyless certificates live minutes; the log entry proves when the signature was made): add the log's public key, or set transparency: Ignore with a timestamp authority")
	}
	if len(k.Identities) == 0 {
		return nil, nil, errors.New("keyless.identities: at least one identity is required")
	}
	opts := cosign.CheckOpts{
		TrustedMaterial: tm,
		Offline:         true,
		IgnoreTlog:      !tlog,
		IgnoreSCT:       len(tm.CTLogs()) == 0,
		// Without a log, a certificate must have been valid at a signed
		// timestamp when a timestamp authority is trusted (now otherwise).
		UseSignedTimestamps: !tlog && len(tm.TimestampingAuthorities()) > 0,
	}
	bv := &bundleVerifier{}
	ids := make([]string, 0, len(k.Identities))
	for i, id := range k.Identities {
		ci, err := identity(id)
		if err == nil {
			var vi verify.CertificateIdentity
			vi, err = verify.NewShortCertificateIdentity(ci.Issuer, ci.IssuerRegExp, ci.Subject, ci.SubjectRegExp)
			bv.identities = append(bv.identities, verify.WithCertificateIdentity(vi))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("keyless.identities[%d]: %w", i, err)
		}
		opts.Identities = append(opts.Identities, ci)
		ids = append(ids, fmt.Sprintf("%q %q %q %q", ci.Issuer, ci.IssuerRegExp, ci.Subject, ci.SubjectRegExp))
	}
	if bv.verifier, err = verify.NewVerifier(tm, keylessVerifierOptions(tm, tlog)...); err != nil {
		return nil, nil, fmt.Errorf("keyless: %w", err)
	}
	h := sha256.New()
	h.Write(material)
	fmt.Fprintf(h, "transparency %t\n", tlog)
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintln(h, id)
	}
	return &authority{name: a.Name, opts: opts, bundle: bv}, h.Sum(nil), nil
}

// keylessVerifierOptions are what a bundle must carry besides a valid
// chain: a verified log entry whose integrated time (or a signed
// timestamp) dates the certificate, or without the log a signed timestamp
// or the current time; and SCTs when CT logs are trusted.
func keylessVerifierOptions(tm root.TrustedMaterial, tlog bool) []verify.VerifierOption {
	var opts []verify.VerifierOption
	switch {
	case tlog:
		opts = append(opts, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
	case len(tm.TimestampingAuthorities()) > 0:
		opts = append(opts, verify.WithSignedTimestamps(1))
	default:
		opts = append(opts, verify.WithCurrentTime())
	}
	if len(tm.CTLogs()) > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	return opts
}

// trustRoot reads a keyless trust root, inline or from its Secret or
// ConfigMap, and
// returns it with the bytes it was made of (for the policy's fingerprint).
func trustRoot(ctx context.Context, tr v1alpha1.TrustRoot, deps Deps) (root.TrustedMaterial, []byte, error) {
	trusted, fulcio, rekor, ctlog := []byte(tr.TrustedRoot), []byte(tr.FulcioRoots), []byte(tr.RekorPublicKey), []byte(tr.CTLogPublicKey)
	pemGiven := len(fulcio)+len(rekor)+len(ctlog) > 0
	refs := 0
	for _, given := range []bool{tr.SecretRef != nil, tr.ConfigMapRef != nil, len(trusted) > 0, pemGiven} {
		if given {
			refs++
		}
	}
	if refs != 1 {
		return nil, nil, errors.New("give exactly one of secretRef, configMapRef, trustedRoot and the PEM fields")
	}
	if tr.SecretRef != nil || tr.ConfigMapRef != nil {
		data, where, err := trustRootData(ctx, tr, deps)
		if err != nil {
			return nil, nil, err
		}
		trusted, fulcio, rekor, ctlog = data[TrustedRootKey], data[FulcioRootsKey], data[RekorPublicKeyKey], data[CTLogPublicKeyKey]
		switch {
		case len(trusted) > 0 && len(fulcio)+len(rekor)+len(ctlog) > 0:
			return nil, nil, fmt.Errorf("%s holds both %s and PEM keys (%s, %s, %s): keep one", where, TrustedRootKey, FulcioRootsKey, RekorPublicKeyKey, CTLogPublicKeyKey)
		case len(trusted) == 0 && len(fulcio) == 0:
			return nil, nil, fmt.Errorf("%s has neither %s nor %s", where, TrustedRootKey, FulcioRootsKey)
		}
	}
	material := sha256.New()
	for _, b := range [][]byte{trusted, fulcio, rekor, ctlog} {
		fmt.Fprintf(material, "%d\x00", len(b))
		material.Write(b)
	}
	if len(trusted) > 0 {
		tm, err := root.NewTrustedRootFromJSON(trusted)
		if err != nil {
			return nil, nil, fmt.Errorf("not a sigstore trusted root (trusted_root.json): %w", err)
		}
		if len(tm.FulcioCertificateAuthorities()) == 0 {
			return nil, nil, errors.New("the trusted root names no Fulcio certificate authority")
		}
		return tm, material.Sum(nil), nil
	}
	tm, err := pemTrustRoot(fulcio, rekor, ctlog)
	if err != nil {
		return nil, nil, err
	}
	return tm, material.Sum(nil), nil
}

// trustRootData reads the Secret or ConfigMap a trust root names.
func trustRootData(ctx context.Context, tr v1alpha1.TrustRoot, deps Deps) (map[string][]byte, string, error) {
	if tr.SecretRef != nil {
		data, err := secret(ctx, deps, tr.SecretRef.Namespace, tr.SecretRef.Name)
		return data, fmt.Sprintf("secret %s/%s", tr.SecretRef.Namespace, tr.SecretRef.Name), err
	}
	ref := tr.ConfigMapRef
	where := fmt.Sprintf("configmap %s/%s", ref.Namespace, ref.Name)
	if deps.ConfigMaps == nil {
		return nil, where, fmt.Errorf("%s: ConfigMaps cannot be read here", where)
	}
	cm, err := deps.ConfigMaps(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return nil, where, fmt.Errorf("reading %s: %w", where, err)
	}
	data := make(map[string][]byte, len(cm))
	for k, v := range cm {
		data[k] = []byte(v)
	}
	return data, where, nil
}

// pemTrustRoot makes a trusted root of PEM material without validity
// periods: each self-signed certificate is a Fulcio root, with every other
// certificate as a possible intermediate; the Rekor and CT log keys are
// logs named by their key IDs, as their entries and SCTs name them.
func pemTrustRoot(fulcio, rekor, ctlog []byte) (*root.TrustedRoot, error) {
	if len(fulcio) == 0 {
		return nil, errors.New("the Fulcio root certificates are missing")
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(fulcio)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("the Fulcio roots are not PEM certificates: %v", err)
	}
	var roots, intermediates []*x509.Certificate
	for _, c := range certs {
		if c.CheckSignatureFrom(c) == nil {
			roots = append(roots, c)
		} else {
			intermediates = append(intermediates, c)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("the Fulcio certificates hold no root (a self-signed CA certificate)")
	}
	cas := make([]root.CertificateAuthority, 0, len(roots))
	for _, r := range roots {
		cas = append(cas, &root.FulcioCertificateAuthority{Root: r, Intermediates: intermediates})
	}
	rekorLogs, err := logs(rekor, "the Rekor public key")
	if err != nil {
		return nil, err
	}
	ctLogs, err := logs(ctlog, "the CT log public key")
	if err != nil {
		return nil, err
	}
	return root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ctLogs, nil, rekorLogs)
}

// logs makes the log of a PEM public key (none when pemKey is empty).
func logs(pemKey []byte, what string) (map[string]*root.TransparencyLog, error) {
	out := map[string]*root.TransparencyLog{}
	if len(pemKey) == 0 {
		return out, nil
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("%s is not a PEM public key: %w", what, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	id := sha256.Sum256(der)
	// A PEM key has no validity period; cosign's library wants a start:
	// the Unix epoch (any entry is after it).
	out[fmt.Sprintf("%x", id)] = &root.TransparencyLog{ID: id[:], HashFunc: crypto.SHA256, PublicKey: pub, SignatureHashFunc: signatureHash(pub), ValidityPeriodStart: time.Unix(0, 0)}
	return out, nil
}

// signatureHash is the hash a log's key signs with, as sigstore's trusted
// roots assume for each key type.
func signatureHash(pub crypto.PublicKey) crypto.Hash {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return crypto.SHA384
		case elliptic.P521():
			return crypto.SHA512
		}
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		return crypto.SHA512
	}
	return crypto.SHA256
}

// identity anchors regular expressions: cosign and sigstore-go match them
// anywhere in the value, so "https://github.com/org/.*" would also accept
// "https://evil.example/?https://github.com/org/x".
func identity(id v1alpha1.Identity) (cosign.Identity, error) {
	var out cosign.Identity
	switch {
	case id.Issuer != "" && id.IssuerRegExp == "":
		out.Issuer = id.Issuer
	case id.IssuerRegExp != "" && id.Issuer == "":
		re, err := anchor(id.IssuerRegExp)
		if err != nil {
			return out, fmt.Errorf("issuerRegExp: %w", err)
		}
		out.IssuerRegExp = re
	default:
		return out, errors.New("exactly one of issuer and issuerRegExp is required")
	}
	switch {
	case id.Subject != "" && id.SubjectRegExp == "":
		out.Subject = id.Subject
	case id.SubjectRegExp != "" && id.Subject == "":
		re, err := anchor(id.SubjectRegExp)
		if err != nil {
			return out, fmt.Errorf("subjectRegExp: %w", err)
		}
		out.SubjectRegExp = re
	default:
		return out, errors.New("exactly one of subject and subjectRegExp is required")
	}
	return out, nil
}

func anchor(expr string) (string, error) {
	a := `^(?:` + expr + `)$`
	if _, err := regexp.Compile(a); err != nil {
		return "", fmt.Errorf("%q is not an RE2 regular expression: %w", expr, err)
	}
	return a, nil
}

// ServiceAccountIdentity is the certificate subject Fulcio gives a
// Kubernetes service account's token.
func ServiceAccountIdentity(namespace, name string) string {
	return "https://kubernetes.io/namespaces/" + namespace + "/serviceaccounts/" + name
}

// certSummary names a verified certificate: its issuer and subject.
func certSummary(issuer, subject string) string {
	return strings.TrimSpace(issuer + " " + subject)
}
