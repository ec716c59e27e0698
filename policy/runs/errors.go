package runs

import (
	"errors"

	"github.com/tollgate-dev/tollgate/policy"
)

// ErrNotFound is returned by a Cluster for an object that does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidRun marks errors caused by the run itself (a 4xx at admission),
// as opposed to failures reading the cluster (a 5xx). Both deny.
var ErrInvalidRun = policy.Invalid("invalid run")
