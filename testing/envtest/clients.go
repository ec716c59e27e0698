package envtest

import (
	"context"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/webhook"
)

// As returns a client that impersonates user (with groups) against the
// real API server, so admission sees that identity.
func (e *Env) As(t testing.TB, user string, groups ...string) client.Client {
	t.Helper()
	return e.impersonating(t, nil, user, groups...)
}

// AsWithWarnings is As with a handler that receives the admission warnings.
func (e *Env) AsWithWarnings(t testing.TB, user string, h rest.WarningHandlerWithContext) client.Client {
	t.Helper()
	return e.impersonating(t, h, user)
}

func (e *Env) impersonating(t testing.TB, h rest.WarningHandlerWithContext, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	if h != nil {
		cfg.WarningHandlerWithContext = h
	}
	scheme, err := webhook.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// GrantTekton gives the Tekton controller's service account what the real
// controller's RBAC gives it (controlplane.GrantTekton).
func (e *Env) GrantTekton(ctx context.Context) error { return controlplane.GrantTekton(ctx, e.Client) }

// CompleteTaskRun writes a finished status on a TaskRun as the Tekton
// controller would (impersonating its service account), with results.
func CompleteTaskRun(ctx context.Context, tekton client.Client, tr *pipelinev1.TaskRun, succeeded bool, results ...pipelinev1.TaskRunResult) error {
	now := metav1.Now()
	tr.Status.StartTime = &now
	tr.Status.CompletionTime = &now
	tr.Status.Results = results
	tr.Status.Conditions = duckv1.Conditions{condition(succeeded)}
	return tekton.Status().Update(ctx, tr)
}

// CompletePipelineRun writes a finished status on a PipelineRun as the Tekton controller would.
func CompletePipelineRun(ctx context.Context, tekton client.Client, pr *pipelinev1.PipelineRun, succeeded bool, results ...pipelinev1.PipelineRunResult) error {
	now := metav1.Now()
	pr.Status.StartTime = &now
	pr.Status.CompletionTime = &now
	pr.Status.Results = results
	pr.Status.Conditions = duckv1.Conditions{condition(succeeded)}
	return tekton.Status().Update(ctx, pr)
}

func condition(succeeded bool) apis.Condition {
	c := apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded", LastTransitionTime: apis.VolatileTime{Inner: metav1.Now()}}
	if !succeeded {
		c.Status, c.Reason = corev1.ConditionFalse, "Failed"
	}
	return c
}
