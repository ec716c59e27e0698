package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

type verifyOptions struct {
	key           string
	policyFile    string
	predicateType string
	output        string
	timeout       time.Duration
}

// verifyResult is one image's outcome, as printed.
type verifyResult struct {
	Image    string           `json:"image"`
	Digest   string           `json:"digest,omitempty"`
	Verified bool             `json:"verified"`
	Error    string           `json:"error,omitempty"`
	Results  []*images.Result `json:"results,omitempty"`
	// Denials and Warnings come from the policies' Rego rules.
	Denials  []policy.Violation `json:"denials,omitempty"`
	Warnings []policy.Violation `json:"warnings,omitempty"`
}

func newVerifyCmd() *cobra.Command {
	o := verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE...",
		Short: "Verify images' signatures and SLSA provenance as the image gate does, offline",
		Long: `Verify each IMAGE (a tag or a digest) exactly as the image gate would: the
tag is resolved to the digest of the manifest it names now (computed from the
bytes), then a signature over that digest and each required attestation are
verified with cosign's verification library, and the verified in-toto
statements are printed.

Trust comes from --policy FILE (one or more ClusterImagePolicy documents;
every policy whose images globs match an image applies, namespace selectors
are ignored) or from --key FILE (a PEM public key such as cosign.pub),
requiring a statement of --type (default https://slsa.dev/provenance/v1).
Policies that name Secrets need a cluster: give the key inline (key.data).

Registry credentials come from the Docker config (~/.docker/config.json and
credential helpers). Registries are spoken to over HTTPS; loopback and
private-address registries that do not answer HTTPS fall back to plain HTTP,
as with cosign and crane.

Exit status: 0 every image verified, 1 an image not verified, 2 a usage or
input error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "PEM public key file (e.g. cosign.pub) trusted to sign the images")
	f.StringVar(&o.policyFile, "policy", "", "ClusterImagePolicy YAML file")
	f.StringVar(&o.predicateType, "type", images.SLSAProvenanceV1, "with --key: the predicate type the attestation must have")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "time allowed for each image")
	return cmd
}

func verifyPolicies(ctx context.Context, o verifyOptions) ([]*images.Policy, error) {
	deps := images.Deps{Secret: func(_ context.Context, ns, name string) (map[string][]byte, error) {
		return nil, fmt.Errorf("tollgate verify reads no cluster: put the key in the policy (key.data) or use --key")
	}}
	switch {
	case o.key != "" && o.policyFile != "":
		return nil, errors.New("give --key or --policy, not both")
	case o.key != "":
		pem, err := os.ReadFile(o.key)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		p := &v1alpha1.ClusterImagePolicy{Spec: v1alpha1.ClusterImagePolicySpec{
			Images:       []v1alpha1.ImagePattern{{Glob: "**"}},
			Authorities:  []v1alpha1.Authority{{Name: "key", Key: &v1alpha1.KeyAuthority{Data: string(pem)}}},
			Attestations: []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: o.predicateType}},
		}}
		p.Name, p.UID = o.key, types.UID("--key")
		c, err := images.Compile(ctx, p, deps)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w", o.key, err)
		}
		return []*images.Policy{c}, nil
	case o.policyFile != "":
		data, err := os.ReadFile(o.policyFile)
		if err != nil {
			return nil, fmt.Errorf("--policy: %w", err)
		}
		docs, err := runs.ParseDocuments(data, o.policyFile)
		if err != nil {
			return nil, err
		}
		var out []*images.Policy
		for _, d := range docs {
			if d.APIVersion != v1alpha1.GroupVersion.String() || d.Kind != "ClusterImagePolicy" {
				return nil, fmt.Errorf("%s: %s %s is not a ClusterImagePolicy", d.Source, d.APIVersion, d.Kind)
			}
			var p v1alpha1.ClusterImagePolicy
			strict, err := kjson.UnmarshalStrict(d.Raw, &p, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
			if err != nil {
				return nil, fmt.Errorf("%s: decoding ClusterImagePolicy: %w", d.Source, err)
			}
			if len(strict) > 0 {
				return nil, fmt.Errorf("%s: ClusterImagePolicy: %w", d.Source, errors.Join(strict...))
			}
			p.UID = types.UID("file:" + p.Name)
			c, err := images.Compile(ctx, &p, deps)
			if err != nil {
				return nil, fmt.Errorf("%s: ClusterImagePolicy %q: %w", d.Source, p.Name, err)
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("--policy %s holds no ClusterImagePolicy", o.policyFile)
		}
		return out, nil
	}
	return nil, errors.New("give --key FILE or --policy FILE: nothing is trusted by default")
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
	parsed := make([]images.Image, 0, len(args))
	for _, a := range args {
		img, err := images.ParseImage(a)
		if err != nil {
			return usageError("%w", err)
		}
		parsed = append(parsed, img)
	}
	reg, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		return err
	}
	v := images.NewVerifier(reg)
	kc := authn.DefaultKeychain
	progress := cmd.ErrOrStderr()
	var results []verifyResult
	for _, img := range parsed {
		if len(parsed) > 1 && o.output == "text" {
			fmt.Fprintf(progress, "verifying %s ...\n", img.Ref)
		}
		results = append(results, verifyOne(ctx, v, kc, policies, img, o.timeout))
	}
	return emit(cmd.OutOrStdout(), o.output, results, printVerify, func(r verifyResult) bool { return !r.Verified })
}

func verifyOne(ctx context.Context, v *images.Verifier, kc authn.Keychain, policies []*images.Policy, img images.Image, timeout time.Duration) verifyResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := verifyResult{Image: img.Ref}
	var matching []*images.Policy
	for _, p := range policies {
		if p.Matches(img) {
			matching = append(matching, p)
		}
	}
	if len(matching) == 0 {
		r.Error = fmt.Sprintf("%s matches no image glob of the policies", img)
		return r
	}
	m, err := v.Registry().Resolve(ctx, img, kc)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Digest = m.Digest
	r.Verified = true
	for _, p := range matching {
		res, err := v.Verify(ctx, img.Repository, m.Digest, p, kc)
		if err != nil {
			r.Verified, r.Error = false, err.Error()
			return r
		}
		denials, warnings := p.UserRules(ctx, res, img, m.Digest)
		r.Verified = r.Verified && res.Verified() && len(denials) == 0
		r.Results = append(r.Results, res)
		r.Denials = append(r.Denials, denials...)
		r.Warnings = append(r.Warnings, warnings...)
	}
	return r
}

func printVerify(w io.Writer, results []verifyResult) {
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "verified"
		if !r.Verified {
			verdict = "NOT VERIFIED"
		}
		ref := r.Image
		if r.Digest != "" && !strings.Contains(ref, "@") {
			ref += "@" + r.Digest
		}
		fmt.Fprintf(w, "%s: %s\n", ref, verdict)
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
		for _, d := range r.Denials {
			fmt.Fprintf(w, "  DENIED %s\n", d.String())
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
			for _, f := range res.Failures {
				fmt.Fprintf(w, "  FAILED %s (policy %q)\n", f.String(), res.Policy)
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
