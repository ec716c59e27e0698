package main

import (
	"archive/tar"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tollgate-dev/tollgate/testing/registry"
)

// TestReproducible: two builds of the same checkout give the same index
// digest; the image runs as non-root with the binary as its entrypoint, and
// holds the binary, the CA certificates and the user database — nothing
// else. One platform (linux/amd64) keeps `make test` inside its budget:
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
	first, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of one commit: %s and %s", d1, d2)
	}
	// Written as an OCI layout and pushed, it keeps its digest.
	reg := registry.Start(t)
	ref := reg.Host + "/tollgate:test"
	if err := write(first, filepath.Join(t.TempDir(), "layout"), ref); err != nil {
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
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
