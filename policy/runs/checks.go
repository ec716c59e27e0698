package runs

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	psapolicy "k8s.io/pod-security-admission/policy"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/rbac"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// emptyMeta stands in for the metadata of a Pod that does not exist yet.
var emptyMeta metav1.ObjectMeta

// psaEvaluator is built once: the Pod Security Standards checks are data.
var psaEvaluator = func() psapolicy.Evaluator {
	e, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		panic("building the pod security evaluator: " + err.Error())
	}
	return e
}()

// finding is a violation before a policy, mode and exemption are applied.
type finding struct {
	check   v1alpha1.CheckName
	unit    *Unit // nil for run-wide findings
	object  string
	path    *field.Path
	step    string
	message string
	fix     string
}

func where(object string, p *field.Path) string {
	if p == nil {
		return object
	}
	if object == "" {
		return p.String()
	}
	return object + ": " + p.String()
}

// --- serviceAccount ---

func checkServiceAccounts(p *Policy, in *Input) (fs []finding, skipped []string) {
	fieldHint := "spec.taskRunTemplate.serviceAccountName (or spec.taskRunSpecs[].serviceAccountName)"
	if in.Kind == KindTaskRun {
		fieldHint = "spec.serviceAccountName"
	}
	resolved := len(in.Units) > 0 && len(in.Unresolved) == 0
	var ceiling []rbacv1.PolicyRule
	ceilingName := p.Spec.ServiceAccount.CeilingClusterRole
	ceilingFound := false
	if in.ClusterKnown {
		ceiling, ceilingFound = in.RBAC.ClusterRole(ceilingName)
	}
	seen := map[string]bool{}
	for _, use := range in.ServiceAccounts {
		// The template's account is not used when every task has its own.
		if in.Kind == KindPipelineRun && resolved && len(use.Tasks) == 0 {
			continue
		}
		tasks := ""
		if len(use.Tasks) > 0 {
			tasks = " (tasks " + strings.Join(quoteAll(use.Tasks), ", ") + ")"
		}
		switch use.Name {
		case "":
			fs = append(fs, finding{check: v1alpha1.CheckServiceAccount, path: use.Path,
				message: "no service account is named" + tasks + ", so Tekton runs the task as the namespace's \"default\" service account",
				fix:     "set " + fieldHint + " to a dedicated service account"})
			continue
		case "default":
			fs = append(fs, finding{check: v1alpha1.CheckServiceAccount, path: use.Path,
				message: "service account \"default\"" + tasks + " is not allowed: it is shared by every workload in the namespace",
				fix:     "set " + fieldHint + " to a dedicated service account"})
			continue
		}
		if seen[use.Name] {
			continue
		}
		seen[use.Name] = true
		if !in.ClusterKnown {
			skipped = append(skipped, fmt.Sprintf("service account %q: existence and RBAC not checked (no cluster state; pass --cluster-state DIR)", use.Name))
			continue
		}
		st := in.SAState[use.Name]
		if !st.Exists {
			fs = append(fs, finding{check: v1alpha1.CheckServiceAccount, path: use.Path,
				message: fmt.Sprintf("service account %q does not exist in namespace %q", use.Name, in.Namespace),
				fix:     fmt.Sprintf("create it (kubectl -n %s create serviceaccount %s) or name an existing one", in.Namespace, use.Name)})
			continue
		}
		if !ceilingFound {
			fs = append(fs, finding{check: v1alpha1.CheckServiceAccount, path: use.Path,
				message: fmt.Sprintf("the ceiling ClusterRole %q does not exist, so the RBAC of service account %q cannot be bounded", ceilingName, use.Name),
				fix:     fmt.Sprintf("create ClusterRole %q (the Helm chart installs one) or name another in ClusterRunPolicy %q spec.serviceAccount.ceilingClusterRole", ceilingName, p.Name)})
			continue
		}
		for _, ex := range rbac.Exceeding(ceiling, st.Grants) {
			fs = append(fs, finding{check: v1alpha1.CheckServiceAccount, path: use.Path,
				message: fmt.Sprintf("service account %q is granted more than the ceiling ClusterRole %q allows, through %s (%s): %s",
					use.Name, ceilingName, ex.Grant.Binding, ex.Grant.Role, formatRules(ex.Uncovered)),
				fix: fmt.Sprintf("remove that binding or narrow %s, or widen the ceiling ClusterRole %q", ex.Grant.Role, ceilingName)})
		}
	}
	return fs, skipped
}

func formatRules(rules []rbacv1.PolicyRule) string {
	const max = 8
	parts := make([]string, 0, max+1)
	for i, r := range rules {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(rules)-max))
			break
		}
		parts = append(parts, rbac.FormatRule(r))
	}
	return strings.Join(parts, "; ")
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// --- podSecurity and resources ---

var psaFixes = map[string]string{
	"privileged":                        "remove securityContext.privileged (or set it to false)",
	"allowPrivilegeEscalation != false": "set securityContext.allowPrivilegeEscalation: false",
	"unrestricted capabilities":         "set securityContext.capabilities.drop: [\"ALL\"] (only NET_BIND_SERVICE may be added)",
	"non-default capabilities":          "remove the added capabilities from securityContext.capabilities.add",
	"runAsNonRoot != true":              "set securityContext.runAsNonRoot: true (on the step, stepTemplate or podTemplate)",
	"runAsUser=0":                       "run as a non-zero UID (securityContext.runAsUser)",
	"seccompProfile":                    "set securityContext.seccompProfile.type: RuntimeDefault (on the step, stepTemplate or podTemplate)",
	"host namespaces":                   "remove hostNetwork from the podTemplate",
	"hostPath volumes":                  "replace hostPath volumes with a workspace or an emptyDir",
	"restricted volume types":           "use only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret volumes",
	"hostPort":                          "remove hostPort from the container ports",
	"procMount":                         "remove securityContext.procMount",
	"seLinuxOptions":                    "remove the custom securityContext.seLinuxOptions",
	"forbidden sysctls":                 "remove the unsafe sysctls from the podTemplate",
	"sysctls":                           "remove the unsafe sysctls from the podTemplate",
	"appArmorProfile":                   "remove the custom AppArmor profile",
}

func psaFix(reason string) string {
	if f, ok := psaFixes[reason]; ok {
		return f
	}
	for k, f := range psaFixes {
		if strings.Contains(reason, k) {
			return f
		}
	}
	return "see the Pod Security Standards for the level in force"
}

func checkPodSecurity(p *Policy, u *Unit, a *assembled) []finding {
	// Fast path: the whole Pod at once. Only a Pod that fails is evaluated
	// again piece by piece, to say which step or field broke which rule.
	whole := a.Pod
	whole.Containers = make([]corev1.Container, 0, len(a.Containers))
	for i := range a.Containers {
		if !a.Containers[i].FromRef {
			whole.Containers = append(whole.Containers, a.Containers[i].C)
		}
	}
	allowed := true
	for _, r := range psaEvaluator.EvaluatePod(p.psa, &emptyMeta, &whole) {
		if !r.Allowed {
			allowed = false
			break
		}
	}
	if allowed {
		return nil
	}
	var fs []finding
	// Pod-level fields, with no containers: volumes, host namespaces, pod securityContext.
	pod := a.Pod
	for _, r := range psaEvaluator.EvaluatePod(p.psa, &emptyMeta, &pod) {
		if r.Allowed {
			continue
		}
		path := u.SpecPath
		fs = append(fs, finding{check: v1alpha1.CheckPodSecurity, unit: u, object: u.SpecObject, path: path,
			message: fmt.Sprintf("pod: %s: %s (podTemplate and Task volumes, level %s)", r.ForbiddenReason, r.ForbiddenDetail, p.psa.String()),
			fix:     psaFix(r.ForbiddenReason)})
	}
	// Each container alone, under the pod's securityContext, so every finding names its step.
	for i := range a.Containers {
		c := &a.Containers[i]
		if c.FromRef {
			continue
		}
		one := corev1.PodSpec{SecurityContext: a.Pod.SecurityContext, Containers: []corev1.Container{c.C}}
		for _, r := range psaEvaluator.EvaluatePod(p.psa, &emptyMeta, &one) {
			if r.Allowed {
				continue
			}
			fs = append(fs, finding{check: v1alpha1.CheckPodSecurity, unit: u, object: u.SpecObject, path: c.Path.Child("securityContext"), step: c.Label,
				message: fmt.Sprintf("%s: %s (level %s)", r.ForbiddenReason, r.ForbiddenDetail, p.psa.String()),
				fix:     psaFix(r.ForbiddenReason)})
		}
	}
	return fs
}

var limitedResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// missingLimits returns the required resources c sets no (positive) limit for.
func missingLimits(c *corev1.Container) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, r := range limitedResources {
		q, ok := c.Resources.Limits[r]
		if !ok || q.Sign() <= 0 {
			out = append(out, r)
		}
	}
	return out
}

func checkResources(p *Policy, u *Unit, a *assembled) []finding {
	var fs []finding
	for i := range a.Containers {
		c := &a.Containers[i]
		if c.FromRef {
			continue
		}
		if miss := missingLimits(&c.C); len(miss) > 0 {
			names := make([]string, len(miss))
			for i, m := range miss {
				names[i] = string(m)
			}
			fix := "set computeResources.limits." + strings.Join(names, " and ") + " on the step (or in stepTemplate, stepSpecs or taskRunSpecs)"
			if len(p.defaults) > 0 && !u.Inline {
				fix += "; default limits are only written into inline task specs"
			}
			fs = append(fs, finding{check: v1alpha1.CheckResources, unit: u, object: u.SpecObject, path: c.Path.Child("computeResources", "limits"), step: c.Label,
				message: fmt.Sprintf("no %s limit", strings.Join(names, " or ")),
				fix:     fix})
		}
		for _, name := range sortedNames(p.maxima) {
			max := p.maxima[name]
			if q, ok := c.C.Resources.Limits[name]; ok && q.Cmp(max) > 0 {
				fs = append(fs, finding{check: v1alpha1.CheckResources, unit: u, object: u.SpecObject, path: c.Path.Child("computeResources", "limits", string(name)), step: c.Label,
					message: fmt.Sprintf("%s limit %s exceeds the maximum %s", name, q.String(), max.String()),
					fix:     fmt.Sprintf("lower computeResources.limits.%s to at most %s", name, max.String())})
			}
		}
	}
	return fs
}

func sortedNames[V any](m map[corev1.ResourceName]V) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// --- pinnedRefs ---

var (
	paramCharset = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!&'()*+,;=%-]*$`)
	hubVersion   = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+){1,2}(-[0-9A-Za-z.-]+)?$`)
	gitCommit    = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	bundleDigest = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

func checkPinnedRefs(p *Policy, in *Input) []finding {
	var fs []finding
	for i := range in.Refs {
		r := &in.Refs[i]
		var u *Unit
		for j := range in.Units {
			if in.Units[j].Task == r.Task && r.Task != "" {
				u = &in.Units[j]
				break
			}
		}
		add := func(path *field.Path, msg, fix string) {
			step := ""
			if r.Step != "" {
				step = fmt.Sprintf("step %q", r.Step)
			}
			fs = append(fs, finding{check: v1alpha1.CheckPinnedRefs, unit: u, object: r.Object, path: path, step: step, message: msg, fix: fix})
		}
		if r.Resolver == "" {
			continue // a Task, Pipeline or StepAction in the run's namespace: local, not remote
		}
		if !contains(p.Spec.PinnedRefs.AllowedResolvers, r.Resolver) {
			add(r.Path.Child("resolver"), fmt.Sprintf("%s reference uses resolver %q, which is not allowed", r.Kind, r.Resolver),
				fmt.Sprintf("use one of the allowed resolvers %v, or add %q to ClusterRunPolicy %q spec.pinnedRefs.allowedResolvers", p.Spec.PinnedRefs.AllowedResolvers, r.Resolver, p.Name))
			continue
		}
		params, ok := refParams(p, r, add)
		if !ok {
			continue
		}
		pinned(p, r, params, add)
	}
	return fs
}

// addFinding reports a finding about one reference.
type addFinding func(path *field.Path, msg, fix string)

// refParams returns the reference's resolver params, each a literal string
// of allowed length and characters without ".." segments; false (with
// findings) when one is not.
func refParams(p *Policy, r *Ref, add addFinding) (map[string]string, bool) {
	params := map[string]string{}
	bad := false
	for j, prm := range r.Params {
		pp := r.Path.Child("params").Index(j)
		if prm.Value.Type != pipelinev1.ParamTypeString {
			add(pp.Child("value"), fmt.Sprintf("resolver param %q is an %s; resolver params must be strings", prm.Name, prm.Value.Type), "pass a string value")
			bad = true
			continue
		}
		v := prm.Value.StringVal
		switch {
		case len(v) > int(p.Spec.PinnedRefs.MaxParamLength):
			add(pp.Child("value"), fmt.Sprintf("resolver param %q is %d characters long, over the limit of %d", prm.Name, len(v), p.Spec.PinnedRefs.MaxParamLength), "shorten the value")
			bad = true
		case strings.Contains(v, "$("):
			add(pp.Child("value"), fmt.Sprintf("resolver param %q is a substitution (%s): what it resolves to is decided at run time, so the reference is not pinned", prm.Name, truncate(v, 64)), "write the literal value in the run")
			bad = true
		case !paramCharset.MatchString(v):
			add(pp.Child("value"), fmt.Sprintf("resolver param %q contains characters outside the allowed set (letters, digits and URL punctuation)", prm.Name), "remove whitespace, quotes, backslashes and control characters")
			bad = true
		case hasDotDot(v):
			add(pp.Child("value"), fmt.Sprintf("resolver param %q has a \"..\" path segment (%s): it can climb out of the repository path it names", prm.Name, truncate(v, 64)), "name the path without \"..\" segments")
			bad = true
		default:
			params[prm.Name] = v
		}
	}
	return params, !bad
}

// pinned reports a reference its resolver cannot pin to immutable content:
// a hub version that is not exact, a git revision that is not a commit (or
// a host not allowed), a bundle not by digest, any http URL.
func pinned(p *Policy, r *Ref, params map[string]string, add addFinding) {
	switch r.Resolver {
	case "hub":
		v, ok := params["version"]
		switch {
		case !ok || v == "":
			add(r.Path.Child("params"), fmt.Sprintf("hub %s reference %s has no version", r.Kind, refName(params)), "add a param version with an exact catalog version, e.g. \"0.9\"")
		case strings.EqualFold(v, "latest") || !hubVersion.MatchString(v):
			add(r.Path.Child("params"), fmt.Sprintf("hub %s reference %s has version %q, which is not an exact version", r.Kind, refName(params), truncate(v, 64)), "use an exact catalog version such as \"0.9\" or \"0.9.1\"")
		}
	case "git":
		if hosts := p.Spec.PinnedRefs.AllowedGitHosts; len(hosts) > 0 {
			host, err := gitHost(params)
			if err != nil || !contains(hosts, host) {
				got := host
				if err != nil {
					got = err.Error()
				}
				add(r.Path.Child("params"), fmt.Sprintf("git %s reference %s fetches from %s, not one of the allowed git hosts %v", r.Kind, refName(params), got, hosts),
					fmt.Sprintf("use a repository on an allowed host, or add it to ClusterRunPolicy %q spec.pinnedRefs.allowedGitHosts", p.Name))
			}
		}
		v, ok := params["revision"]
		if !ok || !gitCommit.MatchString(v) {
			got := "no revision"
			if ok {
				got = fmt.Sprintf("revision %q", truncate(v, 64))
			}
			add(r.Path.Child("params"), fmt.Sprintf("git %s reference %s has %s, which is not a full commit SHA (a branch or tag can move)", r.Kind, refName(params), got), "set param revision to the full 40-character commit SHA")
		}
	case "bundles":
		v, ok := params["bundle"]
		if !ok || !bundleDigest.MatchString(v) {
			add(r.Path.Child("params"), fmt.Sprintf("bundle %s reference %s is not pinned by digest", r.Kind, truncate(v, 128)), "reference the bundle as IMAGE@sha256:<digest>")
		}
	case "http":
		add(r.Path.Child("resolver"), fmt.Sprintf("http %s reference %s cannot be pinned: the content behind a URL can change", r.Kind, truncate(params["url"], 128)), "publish the Task as a bundle or in git and reference it by digest or commit")
	case "cluster":
		// Local to the cluster; RBAC on the namespace protects it.
	}
}

// hasDotDot reports a ".." path segment, also percent-encoded.
func hasDotDot(v string) bool {
	d := strings.ReplaceAll(strings.ToLower(v), "%2e", ".")
	for _, seg := range strings.FieldsFunc(d, func(r rune) bool { return r == '/' || r == '\\' || r == '?' || r == '#' }) {
		if seg == ".." {
			return true
		}
	}
	return false
}

// gitHost is the host a git reference fetches from: its url, or its
// serverURL when it names a repository by org and repo.
func gitHost(params map[string]string) (string, error) {
	raw := params["url"]
	if raw == "" {
		raw = params["serverURL"]
	}
	if raw == "" {
		return "", errors.New("no url or serverURL (the resolver's default host)")
	}
	if strings.HasPrefix(raw, "git@") { // scp-like: git@host:org/repo
		h, _, _ := strings.Cut(strings.TrimPrefix(raw, "git@"), ":")
		return strings.ToLower(h), nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("an unparsable url %q", truncate(raw, 64))
	}
	return strings.ToLower(u.Hostname()), nil
}

func refName(params map[string]string) string {
	for _, k := range []string{"name", "pathInRepo", "url", "bundle"} {
		if v := params[k]; v != "" {
			return fmt.Sprintf("%q", truncate(v, 96))
		}
	}
	return "(unnamed)"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func contains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// toViolation turns a finding into the Violation a Decision carries.
func (f finding) toViolation(policyName string) policy.Violation {
	v := policy.Violation{
		Policy:  policyName,
		Rule:    string(f.check),
		Field:   where(f.object, f.path),
		Step:    f.step,
		Message: f.message,
		Fix:     f.fix,
	}
	if f.unit != nil {
		v.Task = f.unit.Task
	}
	return v
}
