package webhook

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ReasonAdmittedWithWarnings is the reason of the Event a Warn admission
// leaves on the object: under GitOps controllers nobody reads the
// warnings the API server hands back to the client, so they go where
// kubectl describe and event exporters look.
const ReasonAdmittedWithWarnings = "AdmittedWithWarnings"

// newEventRecorder records Events as tollgate-webhook. The correlator
// rate-limits them per object (a burst of 10, then one a minute) and
// aggregates repeats, so a busy namespace cannot flood the API server.
func newEventRecorder(ctx context.Context, rc *rest.Config, scheme *runtime.Scheme) (record.EventRecorder, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the events client: %w", err)
	}
	b := record.NewBroadcasterWithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 10, QPS: 1.0 / 60})
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	go func() {
		<-ctx.Done()
		b.Shutdown()
	}()
	return b.NewRecorder(scheme, corev1.EventSource{Component: "tollgate-webhook"}), nil
}

// warnEvents wraps a validating handler: an admission it allows with
// warnings leaves a Warning Event on the object naming them.
func warnEvents(rec record.EventRecorder, h admission.Handler) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		resp := h.Handle(ctx, req)
		if resp.Allowed && len(resp.Warnings) > 0 && req.Name != "" && req.SubResource == "" {
			ref := &corev1.ObjectReference{
				APIVersion: req.Kind.Group + "/" + req.Kind.Version, Kind: req.Kind.Kind,
				Namespace: req.Namespace, Name: req.Name,
			}
			if req.Kind.Group == "" {
				ref.APIVersion = req.Kind.Version
			}
			rec.Event(ref, corev1.EventTypeWarning, ReasonAdmittedWithWarnings,
				fmt.Sprintf("%s %s admitted with warnings (%s):\n%s", strings.ToLower(string(req.Operation)), req.Name, req.UserInfo.Username, strings.Join(resp.Warnings, "\n")))
		}
		return resp
	})
}
