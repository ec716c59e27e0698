// Command image builds Tollgate's OCI image without Docker or a daemon: a
// static tollgate binary per platform, the CA certificates and a non-root
// user, nothing else. Every timestamp is the commit's (SOURCE_DATE_EPOCH),
// so two builds of one commit give one digest. The image index is written
// as an OCI layout and, with -push, pushed. With -key as well, the pushed
// index and each platform's image are signed, and the index is attested
// with the build's SLSA v1.0 provenance and its CycloneDX SBOM, in cosign's
// layout. With -values, the chart's values file is pointed at the pushed
// digest.
//
//	go run ./build/image -out bin/image -version v0.3.0 -commit $(git rev-parse HEAD) -epoch $(git log -1 --format=%ct)
//
// `make image` and `make release` run it.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options of one build.
type Options struct {
	// Root is the checkout the binary is built from.
	Root string
	// Platforms, as os/arch.
	Platforms []string
	// Version and Commit are stamped into the binary and the labels.
	Version, Commit string
	// Epoch is every timestamp in the image (the commit's time).
	Epoch time.Time
	// CACertificates is the PEM bundle installed as
	// /etc/ssl/certs/ca-certificates.crt.
	CACertificates string
	// Progress, if set, is told what is being built.
	Progress io.Writer
}

// User is the image's user and group: non-root.
const User = "65532:65532"

const (
	binaryPath = "/usr/local/bin/tollgate"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
)

// Built is the built index and what went into it.
type Built struct {
	Index v1.ImageIndex
	// GoVersion is the toolchain that compiled the binaries.
	GoVersion string
	// Modules are the modules linked into any platform's binary.
	Modules []Module
}

func main() {
	var (
		o      Options
		so     SignOptions
		out    string
		push   string
		values string
		plats  string
		epochS int64
	)
	so.Started = time.Now()
	flag.StringVar(&o.Root, "root", ".", "the Tollgate checkout")
	flag.StringVar(&out, "out", "bin/image", "directory of the OCI layout written")
	flag.StringVar(&push, "push", "", "push the image index to this reference (REGISTRY/REPOSITORY:TAG), with the Docker config's credentials")
	flag.StringVar(&plats, "platforms", "linux/amd64,linux/arm64", "platforms, comma-separated")
	flag.StringVar(&o.Version, "version", "dev", "version stamped into the binary")
	flag.StringVar(&o.Commit, "commit", "unknown", "commit stamped into the binary and the labels")
	flag.Int64Var(&epochS, "epoch", 0, "Unix time of every timestamp in the image (the commit's: git log -1 --format=%ct)")
	flag.StringVar(&o.CACertificates, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle installed in the image")
	flag.StringVar(&so.Key, "key", "", "with -push: sign and attest the pushed image with this cosign private key file (password in $COSIGN_PASSWORD) or KMS reference (gcpkms://, awskms://, azurekms://, hashivault://)")
	flag.StringVar(&so.BuilderID, "builder-id", DefaultBuilderID, "the provenance's builder id (who ran this build)")
	flag.StringVar(&values, "values", "", "with -push: set image.repository and image.digest in this Helm values file to the pushed image")
	flag.Parse()
	o.Platforms, o.Epoch, o.Progress = strings.Split(plats, ","), time.Unix(epochS, 0).UTC(), os.Stderr
	so.Password, so.Progress = os.Getenv("COSIGN_PASSWORD"), os.Stderr
	d, err := run(o, so, out, push, values)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(d)
}

// run builds, writes, pushes, signs and points the values file at the
// image, as the flags ask; it prints the pushed reference by digest, or
// the index digest when nothing is pushed.
func run(o Options, so SignOptions, out, push, values string) (string, error) {
	if push == "" && (so.Key != "" || values != "") {
		return "", errors.New("-key and -values need -push: signatures and the chart name an image in a registry")
	}
	var ref name.Reference
	if push != "" {
		var err error
		if ref, err = name.ParseReference(push); err != nil {
			return "", fmt.Errorf("-push %q: %w", push, err)
		}
	}
	b, err := Build(o)
	if err != nil {
		return "", err
	}
	progress(o.Progress, "image: writing the OCI layout %s", out)
	if ref != nil {
		progress(o.Progress, "image: pushing %s", ref)
	}
	if err := write(b.Index, out, ref); err != nil {
		return "", err
	}
	d, err := b.Index.Digest()
	if err != nil {
		return "", err
	}
	if ref == nil {
		return d.String(), nil
	}
	pushed := ref.Context().Digest(d.String())
	if so.Key != "" {
		if err := Sign(context.Background(), b, o, pushed, so); err != nil {
			return "", err
		}
	}
	if values != "" {
		if err := SetValues(values, pushed); err != nil {
			return "", err
		}
		progress(o.Progress, "image: %s now installs %s", values, pushed)
	}
	return pushed.String(), nil
}

// Build builds the image index.
func Build(o Options) (*Built, error) {
	ca, err := os.ReadFile(o.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	b := &Built{}
	var mods [][]Module
	for _, p := range o.Platforms {
		osName, arch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", p)
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "image: building tollgate for %s\n", p)
		}
		bin, bi, err := compile(o, osName, arch)
		if err != nil {
			return nil, err
		}
		b.GoVersion = bi.GoVersion
		mods = append(mods, modulesOf(bi))
		img, err := image(o, osName, arch, bin, ca)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}}})
	}
	b.Index, b.Modules = idx, mergeModules(mods...)
	return b, nil
}

// ldflags: stripped, no build id, version and commit stamped.
func ldflags(o Options) string {
	return fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.commit=%s", o.Version, o.Commit)
}

// compile builds a static, stripped binary with no path or VCS state in
// it, and returns it with its build information.
func compile(o Options, osName, arch string) ([]byte, *debug.BuildInfo, error) {
	dir, err := os.MkdirTemp("", "tollgate-image-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "tollgate")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, "-ldflags", ldflags(o), "./cmd/tollgate")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+osName, "GOARCH="+arch, "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("building tollgate for %s/%s: %w\n%s", osName, arch, err, b)
	}
	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the build information of tollgate for %s/%s: %w", osName, arch, err)
	}
	bin, err := os.ReadFile(out)
	return bin, bi, err
}

// image is one platform's image: one layer, a non-root user, the binary
// as its entrypoint.
func image(o Options, osName, arch string, bin, ca []byte) (v1.Image, error) {
	layer, err := rootfs(o.Epoch, bin, ca)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: o.Epoch}
	cf.Config.User = User
	cf.Config.Entrypoint = []string{binaryPath}
	cf.Config.Env = []string{"SSL_CERT_FILE=" + caPath}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.source":   "https://github.com/tollgate-dev/tollgate",
		"org.opencontainers.image.revision": o.Commit,
		"org.opencontainers.image.version":  o.Version,
	}
	cf.History = []v1.History{{Created: v1.Time{Time: o.Epoch}, CreatedBy: "build/image", Comment: "tollgate " + o.Version}}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the image's only layer, byte for byte the same for the same
// inputs: fixed order, owners and times.
func rootfs(epoch time.Time, bin, ca []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "home/", "home/nonroot/", "tmp/", "usr/", "usr/local/", "usr/local/bin/"}
	for _, d := range dirs {
		mode, uid := int64(0o755), 0
		switch d {
		case "home/nonroot/":
			uid = 65532
		case "tmp/":
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, Uid: uid, Gid: uid, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{strings.TrimPrefix(caPath, "/"), 0o644, ca},
		{strings.TrimPrefix(binaryPath, "/"), 0o755, bin},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
}

// write writes the index as an OCI layout at out (replacing what is there)
// and pushes it to ref when ref is set.
func write(idx v1.ImageIndex, out string, ref name.Reference) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx); err != nil {
		return fmt.Errorf("writing the OCI layout %s: %w", out, err)
	}
	if ref == nil {
		return nil
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	return nil
}
