package images

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Rules the gate reports violations under.
const (
	RuleImage     = "image"     // the reference itself (malformed, unpinned, unresolvable)
	RuleUnmatched = "unmatched" // no policy's globs match the image
	RuleNoPolicy  = "noPolicy"  // no policy selects the namespace
)

// Set is the immutable set of compiled policies in force.
type Set struct {
	policies []*Policy
}

// NewSet returns a set of the policies, in name order.
func NewSet(ps ...*Policy) *Set {
	s := &Set{policies: append([]*Policy(nil), ps...)}
	sort.Slice(s.policies, func(i, j int) bool { return s.policies[i].Name < s.policies[j].Name })
	return s
}

// Policies returns the policies in the set.
func (s *Set) Policies() []*Policy { return s.policies }

// ContainerImage is one image of a workload, located.
type ContainerImage struct {
	// Field is the path of the image field, e.g.
	// spec.template.spec.containers[0].image; empty outside a workload.
	Field string
	// Container is the container's name; empty outside a workload.
	Container string
	// Image is the reference as written.
	Image string
}

// Request is everything the gate needs to decide on one workload.
type Request struct {
	// Subject names the workload, e.g. `Deployment team-a/web`.
	Subject string
	// Namespace and its labels select the policies.
	Namespace       string
	NamespaceLabels map[string]string
	// AllPolicies: every policy applies, whatever its namespace selector
	// (`tollgate verify`, which reads no namespace).
	AllPolicies bool
	// Warn: the namespace only warns (tollgate.dev/gate=warn).
	Warn bool
	// Images to check.
	Images []ContainerImage
	// ResolveTags: a tag is resolved to the digest it names now (the
	// mutating path). Otherwise every image must already carry a digest.
	ResolveTags bool
	// Credentials returns the keychain of the workload's pull secrets and a
	// fingerprint of it; it is called only when a registry must be read.
	Credentials func(context.Context) (authn.Keychain, string, error)

	// Object is the workload as admitted (JSON): Rego's input.resource.
	Object []byte
	// Operation, User and Groups are Rego's input.request.
	Operation string
	User      string
	Groups    []string
}

// Outcome is the gate's answer for one workload.
type Outcome struct {
	policy.Decision
	// Pins maps the field of each tag-only image to its pinned reference.
	Pins map[string]string
	// Results are the verification results, one per (digest, policy).
	Results []*Result
	// Hits counts the results served from the cache.
	Hits int
	// Rego says whether user rules ran, how long they took in all, and
	// what they found.
	Rego         bool
	RegoDuration time.Duration
	RegoDenials  []policy.Violation
	RegoWarnings []policy.Violation
}

// Gate verifies workloads' images against a policy set, through a cache.
type Gate struct {
	Verifier *Verifier
	Cache    *Cache
}

type creds struct {
	fn   func(context.Context) (authn.Keychain, string, error)
	kc   authn.Keychain
	fp   string
	err  error
	done bool
}

func (c *creds) get(ctx context.Context) (authn.Keychain, string, error) {
	if !c.done {
		c.done = true
		if c.fn == nil {
			c.kc, c.fp = authn.NewMultiKeychain(), "anonymous"
		} else {
			c.kc, c.fp, c.err = c.fn(ctx)
		}
	}
	return c.kc, c.fp, c.err
}

// Check decides on the request's images. It never returns an error: what
// cannot be checked is a violation that names why.
func (g *Gate) Check(ctx context.Context, set *Set, req Request) *Outcome {
	c := &check{
		gate:      g,
		req:       &req,
		out:       &Outcome{Decision: policy.Decision{Subject: req.Subject}, Pins: map[string]string{}},
		creds:     &creds{fn: req.Credentials},
		rin:       &regoInput{req: req},
		resolved:  map[string]Manifest{},
		failedRef: map[string]error{},
		verified:  map[Key]*Result{},
		unmatched: v1alpha1.UnmatchedAllow,
	}
	for _, p := range set.policies {
		if req.AllPolicies || p.Selects(req.NamespaceLabels) {
			c.selecting = append(c.selecting, p)
			c.unmatched = stricter(c.unmatched, p.Unmatched)
		}
	}
	for _, ci := range req.Images {
		c.image(ctx, ci)
	}
	return c.out
}

// check is the state of one Check: what it has resolved and verified
// (each reference and each (digest, policy) once per request).
type check struct {
	gate      *Gate
	req       *Request
	out       *Outcome
	creds     *creds
	rin       *regoInput
	selecting []*Policy
	unmatched v1alpha1.UnmatchedAction
	resolved  map[string]Manifest // by reference as written
	failedRef map[string]error
	verified  map[Key]*Result
}

// image decides one container image: the policies whose globs match it,
// its digest, then each policy's verification and rules.
func (c *check) image(ctx context.Context, ci ContainerImage) {
	v := policy.Violation{Rule: RuleImage, Field: ci.Field}
	if ci.Container != "" {
		v.Step = fmt.Sprintf("container %q", ci.Container)
	}
	img, err := ParseImage(ci.Image)
	if err != nil {
		v.Message, v.Fix = err.Error(), "name the image as registry/repository[:tag][@sha256:<64 lowercase hex>]"
		c.out.add(v, c.req.Warn)
		return
	}
	if len(c.selecting) == 0 {
		v.Rule = RuleNoPolicy
		v.Message = fmt.Sprintf("image %s: no ClusterImagePolicy selects namespace %s, which is gated", ci.Image, c.req.Namespace)
		v.Fix = "create a ClusterImagePolicy whose namespaceSelector selects it, or remove the tollgate.dev/gate label"
		c.out.add(v, c.req.Warn)
		return
	}
	var matching []*Policy
	for _, p := range c.selecting {
		if p.Matches(img) {
			matching = append(matching, p)
		}
	}
	if len(matching) == 0 {
		v.Rule, v.Policy = RuleUnmatched, strings.Join(names(c.selecting), ",")
		v.Message = fmt.Sprintf("image %s (%s) matches no image glob of the policies selecting namespace %s", ci.Image, img, c.req.Namespace)
		v.Fix = "add a glob for its repository to a ClusterImagePolicy"
		switch c.unmatched {
		case v1alpha1.UnmatchedDeny:
			c.out.add(v, c.req.Warn)
		case v1alpha1.UnmatchedWarn:
			c.out.add(v, true)
		}
		return
	}
	v.Policy = matching[0].Name
	kc, fp, digest, ok := c.digest(ctx, ci, img, matching, v)
	if !ok {
		return
	}
	for _, p := range matching {
		c.verify(ctx, ci, img, digest, p, kc, fp, v)
	}
}

// digest returns the image's digest — resolving its tag when the request
// allows — and the keychain it is read with; a violation, and false, when
// there is none.
func (c *check) digest(ctx context.Context, ci ContainerImage, img Image, matching []*Policy, v policy.Violation) (authn.Keychain, string, string, bool) {
	if img.Digest == "" && !c.req.ResolveTags {
		v.Message = fmt.Sprintf("image %s is not pinned to a digest; the mutating webhook pins verified images", ci.Image)
		v.Fix = "check that the /mutate-workloads webhook is registered, or name the image by @sha256: digest"
		c.out.add(v, c.req.Warn)
		return nil, "", "", false
	}
	kc, fp, err := c.creds.get(ctx)
	if err != nil {
		v.Message = fmt.Sprintf("image %s: reading the pull secrets: %v", ci.Image, err)
		v.Fix = "fix the pod's imagePullSecrets and its service account's"
		c.out.add(v, c.req.Warn)
		return nil, "", "", false
	}
	if img.Digest != "" {
		return kc, fp, img.Digest, true
	}
	m, ok := c.resolved[ci.Image]
	if !ok && c.failedRef[ci.Image] == nil {
		if m, err = c.gate.Verifier.registry.Resolve(ctx, img, kc); err != nil {
			c.failedRef[ci.Image] = err
		} else {
			c.resolved[ci.Image] = m
		}
	}
	if err := c.failedRef[ci.Image]; err != nil {
		v.Message = fmt.Sprintf("image %s: resolving the tag: %s", ci.Image, oneLine(err))
		v.Fix = "check that the image exists and that the pod's pull secrets can read it"
		if Unavailable(err) {
			v.Fix = "retry once the registry answers; the gate fails closed"
			v.Internal = true
		}
		c.out.add(v, c.req.Warn || allWarn(matching))
		return nil, "", "", false
	}
	c.out.Pins[ci.Field] = img.Pinned(m.Digest)
	return kc, fp, m.Digest, true
}

// verify verifies the digest under one policy (once per request, through
// the cache) and reports its failures and its rules' findings under the
// policy's mode.
func (c *check) verify(ctx context.Context, ci ContainerImage, img Image, digest string, p *Policy, kc authn.Keychain, fp string, v policy.Violation) {
	warn := c.req.Warn || p.Mode == v1alpha1.ImageWarn
	v.Policy = p.Name
	k := Key{Repository: img.Repository.Name(), Credentials: fp, Digest: digest, Fingerprint: p.fingerprint}
	res, ok := c.verified[k]
	if !ok {
		var hit bool
		var err error
		res, hit, err = c.gate.Cache.Do(ctx, k, func(vctx context.Context) (*Result, error) {
			return c.gate.Verifier.Verify(vctx, img.Repository, digest, p, kc)
		})
		if err != nil {
			v.Message = fmt.Sprintf("image %s@%s could not be verified: %s", img.Repository, digest, describe(err))
			v.Fix = "retry once the registry answers; the gate fails closed"
			v.Internal = true
			var pe *PanicError
			if errors.As(err, &pe) {
				logr.FromContextOrDiscard(ctx).Error(pe, "a verification panicked; denying", "image", img.Repository.Name(), "digest", digest, "policy", p.Name, "stack", string(pe.Stack))
				v.Fix = "report it to the Tollgate maintainers with the webhook's log (tollgate_image_verification_panics_total counts these); the gate fails closed"
			}
			c.out.add(v, warn)
			return
		}
		if hit {
			c.out.Hits++
		}
		c.verified[k] = res
		c.out.Results = append(c.out.Results, res)
	}
	for _, f := range res.Failures {
		fv := v
		fv.Rule = f.Requirement
		fv.Message = fmt.Sprintf("image %s@%s: %s", img.Repository, digest, f.Message)
		fv.Fix = fix(f.Requirement)
		c.out.add(fv, warn)
	}
	if !res.Verified() || !p.HasRego() {
		return
	}
	c.rin.image = map[string]any{"ref": ci.Image, "repository": img.String(), "tag": img.Tag, "digest": digest}
	start := time.Now()
	found := userRules(ctx, p, res, c.rin, v)
	c.out.Rego, c.out.RegoDuration = true, c.out.RegoDuration+time.Since(start)
	for _, uv := range found {
		w := uv.warn || warn
		c.out.add(uv.Violation, w)
		if w {
			c.out.RegoWarnings = append(c.out.RegoWarnings, uv.Violation)
		} else {
			c.out.RegoDenials = append(c.out.RegoDenials, uv.Violation)
		}
	}
}

// allWarn reports whether every policy only warns.
func allWarn(ps []*Policy) bool {
	for _, p := range ps {
		if p.Mode != v1alpha1.ImageWarn {
			return false
		}
	}
	return true
}

func (o *Outcome) add(v policy.Violation, warn bool) {
	if warn {
		o.Warnings = append(o.Warnings, v)
	} else {
		o.Denials = append(o.Denials, v)
	}
}

func stricter(a, b v1alpha1.UnmatchedAction) v1alpha1.UnmatchedAction {
	rank := map[v1alpha1.UnmatchedAction]int{v1alpha1.UnmatchedAllow: 0, v1alpha1.UnmatchedWarn: 1, v1alpha1.UnmatchedDeny: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func names(ps []*Policy) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the verification did not finish within the admission budget"
	case errors.Is(err, context.Canceled):
		return "the admission request was cancelled"
	}
	return oneLine(err)
}

func fix(requirement string) string {
	if requirement == RequirementSignature {
		return "sign the image by digest with one of the policy's authorities (cosign sign --key ... IMAGE@DIGEST, or let Tollgate's signer sign it)"
	}
	return "attach the attestation for this digest, signed by one of the policy's authorities (cosign attest, or Tollgate's signer with oci storage)"
}
