package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

func TestVerify(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials from the machine
	reg := registry.Start(t)
	key := signing.NewKey(t)
	dir := t.TempDir()
	pub := filepath.Join(dir, "cosign.pub")
	os.WriteFile(pub, key.PublicPEM, 0o600)
	img := reg.PushRandom(t, "app/web", "v1")
	key.Sign(t, img, signing.Options{})
	key.Attest(t, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/cli"), signing.Options{})
	unsigned := reg.PushRandom(t, "app/unsigned", "v1")
	tag := img.Context().Tag("v1").String()

	indent := func(s string) string { return "        " + strings.ReplaceAll(s, "\n", "\n        ") }
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: release
spec:
  images:
  - glob: %s/app/**
  authorities:
  - name: release
    key:
      data: |
%s
  attestations:
  - name: slsa
    predicateType: https://slsa.dev/provenance/v1
`, reg.Host, indent(strings.TrimSpace(string(key.PublicPEM))))), 0o600)
	secretPolicy := filepath.Join(dir, "secret-policy.yaml")
	os.WriteFile(secretPolicy, []byte(fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: s}
spec:
  images: [{glob: "%s/**"}]
  authorities: [{name: k, key: {secretRef: {namespace: tollgate-system, name: release-key}}}]
  attestations: [{name: slsa, predicateType: "https://slsa.dev/provenance/v1"}]
`, reg.Host)), 0o600)

	regoPolicy := filepath.Join(dir, "rego-policy.yaml")
	os.WriteFile(regoPolicy, []byte(fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: builders}
spec:
  images: [{glob: "%s/**"}]
  authorities:
  - name: release
    key:
      data: |
%s
  attestations:
  - name: slsa
    predicateType: https://slsa.dev/provenance/v1
    rego: |
      package acme.builders
      import rego.v1
      import data.tollgate.lib
      deny contains sprintf("built by %%s", [lib.builder_id(a.statement)]) if {
        some a in input.attestations
        lib.builder_id(a.statement) != "https://tollgate.dev/builders/platform"
      }
`, reg.Host, indent(strings.TrimSpace(string(key.PublicPEM))))), 0o600)

	// The same policy, only warning, and one that admits images it does not
	// cover, selecting namespaces labelled team=a.
	modes := filepath.Join(dir, "modes.yaml")
	os.WriteFile(modes, []byte(fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: warn-only}
spec:
  namespaceSelector: {matchLabels: {team: a}}
  mode: Warn
  unmatchedImages: Allow
  images: [{glob: "%s/app/**"}]
  authorities:
  - name: release
    key:
      data: |
%s
  attestations: [{name: slsa, predicateType: "https://slsa.dev/provenance/v1"}]
`, reg.Host, indent(strings.TrimSpace(string(key.PublicPEM))))), 0o600)

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"a signed tag verifies with --key and prints the statement", []string{"verify", "--key", pub, tag}, 0, `"id": "https://tollgate.dev/builders/cli"`},
		{"with --policy", []string{"verify", "--policy", policy, tag}, 0, `signature: signed by release (policy "release")`},
		{"an unsigned image", []string{"verify", "--key", pub, unsigned.String()}, 1, "deny 1. [signature] image " + unsigned.Context().String() + "@"},
		{"the reason is given", []string{"verify", "--key", pub, unsigned.String()}, 1, "no signature is attached"},
		{"a Warn policy admits an unsigned image, and says it is not verified", []string{"verify", "--policy", modes, unsigned.String()}, 0, "allowed, NOT VERIFIED"},
		{"... and warns why", []string{"verify", "--policy", modes, unsigned.String()}, 0, "warn: [signature]"},
		{"a Warn policy still verifies a signed image", []string{"verify", "--policy", modes, tag}, 0, ": verified\n"},
		{"unmatchedImages: Allow admits what no glob covers, not verified", []string{"verify", "--policy", modes, reg.Host + "/other/app:v1"}, 0, "allowed, NOT VERIFIED"},
		{"--namespace-labels selecting the policy", []string{"verify", "--policy", modes, "--namespace-labels", "team=a", unsigned.String()}, 0, "allowed, NOT VERIFIED"},
		{"--namespace-labels selecting no policy", []string{"verify", "--policy", modes, "--namespace-labels", "team=b", tag}, 1, "[noPolicy]"},
		{"an image the policy does not cover", []string{"verify", "--policy", policy, reg.Host + "/other/app:v1"}, 1, "matches no image glob"},
		{"another predicate type", []string{"verify", "--key", pub, "--type", slsa.PredicateV02, tag}, 1, "no attestation of type https://slsa.dev/provenance/v0.2 verifies"},
		{"a registry that is not there", []string{"verify", "--key", pub, "127.0.0.1:1/app:v1"}, 1, "127.0.0.1:1"},
		{"a Rego rule over the provenance refuses it", []string{"verify", "--policy", regoPolicy, tag}, 1, `deny 1. [acme.builders.deny] image ` + reg.Host + `/app/web@` + img.DigestStr() + `, attestation slsa: built by https://tollgate.dev/builders/cli (policy "builders")`},
		{"nothing trusted", []string{"verify", tag}, 2, ""},
		{"both --key and --policy", []string{"verify", "--key", pub, "--policy", policy, tag}, 2, ""},
		{"a policy naming a Secret", []string{"verify", "--policy", secretPolicy, tag}, 2, ""},
		{"a malformed digest", []string{"verify", "--key", pub, reg.Host + "/app@sha256:ABC"}, 2, ""},
		{"bad output", []string{"verify", "-o", "xml", "--key", pub, tag}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tollgate(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output does not contain %q:\n%s", tc.out, out)
			}
			if tc.code == 2 && errOut == "" {
				t.Error("a usage error printed nothing")
			}
		})
	}
	t.Run("json output", func(t *testing.T) {
		code, out, _ := tollgate("verify", "-o", "json", "--key", pub, tag, unsigned.String())
		var got []verifyResult
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if code != 1 || len(got) != 2 || !got[0].Verified || !got[0].Allowed || got[1].Verified || got[1].Allowed || got[0].Digest != img.DigestStr() || len(got[0].Results[0].Attestations) != 1 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	// `tollgate verify` and the webhooks decide the same images alike: the
	// same verdict, and each violation's message in both.
	t.Run("the image gate decides the same", func(t *testing.T) {
		for _, c := range []struct {
			policy string
			labels map[string]string
			ref    string
		}{
			{policy, nil, tag}, {policy, nil, unsigned.String()}, {policy, nil, reg.Host + "/other/app:v1"},
			{regoPolicy, nil, tag},
			{modes, map[string]string{"team": "a"}, unsigned.String()}, {modes, map[string]string{"team": "a"}, reg.Host + "/other/app:v1"},
			{modes, map[string]string{"team": "b"}, tag},
		} {
			o := verifyOptions{policyFile: c.policy, labels: c.labels, timeout: time.Minute}
			policies, err := verifyPolicies(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", "-o", "json", "--policy", c.policy, c.ref}
			if c.labels != nil {
				args = append(args, "--namespace-labels", "team="+c.labels["team"])
			}
			_, out, _ := tollgate(args...)
			var got []verifyResult
			if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
				t.Fatalf("%v\n%s", err, out)
			}
			allowed, denials, warnings := verifyAsGate(t, policies, c.labels, c.ref)
			if allowed != got[0].Allowed {
				t.Errorf("%s under %s: the gate allowed = %v, verify allowed = %v", c.ref, filepath.Base(c.policy), allowed, got[0].Allowed)
			}
			same := func(m, verified string) bool {
				return strings.Contains(m, strings.ReplaceAll(verified, verifyNamespace(c.labels), "ns"))
			}
			for _, d := range got[0].Denials {
				if !slices.ContainsFunc(denials, func(m string) bool { return same(m, d.Message) }) {
					t.Errorf("%s: verify denied %q; the gate did not say it: %q", c.ref, d.Message, denials)
				}
			}
			if len(denials) != len(got[0].Denials) {
				t.Errorf("%s: the gate denied %q, verify %d times", c.ref, denials, len(got[0].Denials))
			}
			for _, w := range got[0].Warnings {
				if !slices.ContainsFunc(warnings, func(m string) bool { return same(m, w.Message) }) {
					t.Errorf("%s: verify warned %q; the gate did not: %q", c.ref, w.Message, warnings)
				}
			}
		}
	})
	t.Run("the secret policy error says why", func(t *testing.T) {
		_, _, errOut := tollgate("verify", "--policy", secretPolicy, tag)
		if !strings.Contains(errOut, "tollgate verify reads no cluster") {
			t.Errorf("stderr: %s", errOut)
		}
	})
}

// verifyAsGate decides ref as the image gate's webhooks would for a Pod in
// a namespace with labels (gated): the mutating path pins the tag (or
// denies), then the validating path decides the pinned Pod.
func verifyAsGate(t *testing.T, policies []*images.Policy, labels map[string]string, ref string) (allowed bool, denials, warnings []string) {
	t.Helper()
	reg, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	cache, err := images.NewCache(images.DefaultCacheOptions())
	if err != nil {
		t.Fatal(err)
	}
	ns := map[string]string{imagegate.LabelGate: imagegate.GateEnforce}
	maps.Copy(ns, labels)
	set := images.NewSet(policies...)
	h, err := imagegate.New(imagegate.Deps{
		Policies:    func() *images.Set { return set },
		Gate:        &images.Gate{Verifier: images.NewVerifier(reg), Cache: cache},
		Namespaces:  gatedNamespace(ns),
		Credentials: dockerConfig{},
		Budget:      time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns"},"spec":{"containers":[{"name":"app","image":"` + ref + `"}]}}`)
	req := func(obj []byte) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "ns", Name: "p", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: obj},
		}}
	}
	messages := func(r admission.Response) []string {
		var out []string
		if r.Result != nil && r.Result.Details != nil {
			for _, c := range r.Result.Details.Causes {
				out = append(out, c.Message)
			}
		}
		return out
	}
	m := h.MutateHandler().Handle(t.Context(), req(pod))
	if !m.Allowed {
		return false, messages(m), nil
	}
	if len(m.Patch) == 0 && len(m.Patches) > 0 {
		for _, p := range m.Patches {
			pod = []byte(strings.Replace(string(pod), `"image":"`+ref+`"`, `"image":"`+p.Value.(string)+`"`, 1))
		}
	}
	v := h.Handle(t.Context(), req(pod))
	return v.Allowed, messages(v), v.Warnings
}

type gatedNamespace map[string]string

func (n gatedNamespace) Labels(context.Context, string) (map[string]string, error) { return n, nil }

// TestVerifyKeylessFlags: cosign's keyless flags make a keyless authority
// (the identity anchored, the log required); each missing or conflicting
// piece is a usage error that says which. (Keyless attestations, which
// need an intoto log entry, are verified end to end with the real cosign,
// Fulcio and Rekor in testing/e2e.)
func TestVerifyKeylessFlags(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := registry.Start(t)
	fulcio := signing.NewFulcio(t)
	dir := t.TempDir()
	roots, rekor := filepath.Join(dir, "fulcio.pem"), filepath.Join(dir, "rekor.pub")
	os.WriteFile(roots, fulcio.RootPEM, 0o600)
	os.WriteFile(rekor, fulcio.RekorPEM, 0o600)
	const issuer, subject = "https://token.actions.githubusercontent.com", "https://github.com/org/app/.github/workflows/release.yaml@refs/heads/main"
	img := reg.PushRandom(t, "app/keyless", "v1")
	c := fulcio.Issue(t, issuer, subject)
	c.Sign(t, img, signing.Options{Cert: c})
	id := []string{"--certificate-identity", subject, "--certificate-oidc-issuer", issuer}
	pem := []string{"--ca-roots", roots, "--rekor-public-key", rekor}

	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"the signature verifies for the identity", append(append(append([]string{"verify"}, id...), pem...), img.String()), 1, "signature: signed by keyless (" + issuer + " " + subject + ")", ""},
		{"another identity does not", append(append([]string{"verify", "--certificate-identity", "https://github.com/evil/app", "--certificate-oidc-issuer", issuer}, pem...), img.String()), 1, "none of the expected identities matched", ""},
		{"an identity regexp must match the whole subject", append(append([]string{"verify", "--certificate-identity-regexp", "https://github.com/org", "--certificate-oidc-issuer", issuer}, pem...), img.String()), 1, "none of the expected identities matched", ""},
		{"no trust root", append(append([]string{"verify"}, id...), img.String()), 2, "", "give the trust root"},
		{"no issuer", append([]string{"verify", "--certificate-identity", subject}, append(pem, img.String())...), 2, "", "--certificate-oidc-issuer"},
		{"two identities", append(append([]string{"verify", "--certificate-identity-regexp", ".*"}, id...), append(pem, img.String())...), 2, "", "exactly one of --certificate-identity and --certificate-identity-regexp"},
		{"a trusted root and PEM", append(append([]string{"verify", "--trusted-root", roots}, id...), append(pem, img.String())...), 2, "", "not both"},
		{"keyless and --key", append(append([]string{"verify", "--key", rekor}, id...), append(pem, img.String())...), 2, "", "give one of --key, --policy and the keyless flags"},
		{"a trusted root that is not one", append(append([]string{"verify", "--trusted-root", roots}, id...), img.String()), 2, "", "not a sigstore trusted root"},
		{"the log required without its key", append(append([]string{"verify", "--ca-roots", roots}, id...), img.String()), 2, "", "no Rekor log is trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tollgate(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errs) {
				t.Fatalf("exit %d (want %d); want stdout with %q, stderr with %q:\nstdout:\n%s\nstderr:\n%s", code, tc.code, tc.out, tc.errs, out, errOut)
			}
		})
	}
}
