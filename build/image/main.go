// Command image builds Tollgate's OCI image without Docker or a daemon: a
// static tollgate binary per platform, the CA certificates and a non-root
// user, nothing else. Every timestamp is the commit's (SOURCE_DATE_EPOCH),
// so two builds of one commit give one digest. The image index is written
// as an OCI layout and, with -push, pushed.
//
//	go run ./build/image -out bin/image -version v0.3.0 -commit $(git rev-parse HEAD) -epoch $(git log -1 --format=%ct)
//
// `make image` runs it.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

func main() {
	var (
		o      Options
		out    string
		push   string
		plats  string
		epochS int64
	)
	flag.StringVar(&o.Root, "root", ".", "the Tollgate checkout")
	flag.StringVar(&out, "out", "bin/image", "directory of the OCI layout written")
	flag.StringVar(&push, "push", "", "push the image index to this reference (REGISTRY/REPOSITORY:TAG), with the Docker config's credentials")
	flag.StringVar(&plats, "platforms", "linux/amd64,linux/arm64", "platforms, comma-separated")
	flag.StringVar(&o.Version, "version", "dev", "version stamped into the binary")
	flag.StringVar(&o.Commit, "commit", "unknown", "commit stamped into the binary and the labels")
	flag.Int64Var(&epochS, "epoch", 0, "Unix time of every timestamp in the image (the commit's: git log -1 --format=%ct)")
	flag.StringVar(&o.CACertificates, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle installed in the image")
	flag.Parse()
	o.Platforms, o.Epoch, o.Progress = strings.Split(plats, ","), time.Unix(epochS, 0).UTC(), os.Stderr
	idx, err := Build(o)
	if err == nil {
		err = write(idx, out, push)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	d, _ := idx.Digest()
	fmt.Println(d)
}

// Build builds the image index.
func Build(o Options) (v1.ImageIndex, error) {
	ca, err := os.ReadFile(o.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		osName, arch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", p)
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "image: building tollgate for %s\n", p)
		}
		bin, err := compile(o, osName, arch)
		if err != nil {
			return nil, err
		}
		img, err := image(o, osName, arch, bin, ca)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}}})
	}
	return idx, nil
}

// compile builds a static, stripped binary with no path or VCS state in it.
func compile(o Options, osName, arch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "tollgate-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "tollgate")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out,
		"-ldflags", fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.commit=%s", o.Version, o.Commit), "./cmd/tollgate")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+osName, "GOARCH="+arch, "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building tollgate for %s/%s: %w\n%s", osName, arch, err, b)
	}
	return os.ReadFile(out)
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
// and pushes it when push is set.
func write(idx v1.ImageIndex, out, push string) error {
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
	if push == "" {
		return nil
	}
	ref, err := name.ParseReference(push)
	if err != nil {
		return fmt.Errorf("-push %q: %w", push, err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	return nil
}
