// Package reply turns the gates' decisions and errors into admission
// responses, the same way for every handler: a denial is a 403 whose
// message lists each violation and whose causes name each field; a request
// the handler cannot read is a 400; an internal fault is a 500. All deny.
package reply

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/policy"
)

// BadRequest returns an error that Error answers with a 400: the request
// itself is at fault. It is policy's one scheme for invalid input, so
// errors from the policy packages (runs.ErrInvalidRun) are answered alike.
func BadRequest(format string, args ...any) error { return policy.Invalidf(format, args...) }

// Error denies: 400 for a bad request, 500 (fail closed) otherwise.
func Error(err error) admission.Response {
	if errors.Is(err, policy.ErrInvalid) {
		return admission.Errored(http.StatusBadRequest, err)
	}
	return admission.Errored(http.StatusInternalServerError, fmt.Errorf("tollgate could not decide and denies (fail closed): %w", err))
}

// WellFormed rejects requests the API server would never send: an empty
// review decodes into a zero request, which must not pass as "nothing to do".
func WellFormed(req *admission.Request) error {
	if req.UID == "" || req.Kind.Kind == "" || req.Operation == "" {
		return BadRequest("malformed AdmissionReview: request uid, kind and operation are required")
	}
	return nil
}

// Decision turns a decision into an admission response, logging exemptions.
func Decision(ctx context.Context, d *policy.Decision) admission.Response {
	if o, ok := ctx.Value(observerKey{}).(Observer); ok {
		for _, v := range d.Denials {
			o(v, true)
		}
		for _, v := range d.Warnings {
			o(v, false)
		}
	}
	log := logf.FromContext(ctx)
	for _, e := range d.Exempted {
		log.Info("exempted", "policy", e.Policy, "rule", e.Rule, "task", e.Task, "reason", e.Reason)
	}
	for _, s := range d.Skipped {
		log.V(1).Info("not checked at admission", "policy", s.Policy, "rule", s.Rule, "task", s.Task, "reason", s.Reason)
	}
	warnings := make([]string, 0, len(d.Warnings))
	for _, w := range d.Warnings {
		warnings = append(warnings, "tollgate: "+w.String())
	}
	if d.Allowed() {
		return admission.Allowed("").WithWarnings(warnings...)
	}
	causes := make([]metav1.StatusCause, 0, len(d.Denials))
	for _, v := range d.Denials {
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: v.Field, Message: v.String()})
	}
	log.Info("denied", "violations", len(d.Denials))
	code, reason := int32(http.StatusForbidden), metav1.StatusReasonForbidden
	if d.Internal() {
		code, reason = http.StatusInternalServerError, metav1.StatusReasonInternalError
	}
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    code,
			Reason:  reason,
			Message: d.Message(),
			Details: &metav1.StatusDetails{Causes: causes},
		},
		Warnings: warnings,
	}}
}

// Observer is told each violation a decision answers with: denied, or a
// warning (the server's metrics count them by rule).
type Observer func(v policy.Violation, denied bool)

type observerKey struct{}

// WithObserver returns ctx with o, which Decision tells of every violation.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}
