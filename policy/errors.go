package policy

import (
	"errors"
	"fmt"
)

// ErrInvalid matches (with errors.Is) every error caused by the input
// itself — a run that does not decode, a request the handler cannot read —
// as opposed to a failure to read the cluster or a registry. Admission
// answers the first with a 400 and the second with a 500; both deny.
var ErrInvalid = errors.New("invalid input")

// Invalid is a sentinel for one kind of invalid input (runs.ErrInvalidRun):
// its own message, and errors.Is(err, ErrInvalid) holds for whatever wraps it.
func Invalid(msg string) error { return &invalid{err: errors.New(msg)} }

// Invalidf returns an error, formatted as fmt.Errorf does (%w included),
// that errors.Is(err, ErrInvalid) recognises.
func Invalidf(format string, args ...any) error {
	return &invalid{err: fmt.Errorf(format, args...)}
}

type invalid struct{ err error }

func (e *invalid) Error() string        { return e.err.Error() }
func (e *invalid) Unwrap() error        { return e.err }
func (e *invalid) Is(target error) bool { return target == ErrInvalid }
