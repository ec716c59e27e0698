package images

import "errors"

// ErrInvalidImage marks an image reference the gate refuses to interpret
// (malformed, uppercase or non-sha256 digest).
var ErrInvalidImage = errors.New("invalid image reference")

// ErrRegistry marks a failure talking to a registry (network, status,
// limits exceeded, a body that does not match its digest). It is never
// cached: the next admission asks again.
var ErrRegistry = errors.New("registry error")
