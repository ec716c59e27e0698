package oci_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tollgate-dev/tollgate/signer/sign"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
)

func cosign(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(envtest.Root(), "bin", "cosign")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/cosign is not built: run `make tools`: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "TUF_ROOT="+filepath.Join(dir, "tuf"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// What the oci store writes, the real cosign finds and verifies:
// `cosign verify` for the signature, `cosign verify-attestation --type
// slsaprovenance1` for the provenance, next to the image and in another
// repository (storage.oci.repository, COSIGN_REPOSITORY for cosign).
func TestCosignVerifiesWhatWeStore(t *testing.T) {
	dir := t.TempDir()
	if out, err := cosign(t, dir, []string{"COSIGN_PASSWORD=pw"}, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "cosign.key"))
	signer, err := sign.FromSecret(map[string][]byte{sign.KeyCosignKey: key, sign.KeyCosignPassword: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.Start(t)
	ctx := context.Background()

	for _, tc := range []struct {
		name, repository string
	}{
		{"next to the image", ""},
		{"in storage.oci.repository", reg.Host + "/signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := reg.PushRandom(t, "team-a/widget-api", strings.ReplaceAll(tc.name, " ", "-")[:8])
			store, err := oci.New(tc.repository, nil)
			if err != nil {
				t.Fatal(err)
			}
			ss, err := oci.SimpleSigningPayload(img)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signer.Sign(ctx, ss)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.StoreSignature(ctx, img, ss, sig, oci.Material{}); err != nil {
				t.Fatal(err)
			}
			statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"%s","digest":{"sha256":"%s"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://tekton.dev/chains/v2/slsa"},"runDetails":{"builder":{"id":"https://tollgate.dev/test"}}}}`,
				img.Repository.Name(), strings.TrimPrefix(img.DigestStr(), "sha256:"))
			env, err := signer.Envelope(ctx, []byte(statement))
			if err != nil {
				t.Fatal(err)
			}
			if err := store.StoreAttestation(ctx, img, env, oci.Material{}); err != nil {
				t.Fatal(err)
			}
			var cosignEnv []string
			if tc.repository != "" {
				cosignEnv = append(cosignEnv, "COSIGN_REPOSITORY="+tc.repository)
			}
			if out, err := cosign(t, dir, cosignEnv, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err != nil {
				t.Fatalf("cosign verify: %v\n%s", err, out)
			}
			out, err := cosign(t, dir, cosignEnv, "verify-attestation", "--key", "cosign.pub", "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String())
			if err != nil {
				t.Fatalf("cosign verify-attestation: %v\n%s", err, out)
			}
			if !strings.Contains(out, "https://tollgate.dev/test") && !strings.Contains(out, "eyJ") {
				t.Errorf("cosign verify-attestation printed no statement:\n%s", out)
			}
		})
	}

	t.Run("storing the same signature and attestation twice attaches each once", func(t *testing.T) {
		img := reg.PushRandom(t, "team-a/twice", "v1")
		store, _ := oci.New("", nil)
		ss, _ := oci.SimpleSigningPayload(img)
		statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"%s","digest":{"sha256":"%s"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`,
			img.Repository.Name(), strings.TrimPrefix(img.DigestStr(), "sha256:"))
		for i := 0; i < 2; i++ {
			// ECDSA signatures differ every time: the payload is what repeats,
			// perhaps spaced differently by another signer binary.
			sig, _ := signer.Sign(ctx, ss)
			if err := store.StoreSignature(ctx, img, ss, sig, oci.Material{}); err != nil {
				t.Fatal(err)
			}
			st := statement
			if i == 1 {
				st = strings.ReplaceAll(statement, ",", ", ")
			}
			env, _ := signer.Envelope(ctx, []byte(st))
			if err := store.StoreAttestation(ctx, img, env, oci.Material{}); err != nil {
				t.Fatal(err)
			}
		}
		ls, la := registry.Attached(t, img)
		if len(ls) != 1 || len(la) != 1 {
			t.Errorf("%d signatures and %d attestations, want one of each", len(ls), len(la))
		}
	})

	t.Run("an unsigned image fails cosign verify", func(t *testing.T) {
		img := reg.PushRandom(t, "team-a/unsigned", "v1")
		if out, err := cosign(t, dir, nil, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", img.String()); err == nil {
			t.Fatalf("cosign verified an unsigned image:\n%s", out)
		}
	})

	t.Run("a registry that is down is an error naming the image", func(t *testing.T) {
		store, _ := oci.New("", nil)
		img := reg.PushRandom(t, "team-a/gone", "v1")
		down, _ := nameDigest(strings.Replace(img.String(), reg.Host, "127.0.0.1:1", 1))
		err := store.StoreAttestation(ctx, down, []byte("{}"), oci.Material{})
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/team-a/gone") {
			t.Errorf("err = %v", err)
		}
	})
}

func nameDigest(s string) (name.Digest, error) { return name.NewDigest(s) }
