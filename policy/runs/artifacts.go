package runs

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Ownership says which image repositories the runs of a namespace own, from
// the artifacts.repositories of the ClusterRunPolicies selecting it. It is
// the signer's decision whether a run may claim an image.
type Ownership struct {
	// Policies that select the namespace and declare repositories, by name.
	Policies []string
	globs    []*images.Glob
}

// OwnershipFor gathers the repositories the policies grant a namespace with
// these labels. A policy whose selector or globs do not compile grants
// nothing (the webhook reports it in the policy's status).
func OwnershipFor(policies []v1alpha1.ClusterRunPolicy, nsLabels map[string]string) *Ownership {
	o := &Ownership{}
	for i := range policies {
		p := &policies[i]
		if p.Spec.Artifacts == nil || !selects(p.Spec.NamespaceSelector, nsLabels) {
			continue
		}
		globs, err := compileRepositories(p.Spec.Artifacts.Repositories)
		if err != nil {
			continue
		}
		o.Policies = append(o.Policies, p.Name)
		o.globs = append(o.globs, globs...)
	}
	sort.Strings(o.Policies)
	return o
}

func selects(sel *metav1.LabelSelector, nsLabels map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(nsLabels))
}

func compileRepositories(globs []string) ([]*images.Glob, error) {
	out := make([]*images.Glob, 0, len(globs))
	for i, g := range globs {
		c, err := images.CompileGlob(g)
		if err != nil {
			return nil, fmt.Errorf("spec.artifacts.repositories[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Owns reports whether the namespace owns the repository of ref (an image
// reference). When it does not, the error says what it owns.
func (o *Ownership) Owns(ref string) error {
	img, err := images.ParseImage(ref)
	if err != nil {
		return err
	}
	for _, g := range o.globs {
		if g.Match(img) {
			return nil
		}
	}
	if len(o.Policies) == 0 {
		return fmt.Errorf("repository %s is owned by no one here: no ClusterRunPolicy selecting the namespace declares spec.artifacts.repositories", img)
	}
	owned := make([]string, len(o.globs))
	for i, g := range o.globs {
		owned[i] = g.String()
	}
	return fmt.Errorf("repository %s is not among the namespace's repositories %s (ClusterRunPolicies %s)", img, strings.Join(owned, ", "), strings.Join(o.Policies, ", "))
}
