package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The report a namespace's audit is written to: one per namespace,
// rewritten on every pass, never appended to.
const (
	ReportName = "tollgate-audit"
	// Source names Tollgate in each result (policy-reporter groups by it).
	Source = "tollgate"
	// MaxResults bounds a report: rows past it (passes first, they sort
	// last) are counted in the summary but not listed, and the report says
	// how many were left out (AnnotationTruncated).
	MaxResults = 1000
	// AnnotationTruncated holds how many rows a report does not list.
	AnnotationTruncated = "tollgate.dev/audit-results-not-listed"
)

// PolicyReportGVK is the wg-policy report kind the audit writes.
var PolicyReportGVK = schema.GroupVersionKind{Group: "wgpolicyk8s.io", Version: "v1alpha2", Kind: "PolicyReport"}

// Report is namespace ns's PolicyReport holding rows, stamped now.
func Report(ns string, rows []Result, now time.Time) *unstructured.Unstructured {
	rows = sorted(append([]Result(nil), rows...))
	summary := map[string]any{Pass: int64(0), Fail: int64(0), Warn: int64(0), Error: int64(0), Skip: int64(0)}
	for _, r := range rows {
		summary[r.Result] = summary[r.Result].(int64) + 1
	}
	listed := rows
	if len(listed) > MaxResults {
		listed = listed[:MaxResults]
	}
	results := make([]any, 0, len(listed))
	for _, r := range listed {
		policy := r.Policy
		if policy == "" {
			policy = Source
		}
		category := "images"
		if r.Object.Kind == "PipelineRun" || r.Object.Kind == "TaskRun" {
			category = "runs"
		}
		res := map[string]any{
			"source": Source, "policy": policy, "rule": r.Rule, "category": category,
			"result": r.Result, "severity": r.Severity, "message": r.Message, "scored": true,
			"timestamp": map[string]any{"seconds": now.Unix(), "nanos": int64(0)},
			"resources": []any{map[string]any{"apiVersion": r.Object.APIVersion, "kind": r.Object.Kind, "namespace": r.Object.Namespace, "name": r.Object.Name, "uid": r.Object.UID}},
		}
		if r.Subject != "" {
			res["properties"] = map[string]any{"subject": r.Subject}
		}
		results = append(results, res)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"summary": summary, "results": results}}
	u.SetGroupVersionKind(PolicyReportGVK)
	u.SetNamespace(ns)
	u.SetName(ReportName)
	u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "tollgate"})
	if n := len(rows) - len(listed); n > 0 {
		u.SetAnnotations(map[string]string{AnnotationTruncated: strconv.Itoa(n)})
	}
	return u
}

// ErrNoReportCRD says the PolicyReport CRD is not installed: the audit
// still logs and exports its metrics.
var ErrNoReportCRD = fmt.Errorf("the %s CRD (%s) is not installed: reports are not written (install the chart with audit.reportCRDs.install, or another tool's)", PolicyReportGVK.Kind, PolicyReportGVK.GroupVersion())

// WriteReport creates or replaces namespace ns's report with want.
func WriteReport(ctx context.Context, c client.Client, want *unstructured.Unstructured) error {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(PolicyReportGVK)
	err := c.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case meta.IsNoMatchError(err):
		return ErrNoReportCRD
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, want); err != nil {
			if meta.IsNoMatchError(err) {
				return ErrNoReportCRD
			}
			return fmt.Errorf("creating PolicyReport %s/%s: %w", want.GetNamespace(), want.GetName(), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading PolicyReport %s/%s: %w", want.GetNamespace(), want.GetName(), err)
	}
	want.SetResourceVersion(cur.GetResourceVersion())
	if err := c.Update(ctx, want); err != nil {
		return fmt.Errorf("replacing PolicyReport %s/%s: %w", want.GetNamespace(), want.GetName(), err)
	}
	return nil
}
