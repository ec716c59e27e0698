package sign

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/options"
)

// cosignBin is the real cosign CLI that `make tools` builds.
func cosignBin(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin", "cosign")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/cosign is not built: run `make tools` (it builds cosign v2.6.5 from the Go module proxy once): %v", err)
	}
	return bin
}

func runCosign(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cosignBin(t), args...)
	cmd.Dir = dir
	// No network: nothing here may reach a transparency log or TUF root.
	cmd.Env = append(os.Environ(), append(env, "SIGSTORE_NO_CACHE=true", "TUF_ROOT="+filepath.Join(dir, "tuf"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A key pair as `cosign generate-key-pair` writes it, loaded the way the
// signing Secret holds it; what we sign, the real cosign verifies.
func TestCosignInterop(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCosign(t, dir, []string{"COSIGN_PASSWORD=correct horse"}, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	key, err := os.ReadFile(filepath.Join(dir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromSecret(map[string][]byte{KeyCosignKey: key, KeyCosignPassword: []byte("correct horse")})
	if err != nil {
		t.Fatalf("loading cosign's key: %v", err)
	}
	ctx := context.Background()

	// A blob, and a provenance statement whose subject is that blob.
	blob := []byte("the artifact a run built\n")
	if err := os.WriteFile(filepath.Join(dir, "artifact"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"artifact","digest":{"sha256":"%s"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://tekton.dev/chains/v2/slsa"},"runDetails":{"builder":{"id":"https://tollgate.dev/test"}}}}`, hex.EncodeToString(sum[:]))

	t.Run("cosign verify-blob accepts our signature", func(t *testing.T) {
		sig, err := s.Sign(ctx, blob)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "artifact.sig"), []byte(base64.StdEncoding.EncodeToString(sig)), 0o644)
		if out, err := runCosign(t, dir, nil, "verify-blob", "--key", "cosign.pub", "--signature", "artifact.sig", "--insecure-ignore-tlog=true", "artifact"); err != nil {
			t.Fatalf("cosign verify-blob: %v\n%s", err, out)
		}
	})

	t.Run("cosign verify-blob-attestation accepts our DSSE envelope", func(t *testing.T) {
		env, err := s.Envelope(ctx, []byte(statement))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "artifact.att"), env, 0o644)
		if out, err := runCosign(t, dir, nil, "verify-blob-attestation", "--key", "cosign.pub", "--signature", "artifact.att", "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "artifact"); err != nil {
			t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
		}
	})

	t.Run("cosign refuses a signature over other bytes", func(t *testing.T) {
		sig, err := s.Sign(ctx, []byte("something else"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "other.sig"), []byte(base64.StdEncoding.EncodeToString(sig)), 0o644)
		if out, err := runCosign(t, dir, nil, "verify-blob", "--key", "cosign.pub", "--signature", "other.sig", "--insecure-ignore-tlog=true", "artifact"); err == nil {
			t.Fatalf("cosign accepted a signature over other bytes:\n%s", out)
		}
	})

	t.Run("our public key is cosign's", func(t *testing.T) {
		got, err := s.PublicKeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(dir, "cosign.pub"))
		if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
			t.Errorf("public key:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("a wrong password is named, the key is not", func(t *testing.T) {
		_, err := FromSecret(map[string][]byte{KeyCosignKey: key, KeyCosignPassword: []byte("wrong")})
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("err = %v, want ErrWrongPassword", err)
		}
		if strings.Contains(err.Error(), string(key[40:80])) {
			t.Error("the error contains key material")
		}
	})
}

func TestFromSecretErrors(t *testing.T) {
	for name, data := range map[string]map[string][]byte{
		"empty":                {},
		"key without password": {KeyCosignKey: []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAA==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")},
		"not PEM":              {KeyCosignKey: []byte("hello"), KeyCosignPassword: []byte("x")},
		"bad x509.pem":         {KeyX509PEM: []byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")},
	} {
		if _, err := FromSecret(data); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// The kms signer through sigstore's KMS plugin protocol: a real plugin
// process (testing/kmsplugin) holding the key; what it signs, cosign verifies
// with the public key the KMS reports, and cosign itself can use the same
// key reference.
func TestKMSPluginInterop(t *testing.T) {
	dir := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "sigstore-kms-tollgatetest"), "./testing/kmsplugin")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the KMS plugin: %v\n%s", err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ref := "tollgatetest://" + filepath.Join(dir, "kms-key.pem")
	ctx := context.Background()
	s, err := FromKMS(ctx, ref, options.RPCAuth{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "kms.pub"), pub, 0o644)
	blob := []byte("built by a run\n")
	os.WriteFile(filepath.Join(dir, "artifact"), blob, 0o644)
	sum := sha256.Sum256(blob)
	statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"artifact","digest":{"sha256":"%s"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`, hex.EncodeToString(sum[:]))
	env, err := s.Envelope(ctx, []byte(statement))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "artifact.att"), env, 0o644)
	for _, key := range []string{"kms.pub", ref} {
		if out, err := runCosign(t, dir, []string{"PATH=" + os.Getenv("PATH")}, "verify-blob-attestation", "--key", key, "--signature", "artifact.att", "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "artifact"); err != nil {
			t.Fatalf("cosign verify-blob-attestation --key %s: %v\n%s", key, err, out)
		}
	}
	if _, err := FromKMS(ctx, "nosuchplugin://key", options.RPCAuth{}); err == nil || !strings.Contains(err.Error(), "nosuchplugin://key") {
		t.Errorf("an unknown KMS: err = %v", err)
	}
}

// TestFromKMSProviders: the cloud providers are linked in — a malformed
// reference of each is refused by its own provider (not by "no plugin on
// PATH"), naming the format it wants; a Vault that does not answer is an
// error, not a hang. No cloud is reachable here: the valid-reference paths
// of gcpkms://, azurekms:// and hashivault:// against real servers are not
// tested (awskms:// is, against local-kms, in testing/e2e).
func TestFromKMSProviders(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"gcpkms://not-a-key-path", "projects/"},
		{"awskms://", "awskms://"},
		{"azurekms://no-key-here", "azurekms://"},
		{"hashivault://", "hashivault://"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			_, err := FromKMS(t.Context(), tc.ref, options.RPCAuth{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "sigstore-kms-") {
				t.Fatalf("got %v, want the provider's own format error mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("a Vault that does not answer", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		t.Setenv("VAULT_ADDR", "http://"+addr)
		t.Setenv("VAULT_TOKEN", "tollgate-test")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		s, err := FromKMS(ctx, "hashivault://tollgate", options.RPCAuth{})
		if err == nil {
			_, err = s.Sign(ctx, []byte("payload"))
		}
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v, want connection refused", err)
		}
	})
}
