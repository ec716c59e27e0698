package specdigest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
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

// OfObject returns the digest of the "spec" member of a whole object given as raw JSON.
func OfObject(obj []byte) (string, error) {
	var o struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		return "", fmt.Errorf("decoding object: %w", err)
	}
	if len(o.Spec) == 0 {
		return "", fmt.Errorf("object has no spec: %w", ErrNotObject)
	}
	return OfSpec(o.Spec)
}

// Canonical returns the canonical JSON of a spec, lifecycle fields removed.
func Canonical(spec []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding spec: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decoding spec: trailing data after the JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ErrNotObject
	}
	var buf bytes.Buffer
	buf.Grow(len(spec))
	if err := writeObject(&buf, m, 1, true); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func write(buf *bytes.Buffer, v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("spec nests deeper than %d levels", MaxDepth)
	}
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case json.Number:
		buf.WriteString(t.String())
	case string:
		writeString(buf, t)
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := write(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		return writeObject(buf, t, depth, false)
	default:
		return fmt.Errorf("unexpected JSON value of type %T", v)
	}
	return nil
}

func writeObject(buf *bytes.Buffer, m map[string]any, depth int, top bool) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		if top && lifecycleFields[k] {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, k)
		buf.WriteByte(':')
		if err := write(buf, m[k], depth+1); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

// writeString writes s as a JSON string with a fixed escaping: the
// characters JSON requires escaped, and nothing else (no HTML escaping), so the
// bytes do not depend on an encoder's options.
func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				buf.WriteString(`\"`)
			case c == '\\':
				buf.WriteString(`\\`)
			case c < 0x20:
				buf.WriteString(`\u00`)
				buf.WriteByte("0123456789abcdef"[c>>4])
				buf.WriteByte("0123456789abcdef"[c&0xf])
			default:
				buf.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(`\ufffd`)
		} else {
			buf.WriteString(s[i : i+size])
		}
		i += size
	}
	buf.WriteByte('"')
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
