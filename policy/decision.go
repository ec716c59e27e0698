package policy

import (
	"fmt"
	"strings"
)

// Violation is one broken rule, located as precisely as the input allows.
type Violation struct {
	// Policy is the name of the policy whose rule was broken.
	Policy string `json:"policy"`
	// Rule is the built-in check or the user rule that was broken.
	Rule string `json:"rule"`
	// Field is the path of the offending field in the admitted object.
	Field string `json:"field,omitempty"`
	// Task is the pipeline task (or the TaskRun's task) the violation is in.
	Task string `json:"task,omitempty"`
	// Step is the step or sidecar the violation is in.
	Step string `json:"step,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
	// Fix says how to make the run acceptable.
	Fix string `json:"fix,omitempty"`
	// Internal marks a denial that is not a policy verdict but a fault
	// (a registry that did not answer, a panic recovered in a verification):
	// admission answers it with a 500-class status, still denying.
	Internal bool `json:"internal,omitempty"`
}

// String renders the violation in one line, as denials and warnings show it.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", v.Rule)
	if v.Task != "" {
		fmt.Fprintf(&b, "task %q ", v.Task)
	}
	if v.Step != "" {
		fmt.Fprintf(&b, "%s ", v.Step)
	}
	if v.Field != "" {
		fmt.Fprintf(&b, "(%s) ", v.Field)
	}
	b.WriteString(v.Message)
	if v.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(v.Fix)
	}
	if v.Policy != "" {
		fmt.Fprintf(&b, " (policy %q)", v.Policy)
	}
	return b.String()
}

// Note records a check that was not evaluated or a run that was exempted,
// so that a report never shows as passed what was not checked.
type Note struct {
	Policy string `json:"policy"`
	Rule   string `json:"rule"`
	Task   string `json:"task,omitempty"`
	Reason string `json:"reason"`
}

func (n Note) String() string {
	s := fmt.Sprintf("[%s] ", n.Rule)
	if n.Task != "" {
		s += fmt.Sprintf("task %q: ", n.Task)
	}
	return s + n.Reason + fmt.Sprintf(" (policy %q)", n.Policy)
}

// Decision is the outcome of evaluating one object.
type Decision struct {
	// Subject names the object, e.g. `PipelineRun team-a/build-1`.
	Subject string `json:"subject"`
	// Denials are violations of rules in Enforce mode.
	Denials []Violation `json:"denials,omitempty"`
	// Warnings are violations of rules in Warn mode.
	Warnings []Violation `json:"warnings,omitempty"`
	// Skipped lists checks that could not be evaluated, with the reason.
	Skipped []Note `json:"skipped,omitempty"`
	// Exempted lists checks switched off by an exemption, with its reason.
	Exempted []Note `json:"exempted,omitempty"`
}

// Allowed reports whether nothing was denied.
func (d *Decision) Allowed() bool { return len(d.Denials) == 0 }

// Internal reports whether a denial is a fault rather than a verdict.
func (d *Decision) Internal() bool {
	for _, v := range d.Denials {
		if v.Internal {
			return true
		}
	}
	return false
}

// Message is the admission message of a denial: the subject and every denial.
func (d *Decision) Message() string {
	if d.Allowed() {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tollgate denied %s: %d violation", d.Subject, len(d.Denials))
	if len(d.Denials) > 1 {
		b.WriteString("s")
	}
	for i, v := range d.Denials {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, v.String())
	}
	return b.String()
}
