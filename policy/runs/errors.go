package runs

import "errors"

// ErrNotFound is returned by a Cluster for an object that does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidRun marks errors caused by the run itself (a 4xx at admission),
// as opposed to failures reading the cluster (a 5xx). Both deny.
var ErrInvalidRun = errors.New("invalid run")
