package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// A report is bounded: past MaxResults the rows are counted, not listed
// (passes go first), and the report says how many it leaves out.
func TestReportBounded(t *testing.T) {
	var rows []Result
	for i := 0; i < MaxResults+5; i++ {
		rows = append(rows, Result{Object: obj, Rule: "image", Result: Pass, Severity: SeverityInfo, Message: "ok"})
	}
	rows = append(rows, Result{Object: obj, Rule: "signature", Result: Fail, Severity: SeverityHigh, Message: "unsigned"})
	u := Report("shop", rows, time.Unix(1700000000, 0))
	items, _, _ := unstructured.NestedSlice(u.Object, "results")
	if len(items) != MaxResults || items[0].(map[string]any)["result"] != Fail {
		t.Fatalf("%d results listed, first %v", len(items), items[0])
	}
	fail, _, _ := unstructured.NestedInt64(u.Object, "summary", "fail")
	pass, _, _ := unstructured.NestedInt64(u.Object, "summary", "pass")
	if fail != 1 || pass != MaxResults+5 || u.GetAnnotations()[AnnotationTruncated] != "6" {
		t.Errorf("summary fail %d pass %d, annotation %q", fail, pass, u.GetAnnotations()[AnnotationTruncated])
	}
	if items[0].(map[string]any)["policy"] != Source {
		t.Errorf("a row without a policy is not attributed to %s: %v", Source, items[0])
	}
}
