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
	// Field is the path of the image field, e.g. spec.template.spec.containers[0].image.
	Field string
	// Container is the container's name.
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
	out := &Outcome{Decision: policy.Decision{Subject: req.Subject}, Pins: map[string]string{}}
	cr := &creds{fn: req.Credentials}
	var selecting []*Policy
	for _, p := range set.policies {
		if p.Selects(req.NamespaceLabels) {
			selecting = append(selecting, p)
		}
	}
	unmatched := v1alpha1.UnmatchedAllow
	for _, p := range selecting {
		unmatched = stricter(unmatched, p.Unmatched)
	}

	rin := &regoInput{req: req}
	resolved := map[string]Manifest{} // by reference as written
	failedRef := map[string]error{}
	verified := map[Key]*Result{}

	for _, ci := range req.Images {
		v := policy.Violation{Rule: RuleImage, Field: ci.Field, Step: fmt.Sprintf("container %q", ci.Container)}
		img, err := ParseImage(ci.Image)
		if err != nil {
			v.Message, v.Fix = err.Error(), "name the image as registry/repository[:tag][@sha256:<64 lowercase hex>]"
			out.add(v, req.Warn)
			continue
		}
		if len(selecting) == 0 {
			v.Rule = RuleNoPolicy
			v.Message = fmt.Sprintf("image %s: no ClusterImagePolicy selects namespace %s, which is gated", ci.Image, req.Namespace)
			v.Fix = "create a ClusterImagePolicy whose namespaceSelector selects it, or remove the tollgate.dev/gate label"
			out.add(v, req.Warn)
			continue
		}
		var matching []*Policy
		for _, p := range selecting {
			if p.Matches(img) {
				matching = append(matching, p)
			}
		}
		if len(matching) == 0 {
			v.Rule, v.Policy = RuleUnmatched, strings.Join(names(selecting), ",")
			v.Message = fmt.Sprintf("image %s (%s) matches no image glob of the policies selecting namespace %s", ci.Image, img, req.Namespace)
			v.Fix = "add a glob for its repository to a ClusterImagePolicy"
			switch unmatched {
			case v1alpha1.UnmatchedDeny:
				out.add(v, req.Warn)
			case v1alpha1.UnmatchedWarn:
				out.add(v, true)
			}
			continue
		}
		digest := img.Digest
		if digest == "" && !req.ResolveTags {
			v.Policy = matching[0].Name
			v.Message = fmt.Sprintf("image %s is not pinned to a digest; the mutating webhook pins verified images", ci.Image)
			v.Fix = "check that the /mutate-workloads webhook is registered, or name the image by @sha256: digest"
			out.add(v, req.Warn)
			continue
		}
		kc, fp, err := cr.get(ctx)
		if err != nil {
			v.Policy = matching[0].Name
			v.Message = fmt.Sprintf("image %s: reading the pull secrets: %v", ci.Image, err)
			v.Fix = "fix the pod's imagePullSecrets and its service account's"
			out.add(v, req.Warn)
			continue
		}
		if digest == "" {
			m, ok := resolved[ci.Image]
			if !ok && failedRef[ci.Image] == nil {
				m, err = g.Verifier.registry.Resolve(ctx, img, kc)
				if err != nil {
					failedRef[ci.Image] = err
				} else {
					resolved[ci.Image] = m
				}
			}
			if err := failedRef[ci.Image]; err != nil {
				v.Policy = matching[0].Name
				v.Message = fmt.Sprintf("image %s: resolving the tag: %s", ci.Image, oneLine(err))
				v.Fix = "check that the image exists and that the pod's pull secrets can read it"
				out.add(v, req.Warn || anyWarn(matching))
				continue
			}
			digest = m.Digest
			out.Pins[ci.Field] = img.Pinned(digest)
		}
		for _, p := range matching {
			k := Key{Repository: img.Repository.Name(), Credentials: fp, Digest: digest, Fingerprint: p.fingerprint}
			res, ok := verified[k]
			if !ok {
				var hit bool
				res, hit, err = g.Cache.Do(ctx, k, func(vctx context.Context) (*Result, error) {
					return g.Verifier.Verify(vctx, img.Repository, digest, p, kc)
				})
				if err != nil {
					pv := v
					pv.Policy = p.Name
					pv.Message = fmt.Sprintf("image %s@%s could not be verified: %s", img.Repository, digest, describe(err))
					pv.Fix = "retry once the registry answers; the gate fails closed"
					pv.Internal = true
					var pe *PanicError
					if errors.As(err, &pe) {
						logr.FromContextOrDiscard(ctx).Error(pe, "a verification panicked; denying", "image", img.Repository.Name(), "digest", digest, "policy", p.Name, "stack", string(pe.Stack))
						pv.Fix = "report it to the Tollgate maintainers with the webhook's log (tollgate_image_verification_panics_total counts these); the gate fails closed"
					}
					out.add(pv, req.Warn || p.Mode == v1alpha1.ImageWarn)
					continue
				}
				if hit {
					out.Hits++
				}
				verified[k] = res
				out.Results = append(out.Results, res)
			}
			for _, f := range res.Failures {
				pv := v
				pv.Policy, pv.Rule = p.Name, f.Requirement
				pv.Message = fmt.Sprintf("image %s@%s: %s", img.Repository, digest, f.Message)
				pv.Fix = fix(f.Requirement)
				out.add(pv, req.Warn || p.Mode == v1alpha1.ImageWarn)
			}
			if res.Verified() && p.HasRego() {
				rin.image = map[string]any{"ref": ci.Image, "repository": img.String(), "tag": img.Tag, "digest": digest}
				start := time.Now()
				found := userRules(ctx, p, res, rin, v)
				out.Rego, out.RegoDuration = true, out.RegoDuration+time.Since(start)
				for _, pv := range found {
					warn := pv.warn || req.Warn || p.Mode == v1alpha1.ImageWarn
					out.add(pv.Violation, warn)
					if warn {
						out.RegoWarnings = append(out.RegoWarnings, pv.Violation)
					} else {
						out.RegoDenials = append(out.RegoDenials, pv.Violation)
					}
				}
			}
		}
	}
	return out
}

func anyWarn(ps []*Policy) bool {
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
