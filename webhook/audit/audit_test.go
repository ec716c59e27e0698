package audit

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
)

var obj = Object{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"}

// A verification that could not finish (a registry down) is an error row,
// never a pass, and fails the audit.
func TestInternalIsErrorNeverPass(t *testing.T) {
	out := &images.Outcome{Decision: policy.Decision{Denials: []policy.Violation{{Policy: "release", Rule: "image", Message: "registry did not answer", Internal: true}}}}
	rows := FromImages(obj, out)
	if len(rows) != 1 || rows[0].Result != Error || !Failed(rows) {
		t.Fatalf("rows %+v", rows)
	}
	// In Warn, the same fault is a warning at admission; still an error here.
	out = &images.Outcome{Decision: policy.Decision{Warnings: []policy.Violation{{Rule: "image", Message: "timeout", Internal: true}}}}
	if rows := FromImages(obj, out); rows[0].Result != Error || !Failed(rows) {
		t.Fatalf("rows %+v", rows)
	}
}

// Rows carry admission's message (fix included), failures sort first, and
// only verified images pass.
func TestFromImages(t *testing.T) {
	out := &images.Outcome{
		Decision: policy.Decision{Denials: []policy.Violation{{Policy: "release", Rule: "signature", Field: "spec.template.spec.containers[0].image", Message: "no signature is attached", Fix: "sign it"}}},
		Results: []*images.Result{
			{Digest: "sha256:aa", Policy: "release"},
			{Digest: "sha256:bb", Policy: "release", Failures: []images.Failure{{Message: "no signature"}}},
		},
	}
	rows := FromImages(obj, out)
	if len(rows) != 2 || rows[0].Result != Fail || rows[1].Result != Pass || rows[1].Subject != "sha256:aa" {
		t.Fatalf("rows %+v", rows)
	}
	if want := out.Denials[0].String(); rows[0].Message != want || !strings.Contains(want, "fix: sign it") {
		t.Errorf("message %q, want admission's %q", rows[0].Message, want)
	}
}

// A run with nothing found passes once; skipped checks are reported as
// skip, never as pass.
func TestFromRun(t *testing.T) {
	if rows := FromRun(obj, &policy.Decision{Subject: "TaskRun shop/t"}); len(rows) != 1 || rows[0].Result != Pass || Failed(rows) {
		t.Fatalf("rows %+v", rows)
	}
	rows := FromRun(obj, &policy.Decision{Subject: "TaskRun shop/t", Skipped: []policy.Note{{Policy: "default", Rule: "serviceAccount", Reason: "no cluster"}}})
	if len(rows) != 1 || rows[0].Result != Skip || rows[0].Rule != "serviceAccount" {
		t.Fatalf("rows %+v", rows)
	}
	rows = FromRun(obj, &policy.Decision{Subject: "TaskRun shop/t",
		Warnings: []policy.Violation{{Rule: "resources", Message: "no limit"}},
		Denials:  []policy.Violation{{Rule: "podSecurity", Message: "privileged"}}})
	if len(rows) != 2 || rows[0].Result != Fail || rows[1].Result != Warn || !Failed(rows) {
		t.Fatalf("rows %+v", rows)
	}
}
