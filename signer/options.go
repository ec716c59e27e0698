package signer

import (
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

func controllerOptions(workers int) controller.Options {
	// One manager per process runs these controllers; a second manager in the
	// same process (tests) must not be refused over metric names.
	return controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: ptr.To(true)}
}
