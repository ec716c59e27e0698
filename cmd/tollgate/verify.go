package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

type verifyOptions struct {
	key           string
	keyless       keylessOptions
	policyFile    string
	predicateType string
	output        string
	timeout       time.Duration
	labels        map[string]string
}

// verifyResult is one image's outcome, as printed.
type verifyResult struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	// Allowed: the image gate would admit the image. Verified: and every
	// policy that covers it verified it (a Warn policy, or unmatchedImages:
	// Allow, admits what is not verified).
	Allowed  bool               `json:"allowed"`
	Verified bool               `json:"verified"`
	Denials  []policy.Violation `json:"denials,omitempty"`
	Warnings []policy.Violation `json:"warnings,omitempty"`
	Results  []*images.Result   `json:"results,omitempty"`
}

func newVerifyCmd() *cobra.Command {
	o := verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE...",
		Short: "Verify images' signatures and SLSA provenance as the image gate does, offline",
		Long: `Decide each IMAGE (a tag or a digest) with the image gate's own decision: the
tag is resolved to the digest of the manifest it names now (computed from the
bytes), then a signature over that digest and each required attestation are
looked for where cosign writes them — the legacy sha256-<hex>.sig/.att tags
(cosign v2) and sigstore bundles attached as OCI 1.1 referrers (cosign v3),
in the image's repository or an authority's signaturesRepository — and
verified (cosign's library for the legacy layout, sigstore-go for bundles),
the policies' Rego rules run over the verified statements, and the
statements are printed.

Trust comes from --policy FILE (one or more ClusterImagePolicy documents),
from --key FILE (a PEM public key such as cosign.pub), or, for keyless
signatures, from --certificate-identity[-regexp] and
--certificate-oidc-issuer[-regexp] (named as cosign names them; regular
expressions must match the whole value) with the trust root: --trusted-root
FILE (a sigstore trusted_root.json, as 'cosign trusted-root create' writes
it) or --ca-roots FILE and --rekor-public-key FILE (PEM). A keyless
signature must carry its Rekor entry (inclusion proof or signed entry
timestamp, checked offline with the log's key) unless --insecure-ignore-tlog.
--key and keyless trust require a statement of --type (default
https://slsa.dev/provenance/v1). Policies that name Secrets need a cluster:
give the key or trust root inline (key.data, keyless.trustRoot).

Every policy applies, unless --namespace-labels gives the labels of the
namespace to decide for: then only the policies whose namespaceSelector
selects it. The policies' mode and unmatchedImages apply as in the gate: a
Warn policy, or unmatchedImages: Allow, admits an image it does not verify,
and the verdict says so.

Registry credentials come from the Docker config (~/.docker/config.json and
credential helpers). Registries are spoken to over HTTPS; loopback and
private-address registries that do not answer HTTPS fall back to plain HTTP,
as with cosign and crane.

Exit status: 0 the gate would admit every image, 1 it would deny one, 2 a
usage or input error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "PEM public key file (e.g. cosign.pub) trusted to sign the images")
	f.StringVar(&o.policyFile, "policy", "", "ClusterImagePolicy YAML file")
	f.StringVar(&o.predicateType, "type", slsa.PredicateV1, "with --key: the predicate type the attestation must have")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "time allowed for each image")
	f.StringToStringVar(&o.labels, "namespace-labels", nil, "decide for a namespace with these labels (k=v,...): only the policies selecting it apply")
	o.keyless.addFlags(f)
	return cmd
}

func verifyPolicies(ctx context.Context, o verifyOptions) ([]*images.Policy, error) {
	deps := images.Deps{Secret: func(_ context.Context, ns, name string) (map[string][]byte, error) {
		return nil, fmt.Errorf("tollgate verify reads no cluster: put the key or trust root in the policy (key.data, keyless.trustRoot) or use the flags")
	}}
	keyless := o.keyless.given()
	switch {
	case o.key != "" && o.policyFile != "", keyless && (o.key != "" || o.policyFile != ""):
		return nil, errors.New("give one of --key, --policy and the keyless flags (--certificate-identity...)")
	case keyless:
		a, err := o.keyless.authority()
		if err != nil {
			return nil, err
		}
		return compileFlagPolicy(ctx, "keyless", a, o.predicateType, deps)
	case o.key != "":
		pem, err := os.ReadFile(o.key)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		ps, err := compileFlagPolicy(ctx, "key", v1alpha1.Authority{Name: "key", Key: &v1alpha1.KeyAuthority{Data: string(pem)}}, o.predicateType, deps)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w", o.key, err)
		}
		return ps, nil
	case o.policyFile != "":
		data, err := os.ReadFile(o.policyFile)
		if err != nil {
			return nil, fmt.Errorf("--policy: %w", err)
		}
		docs, err := runs.ParseDocuments(data, o.policyFile)
		if err != nil {
			return nil, err
		}
		out, err := imagePoliciesFromDocuments(ctx, docs, deps)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("--policy %s holds no ClusterImagePolicy", o.policyFile)
		}
		return out, nil
	}
	return nil, errors.New("give --key FILE or --policy FILE: nothing is trusted by default")
}

// imagePoliciesFromDocuments compiles ClusterImagePolicy documents, as
// the webhook compiles them; any other kind is an error.
func imagePoliciesFromDocuments(ctx context.Context, docs []runs.Document, deps images.Deps) ([]*images.Policy, error) {
	var out []*images.Policy
	for _, d := range docs {
		if d.APIVersion != v1alpha1.GroupVersion.String() || d.Kind != "ClusterImagePolicy" {
			return nil, fmt.Errorf("%s: %s %s is not a ClusterImagePolicy", d.Source, d.APIVersion, d.Kind)
		}
		var p v1alpha1.ClusterImagePolicy
		if err := d.DecodeStrict(&p); err != nil {
			return nil, err
		}
		if p.UID == "" {
			p.UID = types.UID("file:" + p.Name)
		}
		c, err := images.Compile(ctx, &p, deps)
		if err != nil {
			return nil, fmt.Errorf("%s: ClusterImagePolicy %q: %w", d.Source, p.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// compileFlagPolicy is the policy the trust flags make: every image, one
// authority, one attestation of predicateType.
func compileFlagPolicy(ctx context.Context, name string, a v1alpha1.Authority, predicateType string, deps images.Deps) ([]*images.Policy, error) {
	p := &v1alpha1.ClusterImagePolicy{Spec: v1alpha1.ClusterImagePolicySpec{
		Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
		Authorities:  []v1alpha1.Authority{a},
		Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: predicateType}},
	}}
	p.Name, p.UID = name, types.UID("--"+name)
	c, err := images.Compile(ctx, p, deps)
	if err != nil {
		return nil, err
	}
	return []*images.Policy{c}, nil
}

func runVerify(cmd *cobra.Command, o verifyOptions, args []string) error {
	if o.output != "text" && o.output != "json" {
		return usageError("--output %q: want text or json", o.output)
	}
	ctx := cmd.Context()
	policies, err := verifyPolicies(ctx, o)
	if err != nil {
		return usageError("%w", err)
	}
	for _, a := range args {
		if _, err := images.ParseImage(a); err != nil {
			return usageError("%w", err)
		}
	}
	reg, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		return err
	}
	cache, err := images.NewCache(images.DefaultCacheOptions())
	if err != nil {
		return err
	}
	gate := &images.Gate{Verifier: images.NewVerifier(reg), Cache: cache}
	set := images.NewSet(policies...)
	progress := cmd.ErrOrStderr()
	var results []verifyResult
	for _, a := range args {
		if len(args) > 1 && o.output == "text" {
			fmt.Fprintf(progress, "verifying %s ...\n", a)
		}
		results = append(results, verifyOne(ctx, gate, set, a, o))
	}
	return emit(cmd.OutOrStdout(), o.output, results, printVerify, func(r verifyResult) bool { return !r.Allowed })
}

// verifyOne decides one image with the gate's Check, as the validating
// webhook would for a Pod naming it (the tag resolved, as the mutating
// webhook does), with the Docker config's credentials.
func verifyOne(ctx context.Context, gate *images.Gate, set *images.Set, ref string, o verifyOptions) verifyResult {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	out := gate.Check(ctx, set, images.Request{
		Subject:         "image " + ref,
		Namespace:       verifyNamespace(o.labels),
		NamespaceLabels: o.labels,
		AllPolicies:     o.labels == nil,
		Images:          []images.ContainerImage{{Image: ref}},
		ResolveTags:     true,
		Credentials: func(context.Context) (authn.Keychain, string, error) {
			return authn.DefaultKeychain, "docker-config", nil
		},
		Operation: "VERIFY",
	})
	r := verifyResult{Image: ref, Allowed: out.Allowed(), Denials: out.Denials, Warnings: out.Warnings, Results: out.Results}
	r.Verified = r.Allowed && len(out.Results) > 0
	for _, res := range out.Results {
		r.Digest = res.Digest
		r.Verified = r.Verified && res.Verified()
	}
	for _, w := range out.Warnings {
		// Failed requirements are in the results; a warning that the image
		// could not be resolved, matched or verified at all means the same.
		if w.Rule == images.RuleImage || w.Rule == images.RuleUnmatched || w.Internal {
			r.Verified = false
		}
	}
	return r
}

// verifyNamespace names the namespace `tollgate verify` decides for in its
// messages: one with the --namespace-labels, or any.
func verifyNamespace(labels map[string]string) string {
	if labels == nil {
		return "(any: every policy applies)"
	}
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return "with labels " + strings.Join(kv, ",")
}

func printVerify(w io.Writer, results []verifyResult) {
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "verified"
		switch {
		case !r.Allowed:
			verdict = "DENIED"
		case !r.Verified:
			verdict = "allowed, NOT VERIFIED (a policy only warns, or admits images it does not cover)"
		}
		ref := r.Image
		if r.Digest != "" && !strings.Contains(ref, "@") {
			ref += "@" + r.Digest
		}
		fmt.Fprintf(w, "%s: %s\n", ref, verdict)
		for j, d := range r.Denials {
			fmt.Fprintf(w, "  deny %d. %s\n", j+1, d.String())
		}
		for _, d := range r.Warnings {
			fmt.Fprintf(w, "  warn: %s\n", d.String())
		}
		for _, res := range r.Results {
			for _, s := range res.Signatures {
				id := ""
				if s.Identity != "" {
					id = " (" + s.Identity + ")"
				}
				fmt.Fprintf(w, "  signature: signed by %s%s (policy %q)\n", s.Authority, id, res.Policy)
			}
			for _, a := range res.Attestations {
				fmt.Fprintf(w, "  %s: %s signed by %s (policy %q); statement:\n", a.Requirement, a.PredicateType, a.Authority, res.Policy)
				var pretty any
				if json.Unmarshal(a.Statement, &pretty) == nil {
					b, _ := json.MarshalIndent(pretty, "    ", "  ")
					fmt.Fprintf(w, "    %s\n", b)
				}
			}
		}
	}
}
