package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/testing/sigstore"
	"github.com/tollgate-dev/tollgate/testing/tekton"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// keylessSetup is the real keyless world of one test: the API server as
// the OIDC issuer, Fulcio and Rekor, cosign v3's signing configs and the
// trust root as files.
type keylessSetup struct {
	dir           string
	stack         *sigstore.Stack
	issuer        string
	signingConfig string // Fulcio and Rekor
	noLog         string // Fulcio only: bundles without a log entry
	trustedRoot   string
	fulcioPEM     string
	rekorPEM      string
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKeylessSetup(t *testing.T, iss sigstore.Issuer, stack *sigstore.Stack) *keylessSetup {
	t.Helper()
	dir := t.TempDir()
	k := &keylessSetup{dir: dir, stack: stack, issuer: iss.URL}
	k.fulcioPEM = writeFile(t, filepath.Join(dir, "fulcio.pem"), stack.FulcioRoots)
	k.rekorPEM = writeFile(t, filepath.Join(dir, "rekor.pub"), stack.RekorKey)
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	fulcio := "--fulcio=url=" + stack.FulcioURL + ",api-version=1,start-time=" + since + ",operator=tollgate-test"
	rekor := "--rekor=url=" + stack.RekorURL + ",api-version=1,start-time=" + since + ",operator=tollgate-test"
	k.signingConfig = filepath.Join(dir, "signing-config.json")
	if out, err := cosign3(t, dir, "signing-config", "create", fulcio, rekor, "--rekor-config=ANY", "--out", k.signingConfig); err != nil {
		t.Fatalf("cosign signing-config create: %v\n%s", err, out)
	}
	k.noLog = filepath.Join(dir, "signing-config-no-log.json")
	if out, err := cosign3(t, dir, "signing-config", "create", fulcio, "--out", k.noLog); err != nil {
		t.Fatalf("cosign signing-config create: %v\n%s", err, out)
	}
	k.trustedRoot = filepath.Join(dir, "trusted_root.json")
	if out, err := cosign3(t, dir, "trusted-root", "create",
		"--fulcio=url="+stack.FulcioURL+",certificate-chain="+k.fulcioPEM,
		"--rekor=url="+stack.RekorURL+",public-key="+k.rekorPEM+",start-time="+since,
		"--out", k.trustedRoot); err != nil {
		t.Fatalf("cosign trusted-root create: %v\n%s", err, out)
	}
	return k
}

// sign signs and attests img with cosign v3's defaults as the holder of
// token, with signingConfig's services.
func (k *keylessSetup) sign(t *testing.T, img name.Digest, token, signingConfig string) {
	t.Helper()
	pred, _ := json.Marshal(signing.SLSAv1("https://tollgate.dev/builders/keyless"))
	predicate := writeFile(t, filepath.Join(k.dir, "predicate.json"), pred)
	tokenFile := writeFile(t, filepath.Join(k.dir, "token"), []byte(token))
	common := []string{"--identity-token", tokenFile, "--signing-config", signingConfig, "--trusted-root", k.trustedRoot, "--allow-insecure-registry", "--yes"}
	for _, args := range [][]string{
		append([]string{"sign"}, common...),
		append([]string{"attest", "--type", "slsaprovenance1", "--predicate", predicate}, common...),
	} {
		if out, err := cosign3(t, k.dir, append(args, img.String())...); err != nil {
			t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
		}
	}
}

// TestKeyless: images signed and attested keylessly with the real cosign
// v3 — a Fulcio certificate for a Kubernetes service account's token,
// issued against the harness's API server as the OIDC issuer, and the
// entries in a real Rekor — are admitted by the gate and `tollgate
// verify` under a keyless authority that requires the log; another
// service account, a certificate without a log entry, a bundle carrying
// another artifact's log entry and a log key that is not the trusted one
// are denied, each saying why.
func TestKeyless(t *testing.T) {
	env := startGuarded(t, namespace(signerNS, nil), namespace("team-a", nil), namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce}))
	iss := sigstore.IssuerOf(t, env)
	stack := sigstore.Start(t, iss)
	k := newKeylessSetup(t, iss, stack)
	signerID := images.ServiceAccountIdentity(signerNS, "tollgate-signer")
	signerToken := sigstore.Token(t, env, signerNS, "tollgate-signer")
	reg := registry.StartWithReferrers(t)
	tollgate := tollgateBinary(t)

	img := reg.PushRandom(t, "team-a/keyless", "1.0")
	k.sign(t, img, signerToken, k.signingConfig)

	t.Run("cosign v3 verifies it with the log", func(t *testing.T) {
		for _, args := range [][]string{
			{"verify"},
			{"verify-attestation", "--type", "slsaprovenance1"},
		} {
			// The harness runs no CT log: Fulcio's certificates carry no SCT.
			args = append(args, "--insecure-ignore-sct", "--trusted-root", k.trustedRoot, "--certificate-identity", signerID, "--certificate-oidc-issuer", k.issuer, "--allow-insecure-registry", img.String())
			if out, err := cosign3(t, k.dir, args...); err != nil {
				t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
			}
		}
	})

	keylessFlags := func(identity, trustedRoot string) []string {
		return []string{"--certificate-identity", identity, "--certificate-oidc-issuer", k.issuer, "--trusted-root", trustedRoot}
	}
	t.Run("tollgate verify admits it, with the trusted root or the PEM trust root", func(t *testing.T) {
		code, got, out := tollgateVerify(t, tollgate, append(keylessFlags(signerID, k.trustedRoot), img.String())...)
		if code != 0 || !got.Verified || !strings.Contains(out, signerID) {
			t.Fatalf("exit %d\n%s", code, out)
		}
		code, got, out = tollgateVerify(t, tollgate, "--certificate-identity", signerID, "--certificate-oidc-issuer", k.issuer, "--ca-roots", k.fulcioPEM, "--rekor-public-key", k.rekorPEM, img.String())
		if code != 0 || !got.Verified {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	// The same on a registry without the referrers API (cosign v3 writes
	// the sha256-<hex> tag schema there).
	plain := registry.Start(t)
	imgPlain := plain.PushRandom(t, "team-a/keyless", "1.0")
	k.sign(t, imgPlain, signerToken, k.signingConfig)
	t.Run("tollgate verify admits it on a registry without the referrers API", func(t *testing.T) {
		code, got, out := tollgateVerify(t, tollgate, append(keylessFlags(signerID, k.trustedRoot), imgPlain.String())...)
		if code != 0 || !got.Verified {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	// The gate: one policy with the PEM trust root inline, requiring the
	// log (the default for keyless).
	p := imagePolicy("keyless", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Images = append(s.Images, v1alpha1.ImagePattern{Glob: plain.Host + "/**"})
		s.Authorities = []v1alpha1.Authority{{Name: "signer", Keyless: &v1alpha1.KeylessAuthority{
			Identities: []v1alpha1.Identity{{Issuer: k.issuer, Subject: signerID}},
			TrustRoot:  v1alpha1.TrustRoot{FulcioRoots: string(stack.FulcioRoots), RekorPublicKey: string(stack.RekorKey)},
		}, Transparency: v1alpha1.TransparencyRequire}}
	})
	applyImagePolicy(t, env.Client, p, metav1.ConditionTrue)
	t.Run("the gate admits it, from both registries", func(t *testing.T) {
		if err := env.Client.Create(t.Context(), podOf(gatedNS, "keyless", img.String())); err != nil {
			t.Fatalf("the gate denied a keylessly signed image: %v", err)
		}
		if err := env.Client.Create(t.Context(), podOf(gatedNS, "keyless-plain", imgPlain.String())); err != nil {
			t.Fatalf("the gate denied a keylessly signed image on a registry without the referrers API: %v", err)
		}
	})

	deny := func(t *testing.T, img name.Digest, pod string, want ...string) {
		t.Helper()
		code, got, out := tollgateVerify(t, tollgate, append(keylessFlags(signerID, k.trustedRoot), img.String())...)
		if code != 1 || got.Allowed {
			t.Fatalf("tollgate verify: exit %d\n%s", code, out)
		}
		t.Logf("tollgate verify: %s", got.Denials)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("tollgate verify does not say %q:\n%s", w, out)
			}
		}
		denied(t, env.Client.Create(t.Context(), podOf(gatedNS, pod, img.String())), append([]string{"[signature]"}, want...)...)
	}

	t.Run("another service account's certificate is denied", func(t *testing.T) {
		other := reg.PushRandom(t, "team-a/keyless-other", "1.0")
		k.sign(t, other, sigstore.Token(t, env, "team-a", "builder"), k.signingConfig)
		deny(t, other, "keyless-other", images.ServiceAccountIdentity("team-a", "builder"))
	})

	t.Run("a certificate without a log entry is denied", func(t *testing.T) {
		unlogged := reg.PushRandom(t, "team-a/keyless-unlogged", "1.0")
		k.sign(t, unlogged, signerToken, k.noLog)
		deny(t, unlogged, "keyless-unlogged", "log entr")
	})

	t.Run("a bundle carrying another artifact's log entry is denied", func(t *testing.T) {
		victim := reg.PushRandom(t, "team-a/keyless-borrowed", "1.0")
		scratch := registry.StartWithReferrers(t)
		// A valid certificate and signature for the image, but no entry:
		// the attacker borrows the entry of an image the signer did log.
		inScratch := scratch.Copy(t, victim, "team-a/keyless-borrowed", "1.0")
		k.sign(t, inScratch, signerToken, k.noLog)
		own := signing.AttachedBundles(t, inScratch)[images.PredicateCosignSign]
		logged := signing.AttachedBundles(t, img)[images.PredicateCosignSign]
		signing.AttachBundle(t, victim, withEntriesOf(t, own, logged), images.PredicateCosignSign)
		deny(t, victim, "keyless-borrowed", "transparency log")
	})

	t.Run("a log entry signed by a log key that is not trusted is denied", func(t *testing.T) {
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := cryptoutils.MarshalPublicKeyToPEM(other.Public())
		if err != nil {
			t.Fatal(err)
		}
		otherKey := writeFile(t, filepath.Join(k.dir, "other-rekor.pub"), pub)
		code, got, out := tollgateVerify(t, tollgate, "--certificate-identity", signerID, "--certificate-oidc-issuer", k.issuer, "--ca-roots", k.fulcioPEM, "--rekor-public-key", otherKey, img.String())
		if code != 1 || got.Allowed || !strings.Contains(out, "log entr") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	t.Run("the policy as YAML verifies offline too", func(t *testing.T) {
		y, err := yaml.Marshal(map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "ClusterImagePolicy", "metadata": map[string]any{"name": "keyless"}, "spec": p.Spec})
		if err != nil {
			t.Fatal(err)
		}
		code, got, out := tollgateVerify(t, tollgate, "--policy", writeFile(t, filepath.Join(k.dir, "policy.yaml"), y), img.String())
		if code != 0 || !got.Verified {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

// withEntriesOf returns bundle with the transparency log entries of donor.
func withEntriesOf(t *testing.T, bundle, donor []byte) []byte {
	t.Helper()
	var b, d map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(donor, &d); err != nil {
		t.Fatal(err)
	}
	entries := d["verificationMaterial"].(map[string]any)["tlogEntries"]
	if entries == nil {
		t.Fatal("the donor bundle has no log entries")
	}
	b["verificationMaterial"].(map[string]any)["tlogEntries"] = entries
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignerKeyless: the article's production chains-config, addresses
// pointing at the harness's servers (the identity provider filesystem: a
// TokenRequest token of the signer's service account, audience sigstore,
// where the chart projects it), signs a TaskRun keylessly: a Fulcio
// certificate, every signature and attestation in Rekor, the entry's
// address on the run. cosign verifies the image with the certificate
// identity and the log (no --insecure-ignore-tlog), and the gate admits it
// under a keyless authority requiring the log.
func TestSignerKeyless(t *testing.T) {
	w := startKeylessSigner(t, map[string]string{
		"artifacts.pipelinerun.format":  "slsa/v2alpha4",
		"artifacts.pipelinerun.storage": "oci",
		"signers.x509.fulcio.provider":  "filesystem",
	})
	env, iss, stack, reg, dir := w.env, w.iss, w.stack, w.reg, w.dir
	signerID := images.ServiceAccountIdentity(signerNS, "tollgate-signer")

	img := reg.PushRandom(t, "team-a/keyless-built", "1.0")
	tr := imageTaskRun("keyless-build", img)
	w.run(t, tr)
	if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, tr))
	}
	entry := tr.GetAnnotations()[signer.AnnotationTransparency]
	if !strings.HasPrefix(entry, stack.RekorURL+"/api/v1/log/entries?logIndex=") {
		t.Errorf("%s = %q, want the entry's address in %s", signer.AnnotationTransparency, entry, stack.RekorURL)
	}

	// A PipelineRun of the same shape, signed the same way.
	img2 := reg.PushRandom(t, "team-a/keyless-pipeline", "1.0")
	pr := imagePipelineRun("keyless-pipeline", img2)
	w.run(t, pr)
	if got := waitAnnotation(t, env.Client, pr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events: %v", got, eventReasons(t, env.Client, pr))
	}

	t.Run("rekor-cli finds both runs' provenance entries by the images they name", func(t *testing.T) {
		for _, d := range []name.Digest{img, img2} {
			out, err := runTool(t, "rekor-cli", dir, nil, "search", "--rekor_server", stack.RekorURL, "--sha", d.DigestStr())
			if err != nil || !regexp.MustCompile(`(?m)^[0-9a-f]{64,80}$`).MatchString(out) {
				t.Fatalf("rekor-cli search --sha %s: %v\n%s", d.DigestStr(), err, out)
			}
		}
	})

	t.Run("one certificate serves both runs (reused within its window), stored in the layers", func(t *testing.T) {
		serial := func(img name.Digest) string {
			sigs, err := ociremote.Signatures(img.Context().Tag("sha256-" + strings.TrimPrefix(img.DigestStr(), "sha256:") + ".sig"))
			if err != nil {
				t.Fatal(err)
			}
			list, err := sigs.Get()
			if err != nil || len(list) != 1 {
				t.Fatalf("%d signatures of %s: %v", len(list), img, err)
			}
			cert, err := list[0].Cert()
			if err != nil || cert == nil {
				t.Fatalf("the signature of %s carries no certificate: %v", img, err)
			}
			if b, err := list[0].Bundle(); err != nil || b == nil {
				t.Fatalf("the signature of %s carries no Rekor bundle: %v", img, err)
			}
			return cert.SerialNumber.String()
		}
		if a, b := serial(img), serial(img2); a != b {
			t.Errorf("two certificates (serials %s, %s) for two runs a second apart: the certificate is not reused", a, b)
		}
	})

	k := newKeylessSetup(t, iss, stack)
	t.Run("cosign verifies the signature and the provenance with the identity and the log", func(t *testing.T) {
		// cosign v2 with the private deployment's trust root in its
		// environment, as the article's readers verify; the harness runs no
		// CT log (--insecure-ignore-sct).
		cenv := []string{"SIGSTORE_ROOT_FILE=" + k.fulcioPEM, "SIGSTORE_REKOR_PUBLIC_KEY=" + k.rekorPEM}
		for _, args := range [][]string{
			{"verify", img.String()},
			{"verify-attestation", "--type", "slsaprovenance1", img.String()},
			{"verify", img2.String()},
			{"verify-attestation", "--type", "slsaprovenance1", img2.String()},
		} {
			args = append(args, "--certificate-identity", signerID, "--certificate-oidc-issuer", iss.URL,
				"--rekor-url", stack.RekorURL, "--insecure-ignore-sct", "--allow-insecure-registry")
			if out, err := cosignCLI(t, dir, cenv, args...); err != nil {
				t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
			}
		}
	})
	t.Run("in sigstore-bundle encoding, cosign v3 verifies the keyless bundles with the log", func(t *testing.T) {
		cfg := maps.Clone(w.config)
		cfg["storage.oci.encoding-format"] = "sigstore-bundle"
		reconfigure(t, env, cfg)
		img, _ := w.buildSigned(t, "keyless-bundled")
		for _, args := range [][]string{
			{"verify"},
			{"verify-attestation", "--type", "slsaprovenance1"},
		} {
			args = append(args, "--insecure-ignore-sct", "--trusted-root", k.trustedRoot, "--certificate-identity", signerID, "--certificate-oidc-issuer", iss.URL, "--allow-insecure-registry", img.String())
			if out, err := cosign3(t, k.dir, args...); err != nil {
				t.Fatalf("cosign v3 %s: %v\n%s", args[0], err, out)
			}
		}
		if code, got, out := tollgateVerify(t, tollgateBinary(t), "--certificate-identity", signerID, "--certificate-oidc-issuer", iss.URL, "--trusted-root", k.trustedRoot, img.String()); code != 0 || !got.Verified {
			t.Fatalf("tollgate verify: exit %d\n%s", code, out)
		}
		reconfigure(t, env, w.config)
	})

	t.Run("the gate admits it under a keyless authority requiring the log, its trusted root in a ConfigMap", func(t *testing.T) {
		applyAll(t, env.Client, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "sigstore-trust-root"},
			Data: map[string]string{images.TrustedRootKey: readFile(t, k.trustedRoot)}})
		p := imagePolicy("keyless-signer", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities = []v1alpha1.Authority{{Name: "signer", Keyless: &v1alpha1.KeylessAuthority{
				Identities: []v1alpha1.Identity{{Issuer: iss.URL, Subject: signerID}},
				TrustRoot:  v1alpha1.TrustRoot{ConfigMapRef: &v1alpha1.SecretRef{Namespace: signerNS, Name: "sigstore-trust-root"}},
			}}}
		})
		applyImagePolicy(t, env.Client, p, metav1.ConditionTrue)
		if err := env.Client.Create(t.Context(), podOf(gatedNS, "keyless-built", img.String())); err != nil {
			t.Fatalf("the gate denied what the signer signed keylessly: %v", err)
		}
	})
}

// TestSignerKeylessSPIFFE: the article's production ConfigMap as written —
// provider spiffe — with a real SPIRE (server, agent, OIDC discovery
// provider): the signer's identity is a JWT-SVID from the agent's Workload
// API, Fulcio (trusting SPIRE's issuer, type spiffe) certifies it, a
// TaskRun and a PipelineRun are signed with every signature in Rekor,
// cosign verifies the SPIFFE identity with the log (not the Kubernetes
// one), rekor-cli finds both provenance entries, and the gate admits the
// image under a keyless authority for the SPIFFE identity.
func TestSignerKeylessSPIFFE(t *testing.T) {
	spire := sigstore.StartSPIRE(t)
	id := spire.Register(t, "ns/"+signerNS+"/sa/tollgate-signer", os.Getuid())
	w := startKeylessSignerWith(t, map[string]string{
		"artifacts.pipelinerun.format":  "slsa/v2alpha4",
		"artifacts.pipelinerun.storage": "oci",
	}, spire)
	img, tr := w.buildSigned(t, "spiffe-build")
	if entry := tr.GetAnnotations()[signer.AnnotationTransparency]; !strings.HasPrefix(entry, w.stack.RekorURL) {
		t.Errorf("%s = %q, want the entry in %s", signer.AnnotationTransparency, entry, w.stack.RekorURL)
	}
	// A PipelineRun signed the same way.
	img2 := w.reg.PushRandom(t, "team-a/spiffe-pipeline", "1.0")
	pr := imagePipelineRun("spiffe-pipeline", img2)
	w.run(t, pr)
	if got := waitAnnotation(t, w.env.Client, pr, signer.AnnotationSigned); got != "true" {
		t.Fatalf("signed = %q; events: %v", got, eventReasons(t, w.env.Client, pr))
	}
	k := newKeylessSetup(t, w.iss, w.stack)
	cenv := []string{"SIGSTORE_ROOT_FILE=" + k.fulcioPEM, "SIGSTORE_REKOR_PUBLIC_KEY=" + k.rekorPEM}
	for _, d := range []name.Digest{img, img2} {
		for _, args := range [][]string{{"verify", d.String()}, {"verify-attestation", "--type", "slsaprovenance1", d.String()}} {
			args = append(args, "--certificate-identity", id, "--certificate-oidc-issuer", spire.Issuer.URL,
				"--rekor-url", w.stack.RekorURL, "--insecure-ignore-sct", "--allow-insecure-registry")
			if out, err := cosignCLI(t, w.dir, cenv, args...); err != nil {
				t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
			}
		}
		out, err := runTool(t, "rekor-cli", w.dir, nil, "search", "--rekor_server", w.stack.RekorURL, "--sha", d.DigestStr())
		if err != nil || !regexp.MustCompile(`(?m)^[0-9a-f]{64,80}$`).MatchString(out) {
			t.Fatalf("rekor-cli search --sha %s: %v\n%s", d.DigestStr(), err, out)
		}
	}
	// The Kubernetes identity is not what signed it.
	if out, err := cosignCLI(t, w.dir, cenv, "verify", img.String(), "--certificate-identity", images.ServiceAccountIdentity(signerNS, "tollgate-signer"),
		"--certificate-oidc-issuer", w.iss.URL, "--rekor-url", w.stack.RekorURL, "--insecure-ignore-sct", "--allow-insecure-registry"); err == nil {
		t.Fatalf("cosign verified a SPIFFE-signed image as the Kubernetes service account:\n%s", out)
	}
	applyAll(t, w.env.Client, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "sigstore-trust-root"},
		Data: map[string]string{images.TrustedRootKey: readFile(t, k.trustedRoot)}})
	p := imagePolicy("spiffe-signer", w.reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Authorities = []v1alpha1.Authority{{Name: "signer", Keyless: &v1alpha1.KeylessAuthority{
			Identities: []v1alpha1.Identity{{Issuer: spire.Issuer.URL, Subject: id}},
			TrustRoot:  v1alpha1.TrustRoot{ConfigMapRef: &v1alpha1.SecretRef{Namespace: signerNS, Name: "sigstore-trust-root"}},
		}}}
	})
	applyImagePolicy(t, w.env.Client, p, metav1.ConditionTrue)
	if err := w.env.Client.Create(t.Context(), podOf(gatedNS, "spiffe-built", img.String())); err != nil {
		t.Fatalf("the gate denied what the signer signed with its SPIFFE identity: %v", err)
	}
}

// TestSignerKeylessOutages: a token Fulcio refuses leaves the run unsigned,
// saying why (CertificateFailed), until the token is good; Rekor stops
// while a backlog of finished runs waits — nothing is marked signed while
// it is down (each run says why in a TransparencyFailed Event), and once it
// is back every run is signed, with exactly one provenance entry each.
func TestSignerKeylessOutages(t *testing.T) {
	w := startKeylessSigner(t, nil)
	env, stack, reg, dir := w.env, w.stack, w.reg, w.dir

	t.Run("a token Fulcio refuses: the run says so and waits; with a good token it is signed", func(t *testing.T) {
		// The signer's token with its signature broken: it parses, Fulcio
		// refuses it.
		parts := strings.Split(w.token, ".")
		sig := []byte(parts[2])
		sig[len(sig)/2] ^= 1
		parts[2] = string(sig)
		writeFile(t, w.tokenFile, []byte(strings.Join(parts, ".")))
		img := reg.PushRandom(t, "team-a/token-refused", "1.0")
		tr := imageTaskRun("token-refused", img)
		w.run(t, tr)
		if !waitFor(t.Context(), 30*time.Second, func() bool {
			evs := strings.Join(eventReasons(t, env.Client, tr), "\n")
			return strings.Contains(evs, signer.ReasonCertificateFailed+": ") && strings.Contains(evs, "refused the certificate request")
		}) {
			t.Fatalf("no CertificateFailed event: %v", eventReasons(t, env.Client, tr))
		}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tr), tr); err != nil {
			t.Fatal(err)
		}
		if got := tr.GetAnnotations()[signer.AnnotationSigned]; got != "" {
			t.Fatalf("signed = %q without a certificate", got)
		}
		writeFile(t, w.tokenFile, []byte(w.token))
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("signed = %q with the token fixed; events: %v", got, eventReasons(t, env.Client, tr))
		}
	})

	stack.StopRekor()
	const backlog = 5
	var runs []*pipelinev1.TaskRun
	var imgs []name.Digest
	for i := range backlog {
		img := reg.PushRandom(t, fmt.Sprintf("team-a/backlog-%d", i), "1.0")
		tr := imageTaskRun(fmt.Sprintf("backlog-%d", i), img)
		w.run(t, tr)
		runs, imgs = append(runs, tr), append(imgs, img)
	}
	for _, tr := range runs {
		if !waitFor(t.Context(), 30*time.Second, func() bool {
			return strings.Contains(strings.Join(eventReasons(t, env.Client, tr), "\n"), signer.ReasonTransparencyFailed+": uploading to the transparency log")
		}) {
			t.Fatalf("%s: no TransparencyFailed event while Rekor is down: %v", tr.Name, eventReasons(t, env.Client, tr))
		}
	}
	time.Sleep(2 * time.Second) // several more attempts
	for _, tr := range runs {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tr), tr); err != nil {
			t.Fatal(err)
		}
		if got := tr.GetAnnotations()[signer.AnnotationSigned]; got != "" {
			t.Fatalf("%s marked signed=%q while the log was down", tr.Name, got)
		}
	}

	stack.StartRekor(t)
	for i, tr := range runs {
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Fatalf("%s: signed = %q after Rekor came back; events: %v", tr.Name, got, eventReasons(t, env.Client, tr))
		}
		out, err := runTool(t, "rekor-cli", dir, nil, "search", "--rekor_server", stack.RekorURL, "--sha", imgs[i].DigestStr())
		uuids := regexp.MustCompile(`(?m)^[0-9a-f]{64,80}$`).FindAllString(out, -1)
		if err != nil || len(uuids) != 1 {
			t.Errorf("%s: %d provenance entries for %s, want exactly one: %v\n%s", tr.Name, len(uuids), imgs[i].DigestStr(), err, out)
		}
	}
}

// keylessSigner is a signer signing keylessly against real Fulcio and
// Rekor, with everything a test drives it with.
type keylessSigner struct {
	env   *envtest.Env
	iss   sigstore.Issuer
	stack *sigstore.Stack
	reg   *registry.Registry
	alice client.Client
	// tk is the real Tekton, running the runs the tests create.
	tk  *tekton.Tekton
	dir string
	// tokenFile holds the signer's token, token it.
	tokenFile, token string
	// config is the chains-config's data.
	config map[string]string
}

// startKeylessSigner starts the guarded API server (a gated namespace
// too), Fulcio and Rekor trusting it, and the signer with the article's
// keyless chains-config (the addresses the harness's, the signer's own
// token in a file) plus extra keys.
func startKeylessSigner(t *testing.T, extra map[string]string) *keylessSigner {
	t.Helper()
	return startKeylessSignerWith(t, extra, nil)
}

// startKeylessSignerWith is startKeylessSigner; with spire, Fulcio also
// trusts SPIRE's issuer and the signer's identity is a JWT-SVID from the
// SPIRE agent (provider spiffe), its process registered as the signer.
func startKeylessSignerWith(t *testing.T, extra map[string]string, spire *sigstore.SPIRE) *keylessSigner {
	t.Helper()
	w := &keylessSigner{dir: t.TempDir()}
	w.env = startGuarded(t, namespace(signerNS, nil), serviceAccount(signerNS, "tekton-builder"),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "chains-config"}},
		namespace(gatedNS, map[string]string{imagegate.LabelGate: imagegate.GateEnforce}))
	w.iss = sigstore.IssuerOf(t, w.env)
	issuers := []sigstore.Issuer{w.iss}
	if spire != nil {
		issuers = append(issuers, spire.Issuer)
	}
	w.stack = sigstore.Start(t, issuers...)
	w.token = sigstore.Token(t, w.env, signerNS, "tollgate-signer")
	w.tokenFile = writeFile(t, filepath.Join(w.dir, "oidc-token"), []byte(w.token))
	tokenFile := w.tokenFile
	cm := &corev1.ConfigMap{}
	if err := w.env.Client.Get(t.Context(), client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{
		"artifacts.taskrun.format":         "slsa/v2alpha4",
		"artifacts.taskrun.storage":        "oci",
		"artifacts.oci.storage":            "oci",
		"signers.x509.fulcio.enabled":      "true",
		"signers.x509.fulcio.address":      w.stack.FulcioURL,
		"signers.x509.fulcio.issuer":       w.iss.URL,
		"signers.x509.identity.token.file": tokenFile,
		"transparency.enabled":             "true",
		"transparency.url":                 w.stack.RekorURL,
	}
	if spire != nil {
		// The article's production keys as written: provider spiffe, the
		// issuer SPIRE's; the Workload API where SPIFFE_ENDPOINT_SOCKET says.
		delete(cm.Data, "signers.x509.identity.token.file")
		cm.Data["signers.x509.fulcio.issuer"] = spire.Issuer.URL
		cm.Data["signers.x509.fulcio.provider"] = "spiffe"
		t.Setenv("SPIFFE_ENDPOINT_SOCKET", spire.Socket)
	}
	for k, v := range extra {
		cm.Data[k] = v
	}
	w.config = maps.Clone(cm.Data)
	if err := w.env.Client.Update(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = startSigner(t, w.env, signer.Options{Namespace: signerNS, Registry: store, RetryDelay: 200 * time.Millisecond})
	w.reg = registry.Start(t)
	w.alice = w.env.As(t, Alice)
	w.tk = tekton.Start(t, w.env, tekton.Options{FeatureFlags: map[string]string{"set-security-context": "true"}})
	return w
}

// run creates a run as alice and waits until the real Tekton has run it
// to success.
func (w *keylessSigner) run(t *testing.T, obj client.Object) {
	t.Helper()
	runToSuccess(t, w.env, w.tk, w.alice, obj)
}

// buildSigned is buildSigned in this signer's cluster.
func (w *keylessSigner) buildSigned(t *testing.T, run string, annotations ...string) (name.Digest, *pipelinev1.TaskRun) {
	t.Helper()
	return buildSigned(t, w.env, w.tk, w.alice, w.reg, run, annotations...)
}

// TestSignerTransparencyManual: with transparency.enabled "manual" only
// the runs that ask (chains.tekton.dev/transparency-upload: "true") have
// their signatures logged.
func TestSignerTransparencyManual(t *testing.T) {
	w := startKeylessSigner(t, map[string]string{"transparency.enabled": "manual"})
	search := func(img name.Digest) int {
		out, err := runTool(t, "rekor-cli", w.dir, nil, "search", "--rekor_server", w.stack.RekorURL, "--sha", img.DigestStr())
		n := len(regexp.MustCompile(`(?m)^[0-9a-f]{64,80}$`).FindAllString(out, -1))
		if err != nil && n > 0 {
			t.Fatalf("rekor-cli search: %v\n%s", err, out)
		}
		return n
	}
	// The run that asks first: its entry found shows the search works, so
	// finding none for the other means there is none.
	asked, tr := w.buildSigned(t, "manual-asked", signer.AnnotationTransparencyUpload, "true")
	if e := tr.GetAnnotations()[signer.AnnotationTransparency]; e == "" || search(asked) != 1 {
		t.Fatalf("a run that asked was not logged once (%s = %q): annotations %v, events %v", signer.AnnotationTransparency, e, tr.GetAnnotations(), eventReasons(t, w.env.Client, tr))
	}
	quiet, tr := w.buildSigned(t, "manual-quiet")
	if e := tr.GetAnnotations()[signer.AnnotationTransparency]; e != "" || search(quiet) != 0 {
		t.Errorf("a run that did not ask was logged (%s = %q)", signer.AnnotationTransparency, e)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
