package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// tagSchema matches a read of the referrers tag schema's index.
var tagSchema = regexp.MustCompile(`/manifests/sha256-[0-9a-f]{64}$`)

// cosign3 runs the real cosign v3 CLI (bin/cosign3) in dir.
func cosign3(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	return runTool(t, "cosign3", dir, []string{"COSIGN_PASSWORD=tollgate-test", "HOME=" + dir}, args...)
}

// tollgateBinary builds the tollgate CLI from this checkout.
func tollgateBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
	build.Dir = envtest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tollgate: %v\n%s", err, out)
	}
	return bin
}

// runCLI runs bin with args (and env added to this process's) and returns
// its exit code, standard output and standard error; it fails the test
// when bin could not run at all.
func runCLI(t *testing.T, env []string, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out), stderr.String()
}

// tollgateVerify runs `tollgate verify -o json` and returns its exit code
// and the one result.
func tollgateVerify(t *testing.T, bin string, args ...string) (int, verifyOutput, string) {
	t.Helper()
	code, out, _ := runCLI(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, bin, append([]string{"verify", "-o", "json"}, args...)...)
	var got []verifyOutput
	if code != 2 {
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
			t.Fatalf("tollgate verify -o json: %v\n%s", err, out)
		}
		return code, got[0], out
	}
	return code, verifyOutput{}, out
}

type verifyOutput struct {
	Allowed  bool `json:"allowed"`
	Verified bool `json:"verified"`
	Denials  []struct {
		Rule    string `json:"rule"`
		Message string `json:"message"`
	} `json:"denials"`
}

// TestCosignV3Bundles: an image signed and attested with the real cosign
// v3.1.3 and its defaults (sigstore bundles attached as OCI 1.1
// referrers), with a key and no transparency log, verifies with
// `tollgate verify --key` — on a registry with the referrers API and on
// one without (the sha256-<hex> tag schema). What is not signed, or signed
// for another image, or by another key, does not.
func TestCosignV3Bundles(t *testing.T) {
	dir := t.TempDir()
	if out, err := cosign3(t, dir, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	other := t.TempDir()
	if out, err := cosign3(t, other, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	// A key and no transparency log: cosign v3 says so with a signing
	// config that names no services.
	if out, err := cosign3(t, dir, "signing-config", "create", "--out", "signing-config.json"); err != nil {
		t.Fatalf("cosign signing-config create: %v\n%s", err, out)
	}
	signingConfig := filepath.Join(dir, "signing-config.json")
	pred, _ := json.Marshal(signing.SLSAv1("https://tollgate.dev/builders/cosign3"))
	if err := os.WriteFile(filepath.Join(dir, "predicate.json"), pred, 0o600); err != nil {
		t.Fatal(err)
	}
	tollgate := tollgateBinary(t)
	pub := filepath.Join(dir, "cosign.pub")
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}

	regs := []*registry.Registry{registry.StartWithReferrers(t), registry.Start(t)}
	// The image gate, through the API server, trusting the same key.
	env := startGuarded(t, namespace(signerNS, nil), namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce}))
	p := imagePolicy("cosign-v3", regs[0].Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Images = append(s.Images, v1alpha1.ImagePattern{Glob: regs[1].Host + "/**"})
		s.Authorities[0].Key = &v1alpha1.KeyAuthority{Data: string(pubPEM)}
	})
	applyImagePolicy(t, env.Client, p, metav1.ConditionTrue)

	for _, tc := range []struct {
		name string
		reg  *registry.Registry
		api  bool
	}{
		{"referrers API", regs[0], true},
		{"referrers tag schema", regs[1], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What the verification read: the referrers API's answers and
			// the referrers tag schema's.
			var apiReads, tagReads atomic.Int64
			tc.reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/referrers/") {
					apiReads.Add(1)
				}
				if r.Method == http.MethodGet && tagSchema.MatchString(r.URL.Path) {
					tagReads.Add(1)
				}
				return false
			})
			img := tc.reg.PushRandom(t, "team-a/v3", "1.0")
			sign := func(keyDir string, args ...string) {
				t.Helper()
				args = append(args, "--key", filepath.Join(keyDir, "cosign.key"), "--signing-config", signingConfig, "--allow-insecure-registry", "--yes", img.String())
				if out, err := cosign3(t, dir, args...); err != nil {
					t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
				}
			}
			sign(dir, "sign")
			sign(dir, "attest", "--type", "slsaprovenance1", "--predicate", "predicate.json")

			// cosign v3 itself verifies what it wrote.
			if out, err := cosign3(t, dir, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
				t.Fatalf("cosign verify: %v\n%s", err, out)
			}

			apiReads.Store(0)
			tagReads.Store(0)
			code, got, out := tollgateVerify(t, tollgate, "--key", pub, img.String())
			if code != 0 || !got.Verified {
				t.Fatalf("tollgate verify of cosign v3's bundles: exit %d\n%s", code, out)
			}
			// Both registries answer the API request (404 without it); only
			// the one without reads the tag.
			if apiReads.Load() == 0 || (tagReads.Load() == 0) == !tc.api {
				t.Errorf("referrers API reads %d, tag schema reads %d: not the discovery path this registry needs", apiReads.Load(), tagReads.Load())
			}
			if !strings.Contains(out, `"builder"`) || !strings.Contains(out, "https://tollgate.dev/builders/cosign3") {
				t.Errorf("the verified statement is not printed:\n%s", out)
			}

			t.Run("the image gate admits it, pinned", func(t *testing.T) {
				tag := img.Context().Tag("1.0").String()
				pod := podOf(gatedNS, "v3-"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"), tag)
				if err := env.Client.Create(t.Context(), pod); err != nil {
					t.Fatalf("the gate denied cosign v3's bundles: %v", err)
				}
				if want := tag + "@" + img.DigestStr(); pod.Spec.Containers[0].Image != want {
					t.Errorf("image %q, want %q", pod.Spec.Containers[0].Image, want)
				}
			})
			t.Run("an unsigned image is denied", func(t *testing.T) {
				unsigned := tc.reg.PushRandom(t, "team-a/v3-unsigned", "1.0")
				code, got, out := tollgateVerify(t, tollgate, "--key", pub, unsigned.String())
				if code != 1 || got.Allowed || !strings.Contains(out, "no signature is attached") {
					t.Fatalf("exit %d\n%s", code, out)
				}
				err := env.Client.Create(t.Context(), podOf(gatedNS, "v3-unsigned-"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"), unsigned.String()))
				denied(t, err, "[signature]", "no signature is attached")
			})
			t.Run("a bundle signed by another key is denied, saying so", func(t *testing.T) {
				img := tc.reg.PushRandom(t, "team-a/v3-other", "1.0")
				args := []string{"sign", "--key", filepath.Join(other, "cosign.key"), "--signing-config", signingConfig, "--allow-insecure-registry", "--yes", img.String()}
				if out, err := cosign3(t, dir, args...); err != nil {
					t.Fatalf("cosign sign: %v\n%s", err, out)
				}
				code, got, out := tollgateVerify(t, tollgate, "--key", pub, img.String())
				if code != 1 || got.Allowed || !strings.Contains(out, "no signature verifies") || !strings.Contains(out, "bundle sha256:") {
					t.Fatalf("exit %d\n%s", code, out)
				}
			})
		})
	}
}
