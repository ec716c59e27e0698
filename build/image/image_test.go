package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
)

// TestReproducible: two builds of the same checkout give the same index
// digest; the image runs as non-root with the binary as its entrypoint, and
// holds the binary, the CA certificates and the user database — nothing
// else; pushed, it is signed and attested (signedAndAttested) and the chart
// installs it (chartInstalls). One platform (linux/amd64) keeps `make test` inside its budget:
// the first build compiles every package of the binary again (static,
// -trimpath); `make image` builds linux/arm64 too, the same way.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles tollgate twice for two platforms")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	o := Options{Root: root, Platforms: []string{"linux/amd64"}, Version: "v0.0.0-test", Commit: "0123456789abcdef",
		Epoch: time.Unix(1764547200, 0).UTC(), CACertificates: "/etc/ssl/certs/ca-certificates.crt"}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal(err)
	}
	built, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	first, second := built.Index, again.Index
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of one commit: %s and %s", d1, d2)
	}
	// Written as an OCI layout and pushed, it keeps its digest.
	reg := registry.Start(t)
	ref := reg.Host + "/tollgate:test"
	if err := write(first, filepath.Join(t.TempDir(), "layout"), mustRef(t, ref)); err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Index(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pushed.Digest(); d != d1 {
		t.Errorf("pushed %s, built %s", d, d1)
	}
	m, err := first.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("platforms: %+v", m.Manifests)
	}
	for _, desc := range m.Manifests {
		img, err := first.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != User || cf.Architecture != desc.Platform.Architecture || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != binaryPath || !cf.Created.Time.Equal(o.Epoch) {
			t.Errorf("%s: config %+v", desc.Platform.Architecture, cf)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers: %v %d", err, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				files = append(files, h.Name)
			}
			if !h.ModTime.Equal(o.Epoch) {
				t.Errorf("%s has the time %s", h.Name, h.ModTime)
			}
		}
		rc.Close()
		if got := strings.Join(files, " "); got != "etc/group etc/passwd etc/ssl/certs/ca-certificates.crt usr/local/bin/tollgate" {
			t.Errorf("%s: files %s", desc.Platform.Architecture, got)
		}
	}
	pushedRef := mustRef(t, ref).Context().Digest(d1.String())
	t.Run("signed and attested, verified by cosign", func(t *testing.T) { signedAndAttested(t, built, o, pushedRef) })
	t.Run("crane shows the platform and a non-root user", func(t *testing.T) { craneShows(t, root, ref) })
	t.Run("the chart installs the pushed digest", func(t *testing.T) { chartInstalls(t, root, pushedRef) })
}

// craneShows: what a user checks with crane (built from go-containerregistry,
// the version this module requires) — the index lists the platform, and
// its config runs the binary as 65532.
func craneShows(t *testing.T, root, ref string) {
	crane := filepath.Join(t.TempDir(), "crane")
	build := exec.Command("go", "build", "-o", crane, "github.com/google/go-containerregistry/cmd/crane")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building crane: %v\n%s", err, out)
	}
	out, err := exec.Command(crane, "manifest", ref).Output()
	if err != nil {
		t.Fatalf("crane manifest: %v", err)
	}
	var idx struct {
		MediaType string
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal(out, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Platform.Architecture != "amd64" || idx.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("crane manifest: %v %s", err, out)
	}
	out, err = exec.Command(crane, "config", "--platform", "linux/amd64", ref).Output()
	if err != nil {
		t.Fatalf("crane config: %v", err)
	}
	var cf struct {
		Architecture string
		Config       struct{ User string }
	}
	if err := json.Unmarshal(out, &cf); err != nil || cf.Config.User != User || cf.Architecture != "amd64" {
		t.Errorf("crane config: %v %s", err, out)
	}
}

// signedAndAttested: the index and its platform image signed with a key
// the real cosign made; cosign verifies the signatures, the SLSA provenance
// (this build's, every image a subject) and the CycloneDX SBOM (the modules
// linked in).
func signedAndAttested(t *testing.T, built *Built, o Options, img name.Digest) {
	dir := t.TempDir()
	cosign := filepath.Join(envtest.Root(), "bin", "cosign")
	gen := exec.Command(cosign, "generate-key-pair")
	gen.Dir, gen.Env = dir, append(os.Environ(), "COSIGN_PASSWORD=s3cret")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	so := SignOptions{Key: filepath.Join(dir, "cosign.key"), Password: "wrong", Started: o.Epoch}
	if err := Sign(context.Background(), built, o, img, so); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a wrong password: %v", err)
	}
	so.Password = "s3cret"
	if err := Sign(context.Background(), built, o, img, so); err != nil {
		t.Fatal(err)
	}
	m, err := built.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	platformImg := img.Context().Digest(m.Manifests[0].Digest.String())
	verify := func(args ...string) []byte {
		t.Helper()
		c := exec.Command(cosign, append(args, "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog")...)
		c.Env = append(os.Environ(), "TUF_ROOT="+filepath.Join(dir, "tuf"))
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.Bytes()
	}
	verify("verify", img.String())
	verify("verify", platformImg.String())
	var prov struct {
		Subject []struct {
			Name   string
			Digest map[string]string
		}
		Predicate struct {
			BuildDefinition struct {
				BuildType          string
				ExternalParameters map[string]any
			}
			RunDetails struct{ Builder struct{ ID string } }
		}
	}
	payloadOf(t, verify("verify-attestation", "--type", "slsaprovenance1", img.String()), &prov)
	if prov.Predicate.RunDetails.Builder.ID != DefaultBuilderID || prov.Predicate.BuildDefinition.BuildType != BuildType ||
		prov.Predicate.BuildDefinition.ExternalParameters["source"] != SourceURI+"@"+o.Commit {
		t.Errorf("provenance: %+v", prov.Predicate)
	}
	if len(prov.Subject) != 2 || prov.Subject[0].Digest["sha256"] != strings.TrimPrefix(img.DigestStr(), "sha256:") ||
		prov.Subject[1].Digest["sha256"] != strings.TrimPrefix(platformImg.DigestStr(), "sha256:") {
		t.Errorf("provenance subjects: %+v", prov.Subject)
	}
	var sbom struct {
		Predicate struct {
			BOMFormat  string
			Components []struct{ Name, Version, PURL string }
		}
	}
	payloadOf(t, verify("verify-attestation", "--type", "cyclonedx", img.String()), &sbom)
	names := map[string]string{}
	for _, c := range sbom.Predicate.Components {
		names[c.Name] = c.Version
	}
	if sbom.Predicate.BOMFormat != "CycloneDX" || names[mainModule] != o.Version || names["github.com/google/go-containerregistry"] == "" || names["stdlib"] != runtime.Version() {
		t.Errorf("SBOM: format %q, components %v", sbom.Predicate.BOMFormat, names)
	}
	// A module the binary does not link is not in it (the SBOM is the
	// binary's, not go.mod's): miniredis, a requirement of the tests only.
	if _, ok := names["github.com/alicebob/miniredis/v2"]; ok {
		t.Errorf("the SBOM lists a module the binary does not link")
	}
}

// payloadOf decodes the statement of cosign verify-attestation's first
// line of output.
func payloadOf(t *testing.T, out []byte, into any) {
	t.Helper()
	line, _, _ := bytes.Cut(out, []byte("\n"))
	var env struct{ Payload []byte }
	if err := json.Unmarshal(line, &env); err != nil {
		t.Fatalf("cosign's output: %v\n%s", err, out)
	}
	if err := json.Unmarshal(env.Payload, into); err != nil {
		t.Fatalf("the statement: %v\n%s", err, env.Payload)
	}
}

// chartInstalls: -values points the chart at the pushed image, and helm
// renders every Tollgate container with it, by digest.
func chartInstalls(t *testing.T, root string, img name.Digest) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	orig, err := os.ReadFile(filepath.Join(root, "charts", "tollgate", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(values, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetValues(values, img); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(values)
	if n := len(strings.Split(string(after), "\n")); n != len(strings.Split(string(orig), "\n")) {
		t.Errorf("the values file has %d lines, had %d", n, len(strings.Split(string(orig), "\n")))
	}
	out, err := exec.Command(filepath.Join(root, "bin", "helm"), "template", "tollgate", filepath.Join(root, "charts", "tollgate"),
		"-n", "tollgate-system", "--kube-version", "1.35.4", "-f", values).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	images := regexp.MustCompile(`(?m)^\s+image: "?([^"\s]+)"?$`).FindAllStringSubmatch(string(out), -1)
	if len(images) == 0 {
		t.Fatalf("no image in the rendered chart:\n%s", out)
	}
	for _, m := range images {
		if m[1] != img.String() {
			t.Errorf("the chart renders image %s, want %s", m[1], img)
		}
	}
}

func TestSetImage(t *testing.T) {
	doc := "# c\nimage:\n  # -- repo\n  repository: old/repo\n  tag: \"\"\n  digest: \"\"\n  pullPolicy: IfNotPresent\nother:\n  repository: keep\n  digest: keep\n"
	got, err := setImage(doc, "reg/tollgate", "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	want := "# c\nimage:\n  # -- repo\n  repository: reg/tollgate\n  tag: \"\"\n  digest: sha256:abc\n  pullPolicy: IfNotPresent\nother:\n  repository: keep\n  digest: keep\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := setImage("image:\n  repository: x\n", "r", "d"); err == nil || !strings.Contains(err.Error(), "image.digest") {
		t.Errorf("no digest line: %v", err)
	}
}

// TestRunRefuses: signing or pointing the chart at an image that is not
// pushed is refused before anything is built.
func TestRunRefuses(t *testing.T) {
	for _, c := range []struct {
		so     SignOptions
		values string
	}{{so: SignOptions{Key: "cosign.key"}}, {values: "values.yaml"}} {
		if _, err := run(Options{}, c.so, t.TempDir(), "", c.values); err == nil || !strings.Contains(err.Error(), "need -push") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
