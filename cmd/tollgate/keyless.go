package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// keylessOptions are `tollgate verify`'s keyless trust flags, named as
// cosign names them.
type keylessOptions struct {
	identity, identityRegexp, issuer, issuerRegexp string
	trustedRoot, caRoots, rekorKey                 string
	ignoreTlog                                     bool
}

func (o *keylessOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.identity, "certificate-identity", "", "keyless: the certificate's subject (SAN) exactly, e.g. https://kubernetes.io/namespaces/tollgate-system/serviceaccounts/tollgate-signer")
	f.StringVar(&o.identityRegexp, "certificate-identity-regexp", "", "keyless: an RE2 expression the whole subject must match")
	f.StringVar(&o.issuer, "certificate-oidc-issuer", "", "keyless: the certificate's OIDC issuer exactly (e.g. the cluster's service-account issuer)")
	f.StringVar(&o.issuerRegexp, "certificate-oidc-issuer-regexp", "", "keyless: an RE2 expression the whole issuer must match")
	f.StringVar(&o.trustedRoot, "trusted-root", "", "keyless: a sigstore trusted_root.json (Fulcio CAs, Rekor and CT logs, timestamp authorities)")
	f.StringVar(&o.caRoots, "ca-roots", "", "keyless: PEM Fulcio root (and intermediate) certificates, instead of --trusted-root")
	f.StringVar(&o.rekorKey, "rekor-public-key", "", "keyless: the PEM public key of the Rekor log, with --ca-roots")
	f.BoolVar(&o.ignoreTlog, "insecure-ignore-tlog", false, "keyless: do not require a transparency log entry (the certificate must then be valid now, or at a signed timestamp)")
}

// given reports whether any keyless flag was set.
func (o *keylessOptions) given() bool {
	return o.identity != "" || o.identityRegexp != "" || o.issuer != "" || o.issuerRegexp != "" ||
		o.trustedRoot != "" || o.caRoots != "" || o.rekorKey != "" || o.ignoreTlog
}

// authority is the keyless authority the flags describe.
func (o *keylessOptions) authority() (v1alpha1.Authority, error) {
	a := v1alpha1.Authority{Name: "keyless", Keyless: &v1alpha1.KeylessAuthority{}}
	id := v1alpha1.Identity{Subject: o.identity, SubjectRegExp: o.identityRegexp, Issuer: o.issuer, IssuerRegExp: o.issuerRegexp}
	switch {
	case (id.Subject == "") == (id.SubjectRegExp == ""):
		return a, errors.New("keyless: give exactly one of --certificate-identity and --certificate-identity-regexp")
	case (id.Issuer == "") == (id.IssuerRegExp == ""):
		return a, errors.New("keyless: give exactly one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp")
	}
	a.Keyless.Identities = []v1alpha1.Identity{id}
	read := func(flag, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", flag, err)
		}
		return string(b), nil
	}
	var err error
	tr := &a.Keyless.TrustRoot
	switch {
	case o.trustedRoot != "" && (o.caRoots != "" || o.rekorKey != ""):
		return a, errors.New("keyless: give --trusted-root, or --ca-roots with --rekor-public-key, not both")
	case o.trustedRoot != "":
		tr.TrustedRoot, err = read("trusted-root", o.trustedRoot)
	case o.caRoots != "":
		if tr.FulcioRoots, err = read("ca-roots", o.caRoots); err == nil {
			tr.RekorPublicKey, err = read("rekor-public-key", o.rekorKey)
		}
	default:
		return a, errors.New("keyless: give the trust root: --trusted-root FILE, or --ca-roots FILE with --rekor-public-key FILE")
	}
	if o.ignoreTlog {
		a.Transparency = v1alpha1.TransparencyIgnore
	}
	return a, err
}
