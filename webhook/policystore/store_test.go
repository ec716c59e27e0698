package policystore

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// A policy whose compilation panics inside third-party parsing (OPA, a PEM
// or KMS client) is a policy that does not compile; the others stay in
// force and the store keeps running.
func TestCompilePanicIsThePolicysError(t *testing.T) {
	policies := []*v1alpha1.ClusterRunPolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "crashes", UID: types.UID("1"), Generation: 1}},
		{ObjectMeta: metav1.ObjectMeta{Name: "fine", UID: types.UID("2"), Generation: 1}},
	}
	var published []string
	s := &Store[*v1alpha1.ClusterRunPolicy, string]{lastGood: map[string]string{}, log: logr.Discard(), cfg: Config[*v1alpha1.ClusterRunPolicy, string]{
		List: func(context.Context, client.Reader) ([]*v1alpha1.ClusterRunPolicy, error) { return policies, nil },
		Compile: func(_ context.Context, p *v1alpha1.ClusterRunPolicy) (string, error) {
			if p.Name == "crashes" {
				var m map[string]any
				_ = m["module"].(string)
			}
			return p.Name, nil
		},
		Generation: func(string) int64 { return 1 },
		Publish:    func(c []string) { published = c },
	}}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(published) != 1 || published[0] != "fine" {
		t.Fatalf("in force: %v, want only the policy that compiled", published)
	}
}
