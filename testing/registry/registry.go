// Package registry runs a real OCI registry (go-containerregistry's) on a
// loopback port for tests, and pushes random images to it. It stops with
// the test.
package registry

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is a running registry.
type Registry struct {
	// Host is 127.0.0.1:PORT; go-containerregistry and cosign speak plain
	// HTTP to loopback registries.
	Host string
}

// Start starts a registry on loopback.
func Start(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
}

// PushRandom pushes a random image to repo:tag and returns its digest reference.
func (r *Registry) PushRandom(t testing.TB, repo, tag string) name.Digest {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", r.Host, repo, h))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
