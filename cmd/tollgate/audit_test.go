package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/audit"
)

// TestAuditFiles: tollgate audit -f decides the manifests' workloads and
// runs with the policies among them, reading no cluster. (That it gives
// the rows the audit of a cluster gives is tested end to end in
// testing/e2e TestAudit.)
func TestAuditFiles(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials from the machine
	reg := registry.Start(t)
	key := signing.NewKey(t)
	signed := reg.PushRandom(t, "shop/signed", "v1")
	key.Sign(t, signed, signing.Options{})
	key.Attest(t, signed, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/cli"), signing.Options{})
	unsigned := reg.PushRandom(t, "shop/unsigned", "v1")
	tag := func(s string) string { return reg.Host + "/shop/" + s + ":v1" }
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }

	deployment := func(ns, name, image string) string {
		nsLine := ""
		if ns != "" {
			nsLine = "\n  namespace: " + ns
		}
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s%s
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: app, image: %s}]
`, name, nsLine, name, name, image)
	}
	policies := fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "%s/**"}]
  authorities: [{name: release, key: {secretRef: {namespace: keys, name: release-key}}}]
  attestations: [{name: slsa, predicateType: "https://slsa.dev/provenance/v1"}]
`, reg.Host)
	secret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {namespace: keys, name: release-key}
stringData:
  cosign.pub: |
%s
`, indent(string(key.PublicPEM)))
	shop := `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {tollgate.dev/gate: enforce}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {namespace: shop, name: builder}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: tollgate-run-ceiling}
---
apiVersion: v1
kind: Service
metadata: {namespace: shop, name: web}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {namespace: shop, name: privileged}
spec:
  serviceAccountName: builder
  taskSpec:
    steps:
    - name: build
      image: ` + signed.String() + `
      securityContext: {privileged: true}
      computeResources: {limits: {cpu: "1", memory: 1Gi}}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {namespace: shop, name: done}
spec:
  serviceAccountName: builder
  taskSpec:
    steps:
    - {name: build, image: ` + signed.String() + `, securityContext: {privileged: true}}
status:
  conditions: [{type: Succeeded, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata:
  namespace: shop
  name: signed-abc
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: signed-abc, uid: "1", controller: true}]
spec:
  containers: [{name: app, image: ` + tag("unsigned") + `}]
`
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("policies/release.yaml", policies)
	write("policies/key.yaml", secret)
	write("shop/namespace.yaml", shop)
	write("shop/deployments.yaml", deployment("shop", "signed", tag("signed"))+"---\n"+deployment("shop", "unsigned", tag("unsigned")))
	write("web/deployment.yml", deployment("", "web", tag("unsigned")))
	write("README.md", "not a manifest")

	rowsOf := func(t *testing.T, out string) map[string]string {
		t.Helper()
		var rows []audit.Result
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := map[string]string{}
		for _, r := range rows {
			k := r.Object.Namespace + "/" + strings.ToLower(r.Object.Kind) + "/" + r.Object.Name
			if rr := r.Result + ":" + r.Rule; !strings.HasSuffix(got[k], rr) { // one per rule
				got[k] = strings.Trim(got[k]+","+rr, ",")
			}
		}
		return got
	}

	t.Run("the manifests' workloads and runs, decided with their policies", func(t *testing.T) {
		code, out, stderr := tollgate("audit", "-f", dir, "-o", "json")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, stderr)
		}
		got := rowsOf(t, out)
		want := map[string]string{
			"shop/deployment/signed":   "pass:image",
			"shop/deployment/unsigned": "fail:signature,fail:slsa",
			"shop/taskrun/privileged":  "fail:podSecurity",
			"default/deployment/web":   "fail:signature,fail:slsa",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %q, want %q", k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("rows for %d objects, want %d (a finished run and a Pod a controller owns are not audited): %v", len(got), len(want), got)
		}
		for _, s := range []string{
			"4 workloads, 2 runs, 1 ClusterImagePolicies, 0 ClusterRunPolicies",
			"not audited and not read: Service (1)",
			"namespace default has no Namespace document: audited as if labelled tollgate.dev/gate=audit",
		} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr does not say %q:\n%s", s, stderr)
			}
		}
	})

	t.Run("the table, a namespace at a time, objects without one in the first", func(t *testing.T) {
		code, out, _ := tollgate("audit", "-f", filepath.Join(dir, "web"), "-f", filepath.Join(dir, "policies"), "-n", "staging")
		if code != 1 || !strings.Contains(out, "staging    deployment/web  fail") || !strings.Contains(out, "fix:") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		code, out, _ = tollgate("audit", "-f", dir, "-n", "shop", "-o", "json")
		if got := rowsOf(t, out); code != 1 || len(got) != 4 || got["shop/deployment/web"] != "fail:signature,fail:slsa" {
			t.Errorf("-n shop: exit %d: %v", code, got)
		}
	})

	t.Run("a namespace that is not gated has its runs audited, not its images", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "all.yaml"), []byte(strings.Replace(shop, "labels: {tollgate.dev/gate: enforce}", "labels: {}", 1)+"---\n"+deployment("shop", "unsigned", tag("unsigned"))), 0o600)
		code, out, stderr := tollgate("audit", "-f", d, "-o", "json")
		if got := rowsOf(t, out); code != 1 || len(got) != 1 || got["shop/taskrun/privileged"] != "fail:podSecurity" {
			t.Errorf("exit %d: %v\n%s", code, got, stderr)
		}
	})

	t.Run("what cannot be read is a usage error that names it", func(t *testing.T) {
		noKey := t.TempDir()
		os.WriteFile(filepath.Join(noKey, "p.yaml"), []byte(policies+"---\n"+deployment("shop", "signed", tag("signed"))), 0o600)
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, "p.yaml"), []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ClusterRunPolicy\nmetadata: {name: x}\nspec: {frobnicate: true}\n"), 0o600)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-f", noKey}, "Secret keys/release-key is not in the manifests"},
			{[]string{"-f", bad}, `unknown field "spec.frobnicate"`},
			{[]string{"-f", filepath.Join(dir, "no-such")}, "no such file"},
			{[]string{"-f", dir, "--watch"}, "neither --watch nor --kubeconfig"},
			{[]string{"-f", dir, "--kubeconfig", "k"}, "neither --watch nor --kubeconfig"},
		} {
			code, _, stderr := tollgate(append([]string{"audit"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("audit %v: exit %d, want 2 saying %q:\n%s", tc.args, code, tc.want, stderr)
			}
		}
	})

	t.Run("signing the image turns its rows to pass", func(t *testing.T) {
		key.Sign(t, unsigned, signing.Options{})
		key.Attest(t, unsigned, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/cli"), signing.Options{})
		code, out, _ := tollgate("audit", "-f", dir, "-n", "default", "-o", "json")
		if got := rowsOf(t, out); code != 0 || got["default/deployment/web"] != "pass:image" {
			t.Errorf("exit %d: %v", code, got)
		}
	})
}
