package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits bound what one verification reads from a registry. Everything is
// checked before it is read where a descriptor announces it, and enforced
// while reading where it does not.
type Limits struct {
	// MaxManifestBytes bounds an image manifest, index or attachment manifest.
	MaxManifestBytes int64
	// MaxAttachments bounds the layers of one .sig or .att manifest.
	MaxAttachments int
	// MaxAttachmentBytes bounds one signature or attestation layer.
	MaxAttachmentBytes int64
	// MaxTotalBytes bounds everything one verification reads.
	MaxTotalBytes int64
	// MaxInFlightBytes bounds what all verifications together hold at
	// once: a burst of distinct images cannot take the process past its
	// memory limit. A read that would pass it fails (not cached: the
	// admission is denied, and a retry verifies once the burst is over).
	MaxInFlightBytes int64
}

// DefaultLimits are the limits the gate uses: a manifest as large as
// Docker Distribution accepts, cosign's limit on signatures per image, and
// room for a large pipeline's provenance.
func DefaultLimits() Limits {
	// 96 MiB in flight: the chart's webhook has 256 MiB.
	return Limits{MaxManifestBytes: 4 << 20, MaxAttachments: 100, MaxAttachmentBytes: 4 << 20, MaxTotalBytes: 32 << 20, MaxInFlightBytes: 96 << 20}
}

// Validate reports limits that would admit nothing.
func (l Limits) Validate() error {
	if l.MaxManifestBytes <= 0 || l.MaxAttachments <= 0 || l.MaxAttachmentBytes <= 0 || l.MaxTotalBytes <= 0 || l.MaxInFlightBytes <= 0 {
		return errors.New("every registry limit must be positive")
	}
	if l.MaxInFlightBytes < l.MaxManifestBytes || l.MaxInFlightBytes < l.MaxAttachmentBytes {
		return errors.New("the in-flight byte bound must hold at least one manifest and one attachment")
	}
	return nil
}

var imageManifestTypes = []string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}

// Registry reads manifests and blobs with the limits, and recomputes every
// digest from the bytes it received: a registry's word for a digest
// (Docker-Content-Digest, a schema 1 signature) is never taken.
type Registry struct {
	base   http.RoundTripper
	limits Limits

	inFlight, peak atomic.Int64 // bytes held by open sessions
}

// InFlight reports the bytes open sessions hold now and the most they held.
func (r *Registry) InFlight() (now, peak int64) { return r.inFlight.Load(), r.peak.Load() }

// reserve takes n bytes of the in-flight budget, or fails.
func (r *Registry) reserve(n int64) error {
	if v := r.inFlight.Add(n); v > r.limits.MaxInFlightBytes {
		r.inFlight.Add(-n)
		return fmt.Errorf("%w: the webhook holds %d MiB of registry reads for other verifications (limit %d MiB); retry", errBusy, (v-n)>>20, r.limits.MaxInFlightBytes>>20)
	}
	for {
		p, v := r.peak.Load(), r.inFlight.Load()
		if v <= p || r.peak.CompareAndSwap(p, v) {
			return nil
		}
	}
}

// NewRegistry returns a registry client over base (nil: a transport that
// never decompresses, so a compressed body is only ever counted raw).
func NewRegistry(base http.RoundTripper, limits Limits) (*Registry, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableCompression = true
		t.MaxIdleConnsPerHost = 32
		base = t
	}
	return &Registry{base: base, limits: limits}, nil
}

// repo is a session with one repository: one authentication handshake,
// one byte budget.
type repo struct {
	client *http.Client
	name   name.Repository
	limits Limits
	read   atomic.Int64
	reg    *Registry
	held   atomic.Int64 // bytes of the in-flight budget this session holds
}

// close returns what the session holds to the in-flight budget.
func (r *repo) close() { r.reg.inFlight.Add(-r.held.Swap(0)) }

func (r *Registry) open(ctx context.Context, repository name.Repository, kc authn.Keychain) (*repo, error) {
	auth, err := kc.Resolve(repository)
	if err != nil {
		return nil, fmt.Errorf("%w: finding credentials for %s: %v", ErrRegistry, repository.RegistryStr(), err)
	}
	rt, err := transport.NewWithContext(ctx, repository.Registry, auth, r.base, []string{repository.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistry, repository.RegistryStr(), err)
	}
	c := &http.Client{Transport: rt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("more than 3 redirects")
		}
		return nil
	}}
	return &repo{client: c, name: repository, limits: r.limits, reg: r}, nil
}

var errNotFound = errors.New("not found")

// errBusy: the in-flight budget is spent by other verifications.
var errBusy = fmt.Errorf("%w: busy", ErrRegistry)

// errBudget ends a verification: nothing more may be read for this image.
var errBudget = fmt.Errorf("%w: read budget exhausted", ErrRegistry)

// get reads the body of a GET with at most max bytes, counting them against
// the session's budget. A 404 is errNotFound.
func (r *repo) get(ctx context.Context, url string, accept []string, max int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(accept) > 0 {
		req.Header.Set("Accept", strings.Join(accept, ","))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrRegistry, r.name.RegistryStr(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, errNotFound
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrRegistry, r.name.RegistryStr(), err)
	}
	if resp.ContentLength > max {
		return nil, nil, fmt.Errorf("%w: %s announces %d bytes for %s, more than the limit of %d", ErrRegistry, r.name.RegistryStr(), resp.ContentLength, req.URL.Path, max)
	}
	want := max + 1
	if resp.ContentLength >= 0 {
		want = resp.ContentLength
	}
	if err := r.reg.reserve(want); err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	r.reg.inFlight.Add(int64(len(body)) - want) // keep what was read
	r.held.Add(int64(len(body)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: reading %s: %v", ErrRegistry, r.name.RegistryStr(), req.URL.Path, err)
	}
	if int64(len(body)) > max {
		return nil, nil, fmt.Errorf("%w: %s sent more than the limit of %d bytes for %s", ErrRegistry, r.name.RegistryStr(), max, req.URL.Path)
	}
	if total := r.read.Add(int64(len(body))); total > r.limits.MaxTotalBytes {
		return nil, nil, fmt.Errorf("%w: %s: more than %d bytes for one image", errBudget, r.name.RegistryStr(), r.limits.MaxTotalBytes)
	}
	return body, resp.Header, nil
}

func (r *repo) url(kind, id string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", r.name.Registry.Scheme(), r.name.RegistryStr(), r.name.RepositoryStr(), kind, id)
}

// Manifest is a manifest as fetched, with the digest of its bytes.
type Manifest struct {
	Digest    string
	MediaType string
	Bytes     []byte
}

// IsIndex reports whether the manifest is an image index or manifest list.
func (m Manifest) IsIndex() bool {
	return m.MediaType == string(types.OCIImageIndex) || m.MediaType == string(types.DockerManifestList)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifest fetches a manifest by tag or digest. By digest, the bytes must
// hash to it. The media type is the body's own, and must be one of accept.
func (r *repo) manifest(ctx context.Context, id string, accept []string) (Manifest, error) {
	body, hdr, err := r.get(ctx, r.url("manifests", id), accept, r.limits.MaxManifestBytes)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{Digest: digestOf(body), Bytes: body}
	if strings.HasPrefix(id, "sha256:") && m.Digest != id {
		return Manifest{}, fmt.Errorf("%w: %s served a manifest whose bytes hash to %s for %s@%s", ErrRegistry, r.name.RegistryStr(), m.Digest, r.name, id)
	}
	var probe struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: the manifest of %s:%s is not JSON: %v", ErrRegistry, r.name.RegistryStr(), r.name, id, err)
	}
	m.MediaType = probe.MediaType
	if m.MediaType == "" { // OCI manifests may leave it out; the header then says
		m.MediaType = strings.TrimSpace(strings.Split(hdr.Get("Content-Type"), ";")[0])
	}
	if probe.SchemaVersion != 2 || !contains(accept, m.MediaType) {
		return Manifest{}, fmt.Errorf("%w: %s: %s:%s is a %q manifest (schema %d); only %s are accepted", ErrRegistry, r.name.RegistryStr(), r.name, id, m.MediaType, probe.SchemaVersion, strings.Join(accept, ", "))
	}
	return m, nil
}

// blob fetches a blob the descriptor names, refusing it before the fetch
// when the descriptor announces more than max, and after when the bytes do
// not hash to the descriptor's digest.
func (r *repo) blob(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
	if d.Digest.Algorithm != "sha256" || !digestPattern.MatchString(d.Digest.String()) {
		return nil, fmt.Errorf("%w: %s: a layer has the digest %q; only sha256 is accepted", ErrRegistry, r.name.RegistryStr(), d.Digest)
	}
	if d.Size < 0 || d.Size > max {
		return nil, fmt.Errorf("%w: %s: a layer of %d bytes is larger than the limit of %d", ErrRegistry, r.name.RegistryStr(), d.Size, max)
	}
	body, _, err := r.get(ctx, r.url("blobs", d.Digest.String()), nil, d.Size)
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%w: %s: layer %s is missing", ErrRegistry, r.name.RegistryStr(), d.Digest)
	}
	if err != nil {
		return nil, err
	}
	if got := digestOf(body); got != d.Digest.String() || int64(len(body)) != d.Size {
		return nil, fmt.Errorf("%w: %s: layer %s has %d bytes hashing to %s", ErrRegistry, r.name.RegistryStr(), d.Digest, len(body), got)
	}
	return body, nil
}

// Resolve returns the manifest an image pulls: for a digest, that manifest
// (checked against the digest); for a tag, the manifest the tag names now,
// with its digest computed from the bytes.
func (r *Registry) Resolve(ctx context.Context, img Image, kc authn.Keychain) (Manifest, error) {
	s, err := r.open(ctx, img.Repository, kc)
	if err != nil {
		return Manifest{}, err
	}
	defer s.close()
	id := img.Digest
	if id == "" {
		id = img.Tag
	}
	m, err := s.manifest(ctx, id, imageManifestTypes)
	if errors.Is(err, errNotFound) {
		return Manifest{}, fmt.Errorf("%w: %s: %s %w", ErrRegistry, img.Repository.RegistryStr(), img.Ref, errNotFound)
	}
	return m, err
}

// Unavailable reports whether err is a registry that did not answer — a
// network error, a 5xx or 429 status, the time or the read budget spent —
// rather than an answer about the image (not found, unauthorized, a
// manifest refused): a fault, not a verdict.
func Unavailable(err error) bool {
	var te *transport.Error
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, errBusy), errors.Is(err, errBudget):
		return true
	case errors.As(err, &te):
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests
	case errors.As(err, &ne):
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// attachments reads the cosign attachment manifest (".sig" or ".att") of a
// digest: its layers' descriptors, or none when the tag does not exist.
func (r *repo) attachments(ctx context.Context, digest, suffix string) ([]v1.Descriptor, error) {
	tag := strings.Replace(digest, ":", "-", 1) + "." + suffix
	m, err := r.manifest(ctx, tag, []string{string(types.OCIManifestSchema1), string(types.DockerManifestSchema2)})
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var mf struct {
		Layers json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(m.Bytes, &mf); err != nil {
		return nil, fmt.Errorf("%w: %s: %s:%s is not a manifest: %v", ErrRegistry, r.name.RegistryStr(), r.name, tag, err)
	}
	// Count before decoding every descriptor.
	dec := json.NewDecoder(bytes.NewReader(mf.Layers))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("%w: %s: %s:%s has no layer list", ErrRegistry, r.name.RegistryStr(), r.name, tag)
	}
	var layers []v1.Descriptor
	for dec.More() {
		if len(layers) == r.limits.MaxAttachments {
			return nil, fmt.Errorf("%w: %s: %s:%s has more than %d layers; cosign itself stops at 100", ErrRegistry, r.name.RegistryStr(), r.name, tag, r.limits.MaxAttachments)
		}
		var d v1.Descriptor
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: %s: %s:%s has a malformed layer: %v", ErrRegistry, r.name.RegistryStr(), r.name, tag, err)
		}
		layers = append(layers, d)
	}
	return layers, nil
}
