// Package registry runs a real OCI registry (go-containerregistry's) on a
// loopback port for tests, and pushes random images to it. It stops with
// the test.
package registry

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
)

// Registry is a running registry.
type Registry struct {
	// Host is 127.0.0.1:PORT; go-containerregistry and cosign speak plain
	// HTTP to loopback registries.
	Host string
	deny atomic.Pointer[string]
	// user and pass, when set, are required of every request (Basic auth).
	user, pass string

	intercept atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	mu        sync.Mutex
	auths     []string
}

// Intercept lets f answer requests first: when it returns true the
// registry does not see the request. Tests use it to play a registry that
// lies (tampered bytes, huge or compressed bodies, redirects).
func (r *Registry) Intercept(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.intercept.Store(&f)
}

// Authorizations returns every Authorization header the registry received.
func (r *Registry) Authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

// StartWithAuth starts a registry that answers only requests carrying these
// Basic credentials (401 with a Basic challenge otherwise), as a private
// registry does.
func StartWithAuth(t testing.TB, user, pass string) *Registry {
	t.Helper()
	return start(t, user, pass, false)
}

// Start starts a registry on loopback, without the OCI 1.1 referrers API
// (clients fall back to the referrers tag schema, sha256-<hex>).
func Start(t testing.TB) *Registry {
	t.Helper()
	return start(t, "", "", false)
}

// StartWithReferrers starts a registry that serves the OCI 1.1 referrers
// API (GET /v2/NAME/referrers/DIGEST).
func StartWithReferrers(t testing.TB) *Registry {
	t.Helper()
	return start(t, "", "", true)
}

func start(t testing.TB, user, pass string, referrers bool) *Registry {
	t.Helper()
	r := &Registry{user: user, pass: pass}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrers))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if a := req.Header.Get("Authorization"); a != "" {
			r.mu.Lock()
			r.auths = append(r.auths, a)
			r.mu.Unlock()
		}
		if f := r.intercept.Load(); f != nil && (*f)(w, req) {
			return
		}
		if r.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != r.user || p != r.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="tollgate-test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		if p := r.deny.Load(); p != nil && req.Method != http.MethodGet && req.Method != http.MethodHead && strings.HasPrefix(req.URL.Path, "/v2/"+*p) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
			return
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// DenyPush makes every later write to a repository under prefix fail with
// 403 DENIED, as a registry refuses a push the credentials do not allow.
func (r *Registry) DenyPush(prefix string) { r.deny.Store(&prefix) }

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
	var opts []remote.Option
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
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

// Copy pushes the image src names to repo:tag (same bytes, same digest)
// and returns the copy's digest reference.
func (r *Registry) Copy(t testing.TB, src name.Digest, repo, tag string) name.Digest {
	t.Helper()
	var opts []remote.Option
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	img, err := remote.Image(src, opts...)
	if err != nil {
		t.Fatalf("reading %s: %v", src, err)
	}
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", r.Host, repo, src.DigestStr()))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Attached returns the cosign signatures and attestations attached to an
// image (its .sig and .att tags), as cosign finds them.
func Attached(t testing.TB, img name.Digest) (sigs, atts []oci.Signature) {
	t.Helper()
	se, err := ociremote.SignedEntity(img)
	if err != nil {
		t.Fatalf("reading %s: %v", img, err)
	}
	s, err := se.Signatures()
	if err != nil {
		t.Fatal(err)
	}
	a, err := se.Attestations()
	if err != nil {
		t.Fatal(err)
	}
	if sigs, err = s.Get(); err != nil {
		t.Fatal(err)
	}
	if atts, err = a.Get(); err != nil {
		t.Fatal(err)
	}
	return sigs, atts
}

// PushRandomIndex pushes a random two-platform image index to repo:tag and
// returns the index's digest reference and its first manifest's.
func (r *Registry) PushRandomIndex(t testing.TB, repo, tag string) (index, platform name.Digest) {
	t.Helper()
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	index = ref.Context().Digest(h.String())
	platform = ref.Context().Digest(m.Manifests[0].Digest.String())
	return index, platform
}
