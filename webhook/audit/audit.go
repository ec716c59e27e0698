// Package audit turns the run guard's and the image gate's decisions on
// live objects into report rows: one per object and rule, with the
// result a wg-policy PolicyReport holds (pass, fail, warn, error, skip)
// and the message admission gives, fix included. The decisions themselves
// are made by imagegate.Handler.Audit and runguard.Handler.Audit, the code
// admission runs; nothing here decides.
package audit

import (
	"sort"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
)

// Results of a row, as PolicyReports name them.
const (
	Pass  = "pass"
	Fail  = "fail"
	Warn  = "warn"
	Error = "error"
	Skip  = "skip"
)

// Severities of a row, as PolicyReports name them.
const (
	SeverityHigh   = "high"   // a rule in Enforce: enforcing denies the object
	SeverityMedium = "medium" // a rule in Warn
	SeverityInfo   = "info"   // a pass, a skip
)

// Object is the audited object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
}

// Result is one row: an object and a rule.
type Result struct {
	Object Object `json:"object"`
	// Subject is what the rule looked at: the image (and container), or the run.
	Subject  string `json:"subject"`
	Policy   string `json:"policy"`
	Rule     string `json:"rule"`
	Result   string `json:"result"`
	Severity string `json:"severity"`
	// Message is what admission says, fix included.
	Message string `json:"message"`
}

// FromImages is the rows of the image gate's outcome on a workload:
// a fail per denial (an error when the gate could not decide: a registry
// down is never a pass), a warn per warning, and a pass per image and
// policy it verified.
func FromImages(obj Object, out *images.Outcome) []Result {
	var rows []Result
	rows = appendViolations(rows, obj, out.Denials, Fail, SeverityHigh)
	rows = appendViolations(rows, obj, out.Warnings, Warn, SeverityMedium)
	for _, r := range out.Results {
		if r.Verified() {
			rows = append(rows, Result{Object: obj, Subject: r.Digest, Policy: r.Policy, Rule: "image", Result: Pass, Severity: SeverityInfo,
				Message: "signature and every required attestation verified for " + r.Digest})
		}
	}
	return sorted(rows)
}

// FromRun is the rows of the run guard's decision on a run: a fail per
// denial, a warn per warning, a skip per check that could not be
// evaluated, and one pass when nothing was found.
func FromRun(obj Object, d *policy.Decision) []Result {
	var rows []Result
	rows = appendViolations(rows, obj, d.Denials, Fail, SeverityHigh)
	rows = appendViolations(rows, obj, d.Warnings, Warn, SeverityMedium)
	for _, n := range d.Skipped {
		rows = append(rows, Result{Object: obj, Subject: d.Subject, Policy: n.Policy, Rule: n.Rule, Result: Skip, Severity: SeverityInfo, Message: n.String()})
	}
	if len(rows) == 0 {
		rows = append(rows, Result{Object: obj, Subject: d.Subject, Rule: "run", Result: Pass, Severity: SeverityInfo,
			Message: d.Subject + " passes every check in force"})
	}
	return sorted(rows)
}

// Errored is the row of an object that could not be decided at all.
func Errored(obj Object, subject string, err error) Result {
	return Result{Object: obj, Subject: subject, Rule: "audit", Result: Error, Severity: SeverityHigh, Message: err.Error()}
}

func appendViolations(rows []Result, obj Object, vs []policy.Violation, result, severity string) []Result {
	for _, v := range vs {
		r := Result{Object: obj, Subject: subjectOf(v), Policy: v.Policy, Rule: v.Rule, Result: result, Severity: severity, Message: v.String()}
		if v.Internal {
			r.Result, r.Severity = Error, SeverityHigh
		}
		rows = append(rows, r)
	}
	return rows
}

func subjectOf(v policy.Violation) string {
	switch {
	case v.Step != "" && v.Task != "":
		return "task " + v.Task + " " + v.Step
	case v.Step != "":
		return v.Step
	case v.Field != "":
		return v.Field
	}
	return v.Task
}

// Failed reports whether any row fails or errs: enforcing would deny, or
// the audit could not tell.
func Failed(rows []Result) bool {
	for _, r := range rows {
		if r.Result == Fail || r.Result == Error {
			return true
		}
	}
	return false
}

func sorted(rows []Result) []Result {
	rank := map[string]int{Error: 0, Fail: 1, Warn: 2, Skip: 3, Pass: 4}
	sort.SliceStable(rows, func(i, j int) bool { return rank[rows[i].Result] < rank[rows[j].Result] })
	return rows
}
