package runs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// Evaluate applies the built-in checks of every policy to the run. It is pure.
// specIntegrity is decided per request (see Request), not here.
func Evaluate(policies []*Policy, in *Input) policy.Decision {
	d := policy.Decision{Subject: in.Subject()}
	built, assembleErrs := assembleUnits(in)
	for _, p := range policies {
		ex := newExempter(p, in)
		report := func(check v1alpha1.CheckName, fs []finding) { route(&d, p, ex, check, fs) }
		skip := func(check v1alpha1.CheckName, task, reason string) {
			d.Skipped = appendNote(d.Skipped, policy.Note{Policy: p.Name, Rule: string(check), Task: task, Reason: reason})
		}
		psaOn := p.mode(v1alpha1.CheckPodSecurity) != v1alpha1.Off
		resOn := p.mode(v1alpha1.CheckResources) != v1alpha1.Off
		// skipPod notes a container the Pod checks cannot see here.
		skipPod := func(task, reason string) {
			if psaOn {
				skip(v1alpha1.CheckPodSecurity, task, reason)
			}
			if resOn {
				skip(v1alpha1.CheckResources, task, reason)
			}
		}

		if p.mode(v1alpha1.CheckServiceAccount) != v1alpha1.Off {
			fs, skipped := checkServiceAccounts(p, in)
			report(v1alpha1.CheckServiceAccount, fs)
			for _, s := range skipped {
				skip(v1alpha1.CheckServiceAccount, "", s)
			}
		}
		if psaOn {
			report(v1alpha1.CheckPodSecurity, assembleErrs)
		}
		for i := range in.Units {
			u, a := &in.Units[i], built[i]
			if a == nil {
				if u.Unresolved != "" {
					skipPod(u.Task, u.Unresolved)
				}
				continue
			}
			for _, c := range a.Containers {
				if c.FromRef {
					skipPod(u.Task, fmt.Sprintf("%s refers to a StepAction; its container is checked when Tekton creates the Pod", c.Label))
				}
			}
			if psaOn {
				report(v1alpha1.CheckPodSecurity, checkPodSecurity(p, u, a))
			}
			if resOn {
				report(v1alpha1.CheckResources, checkResources(p, u, a))
			}
		}
		for _, s := range in.Unresolved {
			skipPod("", s)
		}
		if p.mode(v1alpha1.CheckPinnedRefs) != v1alpha1.Off {
			report(v1alpha1.CheckPinnedRefs, checkPinnedRefs(p, in))
		}
	}
	return d
}

// assembleUnits assembles each unit's Pod once (every policy reads the
// same containers); a unit that cannot be assembled is a finding.
func assembleUnits(in *Input) ([]*assembled, []finding) {
	built := make([]*assembled, len(in.Units))
	var errs []finding
	for i := range in.Units {
		u := &in.Units[i]
		if u.Spec == nil {
			continue
		}
		a, err := assemble(u)
		if err != nil {
			errs = append(errs, finding{check: v1alpha1.CheckPodSecurity, unit: u, object: u.SpecObject, path: u.SpecPath,
				message: "the task's Pod cannot be assembled: " + err.Error(), fix: "fix the stepTemplate, stepSpecs or sidecarSpecs"})
			continue
		}
		built[i] = a
	}
	return built, errs
}

// route files the findings of one check of one policy: exempted (with the
// exemption's reason), a warning in Warn mode, a denial otherwise.
func route(d *policy.Decision, p *Policy, ex exempter, check v1alpha1.CheckName, fs []finding) {
	mode := p.mode(check)
	for _, f := range fs {
		if reason, ok := ex.exempt(check, f.unit); ok {
			d.Exempted = appendNote(d.Exempted, policy.Note{Policy: p.Name, Rule: string(check), Task: taskOf(f.unit), Reason: "exempted: " + reason})
			continue
		}
		v := f.toViolation(p.Name)
		if mode == v1alpha1.Warn {
			d.Warnings = append(d.Warnings, v)
		} else {
			d.Denials = append(d.Denials, v)
		}
	}
}

func taskOf(u *Unit) string {
	if u == nil {
		return ""
	}
	return u.Task
}

func appendNote(ns []policy.Note, n policy.Note) []policy.Note {
	if slices.Contains(ns, n) {
		return ns
	}
	return append(ns, n)
}

func (p *Policy) mode(c v1alpha1.CheckName) v1alpha1.Mode {
	switch c {
	case v1alpha1.CheckServiceAccount:
		return p.Spec.ServiceAccount.Mode
	case v1alpha1.CheckPodSecurity:
		return p.Spec.PodSecurity.Mode
	case v1alpha1.CheckResources:
		return p.Spec.Resources.Mode
	case v1alpha1.CheckPinnedRefs:
		return p.Spec.PinnedRefs.Mode
	case v1alpha1.CheckSpecIntegrity:
		return p.Spec.SpecIntegrity.Mode
	}
	return v1alpha1.Enforce
}

// Mode returns the policy's mode for a check.
func (p *Policy) Mode(c v1alpha1.CheckName) v1alpha1.Mode { return p.mode(c) }

// exempter decides exemptions of one policy for one run.
type exempter struct {
	p  *Policy
	in *Input
	// unit, when set, replaces a finding's unit for matching task
	// exemptions (a Pod's findings: its verified owner, not its labels).
	unit *Unit
}

func newExempter(p *Policy, in *Input) exempter { return exempter{p: p, in: in} }

func covers(e *v1alpha1.Exemption, c v1alpha1.CheckName) bool {
	if len(e.Checks) == 0 {
		return c != v1alpha1.CheckSpecIntegrity
	}
	return slices.Contains(e.Checks, c)
}

// exempt reports whether a finding of check in unit u (nil: run-wide) is
// exempted, with the exemption's reason. The fields of one exemption narrow
// it: every field it names must match (namespaces AND pipelines AND tasks).
// A run-wide finding is never exempted by an exemption that names tasks.
func (x exempter) exempt(c v1alpha1.CheckName, u *Unit) (string, bool) {
	if x.unit != nil && u != nil {
		u = x.unit
	}
	for i := range x.p.Spec.Exemptions {
		e := &x.p.Spec.Exemptions[i]
		if !covers(e, c) {
			continue
		}
		var why []string
		if len(e.Namespaces) > 0 {
			if !slices.Contains(e.Namespaces, x.in.Namespace) {
				continue
			}
			why = append(why, fmt.Sprintf("namespace %q", x.in.Namespace))
		}
		if len(e.Pipelines) > 0 {
			if x.in.PipelineName == "" || !slices.Contains(e.Pipelines, x.in.PipelineName) {
				continue
			}
			why = append(why, fmt.Sprintf("pipeline %q", x.in.PipelineName))
		}
		if len(e.Tasks) > 0 {
			if u == nil || !(slices.Contains(e.Tasks, u.Task) || (u.TaskName != "" && slices.Contains(e.Tasks, u.TaskName))) {
				continue
			}
			why = append(why, fmt.Sprintf("task %q", u.Task))
		}
		if len(why) == 0 { // an exemption naming nothing exempts nothing
			continue
		}
		return strings.Join(why, ", ") + ": " + e.Reason, true
	}
	return "", false
}

// HasNamedExemptions reports whether a policy exempts by pipeline or task:
// only then is a Pod's owner worth reading.
func HasNamedExemptions(ps []*Policy) bool {
	for _, p := range ps {
		for _, e := range p.Spec.Exemptions {
			if len(e.Pipelines) > 0 || len(e.Tasks) > 0 {
				return true
			}
		}
	}
	return false
}

// ExemptRun reports whether a check is exempted for the whole run (by
// namespace or pipeline), with the reason; used for request-level checks.
func (p *Policy) ExemptRun(c v1alpha1.CheckName, in *Input) (string, bool) {
	return newExempter(p, in).exempt(c, nil)
}
