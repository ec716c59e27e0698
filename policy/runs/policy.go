package runs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/tollgate-dev/tollgate/policy/rego"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// DefaultPolicyName names the built-in policy that applies to a namespace no
// ClusterRunPolicy selects.
const DefaultPolicyName = "tollgate-default"

// DefaultCeilingClusterRole is the ceiling used when a policy names none.
const DefaultCeilingClusterRole = "tollgate-run-ceiling"

// KnownResolvers are the resolvers whose pinning rule the run guard knows.
var KnownResolvers = []string{"hub", "git", "bundles", "cluster", "http"}

// Default fills the unset fields of a ClusterRunPolicy spec with their
// documented defaults, the same ones the CRD schema applies.
func Default(spec *v1alpha1.ClusterRunPolicySpec) {
	for _, m := range []*v1alpha1.Mode{&spec.ServiceAccount.Mode, &spec.PodSecurity.Mode, &spec.Resources.Mode, &spec.PinnedRefs.Mode, &spec.SpecIntegrity.Mode} {
		if *m == "" {
			*m = v1alpha1.Enforce
		}
	}
	if spec.ServiceAccount.CeilingClusterRole == "" {
		spec.ServiceAccount.CeilingClusterRole = DefaultCeilingClusterRole
	}
	if spec.PodSecurity.Level == "" {
		spec.PodSecurity.Level = string(psaapi.LevelRestricted)
	}
	if spec.PodSecurity.Version == "" {
		spec.PodSecurity.Version = "latest"
	}
	if spec.PinnedRefs.AllowedResolvers == nil {
		spec.PinnedRefs.AllowedResolvers = []string{"hub", "git", "bundles", "cluster"}
	}
	if spec.PinnedRefs.MaxParamLength == 0 {
		spec.PinnedRefs.MaxParamLength = 512
	}
}

// Policy is a ClusterRunPolicy compiled for evaluation. It is immutable.
type Policy struct {
	Name       string
	UID        string
	Generation int64
	Spec       v1alpha1.ClusterRunPolicySpec

	selector labels.Selector
	psa      psaapi.LevelVersion
	maxima   map[corev1.ResourceName]resource.Quantity
	defaults map[corev1.ResourceName]resource.Quantity

	// Rego is the policy's compiled user rules, or nil.
	Rego *rego.Program
}

// Compile validates and defaults a ClusterRunPolicy and compiles its Rego
// (reading ConfigMap references through cms, which may be nil offline).
// The error names every invalid setting.
func Compile(ctx context.Context, p *v1alpha1.ClusterRunPolicy, cms rego.ConfigMaps) (*Policy, error) {
	spec := *p.Spec.DeepCopy()
	Default(&spec)
	out := &Policy{Name: p.Name, UID: string(p.UID), Generation: p.Generation, Spec: spec}
	var errs []error

	if spec.NamespaceSelector == nil {
		out.selector = labels.Everything()
	} else {
		s, err := metav1.LabelSelectorAsSelector(spec.NamespaceSelector)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.namespaceSelector: %w", err))
		}
		out.selector = s
	}
	if a := spec.Artifacts; a != nil {
		if _, err := compileRepositories(a.Repositories); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, validateModes(&spec)...)
	level, err := psaapi.ParseLevel(spec.PodSecurity.Level)
	if err != nil || level == psaapi.LevelPrivileged {
		errs = append(errs, fmt.Errorf("spec.podSecurity.level: %q is not one of baseline, restricted", spec.PodSecurity.Level))
	}
	version, err := psaapi.ParseVersion(spec.PodSecurity.Version)
	if err != nil {
		errs = append(errs, fmt.Errorf("spec.podSecurity.version: %q is not \"latest\" or a version like v1.35", spec.PodSecurity.Version))
	}
	out.psa = psaapi.LevelVersion{Level: level, Version: version}

	var resErrs []error
	out.defaults, out.maxima, resErrs = compileLimits(&spec.Resources)
	errs = append(errs, resErrs...)
	for i, r := range spec.PinnedRefs.AllowedResolvers {
		if !slices.Contains(KnownResolvers, r) {
			errs = append(errs, fmt.Errorf("spec.pinnedRefs.allowedResolvers[%d]: unknown resolver %q (known: %v)", i, r, KnownResolvers))
		}
	}
	if n := spec.PinnedRefs.MaxParamLength; n < 16 || n > 8192 {
		errs = append(errs, fmt.Errorf("spec.pinnedRefs.maxParamLength: %d is not within 16..8192", n))
	}
	errs = append(errs, validateExemptions(spec.Exemptions)...)
	if len(spec.Rego) > 0 {
		mods, err := rego.Sources(ctx, p.Name, spec.Rego, cms)
		if err == nil {
			out.Rego, err = rego.Compile(ctx, mods, rego.DefaultOptions())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.rego: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// validateModes refuses a mode that is not Enforce, Warn or Off.
func validateModes(spec *v1alpha1.ClusterRunPolicySpec) []error {
	var errs []error
	for _, m := range []struct {
		path string
		mode v1alpha1.Mode
	}{
		{"spec.serviceAccount.mode", spec.ServiceAccount.Mode},
		{"spec.podSecurity.mode", spec.PodSecurity.Mode},
		{"spec.resources.mode", spec.Resources.Mode},
		{"spec.pinnedRefs.mode", spec.PinnedRefs.Mode},
		{"spec.specIntegrity.mode", spec.SpecIntegrity.Mode},
	} {
		switch m.mode {
		case v1alpha1.Enforce, v1alpha1.Warn, v1alpha1.Off:
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not one of Enforce, Warn, Off", m.path, m.mode))
		}
	}
	return errs
}

// compileLimits reads the default and maximum limits; a default over its
// maximum is refused.
func compileLimits(r *v1alpha1.ResourcesCheck) (defaults, maxima map[corev1.ResourceName]resource.Quantity, errs []error) {
	defaults, err := resourceMap("spec.resources.defaultLimits", r.DefaultLimits)
	if err != nil {
		errs = append(errs, err)
	}
	maxima, err = resourceMap("spec.resources.maxLimits", r.MaxLimits)
	if err != nil {
		errs = append(errs, err)
	}
	for name, d := range defaults {
		if m, ok := maxima[name]; ok && d.Cmp(m) > 0 {
			errs = append(errs, fmt.Errorf("spec.resources.defaultLimits.%s: %s exceeds spec.resources.maxLimits.%s %s", name, d.String(), name, m.String()))
		}
	}
	return defaults, maxima, errs
}

// validateExemptions requires each exemption's reason and scope, and
// known check names.
func validateExemptions(exemptions []v1alpha1.Exemption) []error {
	var errs []error
	for i, e := range exemptions {
		if e.Reason == "" {
			errs = append(errs, fmt.Errorf("spec.exemptions[%d].reason: required", i))
		}
		if len(e.Namespaces)+len(e.Pipelines)+len(e.Tasks) == 0 {
			errs = append(errs, fmt.Errorf("spec.exemptions[%d]: names no namespace, pipeline or task", i))
		}
		for j, c := range e.Checks {
			if !slices.Contains(v1alpha1.AllChecks, c) {
				errs = append(errs, fmt.Errorf("spec.exemptions[%d].checks[%d]: unknown check %q", i, j, c))
			}
		}
	}
	return errs
}

func resourceMap(path string, l corev1.ResourceList) (map[corev1.ResourceName]resource.Quantity, error) {
	out := map[corev1.ResourceName]resource.Quantity{}
	for name, q := range l {
		switch name {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		default:
			return nil, fmt.Errorf("%s: %q is not one of cpu, memory, ephemeral-storage", path, name)
		}
		if q.Sign() <= 0 {
			return nil, fmt.Errorf("%s.%s: %s is not positive", path, name, q.String())
		}
		out[name] = q
	}
	return out, nil
}

// BuiltinDefault returns the policy that applies where no ClusterRunPolicy
// selects a namespace: every check in Enforce with its default settings.
func BuiltinDefault() *Policy {
	p, err := Compile(context.Background(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: DefaultPolicyName}}, nil)
	if err != nil {
		panic("the built-in default run policy does not compile: " + err.Error()) // a programming error, caught by tests
	}
	return p
}

// Set is an immutable snapshot of the compiled run policies.
type Set struct {
	policies []*Policy // sorted by name
	fallback *Policy
}

// NewSet returns a snapshot of policies; fallback applies where none selects a namespace.
func NewSet(fallback *Policy, policies ...*Policy) *Set {
	ps := append([]*Policy(nil), policies...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return &Set{policies: ps, fallback: fallback}
}

// Policies returns the policies in the set, sorted by name.
func (s *Set) Policies() []*Policy { return s.policies }

// ForNamespace returns the policies selecting a namespace with these labels,
// or the fallback when none does.
func (s *Set) ForNamespace(nsLabels map[string]string) []*Policy {
	var out []*Policy
	set := labels.Set(nsLabels)
	for _, p := range s.policies {
		if p.selector.Matches(set) {
			out = append(out, p)
		}
	}
	if len(out) == 0 && s.fallback != nil {
		out = append(out, s.fallback)
	}
	return out
}
