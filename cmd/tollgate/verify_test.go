package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
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
	key.Attest(t, img, images.SLSAProvenanceV1, signing.SLSAv1("https://tollgate.dev/builders/cli"), signing.Options{})
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

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"a signed tag verifies with --key and prints the statement", []string{"verify", "--key", pub, tag}, 0, `"id": "https://tollgate.dev/builders/cli"`},
		{"with --policy", []string{"verify", "--policy", policy, tag}, 0, `signature: signed by release (policy "release")`},
		{"an unsigned image", []string{"verify", "--key", pub, unsigned.String()}, 1, "FAILED signature: no signature is attached"},
		{"an image the policy does not cover", []string{"verify", "--policy", policy, reg.Host + "/other/app:v1"}, 1, "matches no image glob"},
		{"another predicate type", []string{"verify", "--key", pub, "--type", images.SLSAProvenanceV02, tag}, 1, "no attestation of type https://slsa.dev/provenance/v0.2 verifies"},
		{"a registry that is not there", []string{"verify", "--key", pub, "127.0.0.1:1/app:v1"}, 1, "127.0.0.1:1"},
		{"a Rego rule over the provenance refuses it", []string{"verify", "--policy", regoPolicy, tag}, 1, `DENIED [acme.builders.deny] image ` + reg.Host + `/app/web@` + img.DigestStr() + `, attestation slsa: built by https://tollgate.dev/builders/cli (policy "builders")`},
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
		if code != 1 || len(got) != 2 || !got[0].Verified || got[1].Verified || got[0].Digest != img.DigestStr() || len(got[0].Results[0].Attestations) != 1 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("the secret policy error says why", func(t *testing.T) {
		_, _, errOut := tollgate("verify", "--policy", secretPolicy, tag)
		if !strings.Contains(errOut, "tollgate verify reads no cluster") {
			t.Errorf("stderr: %s", errOut)
		}
	})
}
