package specdigest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Annotation is the annotation the run guard stamps on every admitted run.
const Annotation = "tollgate.dev/spec-digest"

// Prefix starts every digest value.
const Prefix = "sha256:"

// MaxDepth bounds the nesting of the JSON a digest is computed over; deeper
// input is refused rather than recursed into.
const MaxDepth = 256

// lifecycleFields are the spec fields excluded from the digest.
var lifecycleFields = map[string]bool{"status": true, "statusMessage": true}

// ErrNotObject is returned when the spec is not a JSON object.
var ErrNotObject = errors.New("spec is not a JSON object")

// OfSpec returns the digest of a run's spec given as raw JSON.
// A null or absent spec is an error: every Tekton run has one.
func OfSpec(spec []byte) (string, error) {
	c, err := Canonical(spec)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return Prefix + hex.EncodeToString(sum[:]), nil
}

// OfObject returns the digest of the "spec" member of a whole object given as
// raw JSON, reading the object once.
func OfObject(obj []byte) (string, error) {
	d, _, err := OfObjectWith(obj, "")
	return d, err
}

// OfObjectWith is OfObject that also returns the raw JSON of the object's
// top-level member named member (the last one, as a decoder keeps it; nil
// when there is none), read in the same pass: the run guard's stamp needs
// the digest and the metadata, and the object is read once.
func OfObjectWith(obj []byte, member string) (digest string, raw []byte, err error) {
	c, raw, err := canonicalSpecOf(obj, member)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(c)
	return Prefix + hex.EncodeToString(sum[:]), raw, nil
}

// Canonical returns the canonical JSON of a spec, lifecycle fields removed.
func Canonical(spec []byte) ([]byte, error) {
	c := &canonicalizer{in: spec, out: make([]byte, 0, len(spec))}
	c.ws()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		// Distinguish "valid JSON, not an object" from invalid JSON.
		if err := c.skipValue(1); err != nil {
			return nil, err
		}
		return nil, ErrNotObject
	}
	if err := c.value(1, true); err != nil {
		return nil, err
	}
	c.ws()
	if c.pos != len(c.in) {
		return nil, errors.New("decoding spec: trailing data after the JSON value")
	}
	return c.out, nil
}

// Valid reports whether s has the form of a digest this package produces.
func Valid(s string) bool {
	h, ok := strings.CutPrefix(s, Prefix)
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
