package runs

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Reserved annotation prefixes: what the signer trusts and the run guard stamps.
var reservedPrefixes = []string{"tollgate.dev/", "chains.tekton.dev/"}

// userSettable are reserved annotations users may set: Chains' opt-in to the
// transparency log changes where a signature is published, not what is trusted.
var userSettable = map[string]bool{"chains.tekton.dev/transparency-upload": true}

// Operations of an admission request.
const (
	OpCreate = "CREATE"
	OpUpdate = "UPDATE"
)

// stampAnnotation reports the annotations the run guard's mutating webhook
// writes itself (and validates), never a user.
func stampAnnotation(k string) bool {
	return k == specdigest.Annotation || k == specdigest.MACAnnotation
}

// Identities configures who is more than a user to the run guard.
type Identities struct {
	// TektonControllers may update run status and create runs that carry
	// reserved annotations copied from their parent (child TaskRuns).
	TektonControllers []string
	// Trusted are Tollgate's own service accounts (the signer): they may write
	// the reserved annotations.
	Trusted []string
}

// The identities of a standard installation: Tekton's controller in
// tekton-pipelines, Tollgate's signer in tollgate-system.
const (
	DefaultTektonController = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"
	DefaultSigner           = "system:serviceaccount:tollgate-system:tollgate-signer"
)

// DefaultIdentities are the identities of a standard installation (the
// chart's, and the flags' defaults).
func DefaultIdentities() Identities {
	return Identities{TektonControllers: []string{DefaultTektonController}, Trusted: []string{DefaultSigner}}
}

func (ids Identities) trusted(user string) bool {
	return slices.Contains(ids.Trusted, user) || slices.Contains(ids.TektonControllers, user)
}

// checkIntegrity applies the specIntegrity check of every policy to one
// review: the stamped digest must match the spec (on CREATE, after every
// mutating webhook), the spec must not change on UPDATE, reserved
// annotations are written only by trusted identities, and status only by the
// Tekton controller. Only the object metadata and the raw spec are read, so
// this works on any run, however large or odd its spec.
func checkIntegrity(f *Facts) policy.Decision {
	r, in := &f.Review, f.Run
	fs := integrityFindings(f)
	// Reserved annotations where Tekton copies them from into child runs,
	// as gathered at CREATE (the spec cannot change afterwards).
	if r.decidesAll() && !slices.Contains(f.Identities.Trusted, r.User) {
		fs = append(fs, reservedIn(in.Copied)...)
	}
	return applyFindings(policy.Decision{Subject: in.Subject()}, f.Policies, in, fs)
}

// applyFindings reports specIntegrity findings under each policy's mode.
func applyFindings(d policy.Decision, policies []*Policy, in *Input, fs []finding) policy.Decision {
	if len(fs) == 0 {
		return d
	}
	for _, p := range policies {
		mode := p.mode(v1alpha1.CheckSpecIntegrity)
		if mode == v1alpha1.Off {
			continue
		}
		if reason, ok := p.ExemptRun(v1alpha1.CheckSpecIntegrity, in); ok {
			d.Exempted = appendNote(d.Exempted, policy.Note{Policy: p.Name, Rule: string(v1alpha1.CheckSpecIntegrity), Reason: "exempted: " + reason})
			continue
		}
		for _, f := range fs {
			v := f.toViolation(p.Name)
			if mode == v1alpha1.Warn {
				d.Warnings = append(d.Warnings, v)
			} else {
				d.Denials = append(d.Denials, v)
			}
		}
	}
	return d
}

type objectMeta struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func annotationsOf(raw []byte) (map[string]string, error) {
	var m objectMeta
	if err := apijson.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding metadata: %w", err)
	}
	return m.Metadata.Annotations, nil
}

func reserved(key string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func integrityFindings(f *Facts) []finding {
	req, ids := &f.Review, f.Identities
	mk := func(field, msg, fix string) finding {
		return finding{check: v1alpha1.CheckSpecIntegrity, object: field, message: msg, fix: fix}
	}
	if req.SubResource == "status" {
		if slices.Contains(ids.TektonControllers, req.User) {
			return nil
		}
		return []finding{mk("status", fmt.Sprintf("only the Tekton controller may update a run's status; %q is not one of %v", req.User, ids.TektonControllers),
			"let Tekton write status; if Tekton runs under another service account, add it to the webhook's --tekton-controller-users")}
	}
	if req.SubResource != "" {
		return nil
	}
	newAnn, oldAnn := f.Run.Annotations, f.OldAnnotations
	var fs []finding
	digest, err := specdigest.OfObject(req.Object)
	if err != nil {
		return []finding{mk("spec", "computing the spec digest: "+err.Error(), "send a run with a valid spec")}
	}

	// Reserved annotations: any change other than by Tollgate's signer. The
	// Tekton controller is not trusted here: it copies annotations from
	// Tasks, Pipelines and embedded metadata that users write.
	if !slices.Contains(ids.Trusted, req.User) {
		for _, k := range reservedChanges(oldAnn, newAnn) {
			fs = append(fs, mk("metadata.annotations", fmt.Sprintf("annotation %s is reserved for Tollgate's signer; %q may not set, change or remove it", k, req.User),
				"remove the annotation from the run; the signer writes it when it signs"))
		}
	}

	switch req.Operation {
	case OpCreate:
		got, ok := newAnn[specdigest.Annotation]
		switch {
		case !ok:
			fs = append(fs, mk("metadata.annotations", "the run has no "+specdigest.Annotation+" annotation: the run guard's mutating webhook did not stamp it",
				"check that the tollgate MutatingWebhookConfiguration is installed and matches this resource"))
		case got != digest:
			fs = append(fs, mk("spec", fmt.Sprintf("the spec changed after it was stamped (stamped %s, now %s): another mutating webhook changed it after Tollgate, or the stamp was forged", got, digest),
				"register that webhook before Tollgate's, or keep reinvocationPolicy: IfNeeded on Tollgate's mutating webhook"))
		case f.Keys != nil:
			if err := f.Keys.Verify(req.Namespace, req.Kind, digest, newAnn[specdigest.MACAnnotation]); err != nil {
				fs = append(fs, mk("metadata.annotations", fmt.Sprintf("annotation %s: %v", specdigest.MACAnnotation, err),
					"check that the tollgate MutatingWebhookConfiguration is installed and that the webhook reads its stamp key Secret"))
			}
		}
	case OpUpdate:
		oldDigest, err := specdigest.OfObject(req.OldObject)
		if err != nil {
			return append(fs, mk("spec", "old object: computing the spec digest: "+err.Error(), ""))
		}
		if oldDigest != digest {
			fs = append(fs, mk("spec", "the spec of an admitted run may not change (only spec.status and spec.statusMessage, to cancel it)",
				"create a new run instead of editing this one"))
		}
		removed, err := finalizerRemoved(req.OldObject, req.Object, req.User, ids)
		if err != nil {
			return append(fs, mk("metadata", "decoding the run: "+err.Error(), ""))
		}
		fs = append(fs, removed...)
		for _, k := range []string{specdigest.Annotation, specdigest.MACAnnotation} {
			if newAnn[k] != oldAnn[k] && !slices.Contains(ids.Trusted, req.User) {
				fs = append(fs, mk("metadata.annotations", fmt.Sprintf("annotation %s may not be changed or removed after admission", k),
					"leave the annotation as Tollgate stamped it"))
			}
		}
	}
	return fs
}

// reservedChanges lists the reserved annotations (other than the stamp and
// what users may set) that differ between old and new, sorted.
func reservedChanges(oldAnn, newAnn map[string]string) []string {
	var changed []string
	for k, v := range newAnn {
		if !reserved(k) || userSettable[k] || stampAnnotation(k) {
			continue
		}
		if old, ok := oldAnn[k]; !ok || old != v {
			changed = append(changed, k)
		}
	}
	for k := range oldAnn {
		if reserved(k) && !userSettable[k] && !stampAnnotation(k) {
			if _, ok := newAnn[k]; !ok {
				changed = append(changed, k+" (removed)")
			}
		}
	}
	sort.Strings(changed)
	return changed
}
