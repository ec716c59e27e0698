package specdigest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// canonicalizer writes the canonical form of JSON in one pass over the bytes,
// without building maps: members of each object are canonicalized into the
// output buffer, then reordered by key. It produces exactly what the
// reference implementation (decode into maps, encode sorted) produces; the
// fuzz test holds the two together.
type canonicalizer struct {
	in  []byte
	pos int
	out []byte
	// scratch for member reordering, reused across objects
	tmp []byte
	// stack of members of the objects being read (one region per nesting level)
	stack []member
}

var errSyntax = errors.New("invalid JSON")

func (c *canonicalizer) fail(what string) error {
	return fmt.Errorf("decoding spec: %w: %s at offset %d", errSyntax, what, c.pos)
}

func (c *canonicalizer) ws() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value canonicalizes one value. top drops the lifecycle members of the
// outermost object.
func (c *canonicalizer) value(depth int, top bool) error {
	if depth > MaxDepth {
		return fmt.Errorf("spec nests deeper than %d levels", MaxDepth)
	}
	c.ws()
	if c.pos >= len(c.in) {
		return c.fail("unexpected end")
	}
	switch ch := c.in[c.pos]; {
	case ch == '{':
		return c.object(depth, top)
	case ch == '[':
		return c.array(depth)
	case ch == '"':
		s, err := c.strBytes()
		if err != nil {
			return err
		}
		c.out = appendStringBytes(c.out, s)
		return nil
	case ch == 't':
		return c.lit("true")
	case ch == 'f':
		return c.lit("false")
	case ch == 'n':
		return c.lit("null")
	case ch == '-' || ('0' <= ch && ch <= '9'):
		return c.number()
	default:
		return c.fail(fmt.Sprintf("unexpected character %q", ch))
	}
}

func (c *canonicalizer) lit(s string) error {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(s)) {
		return c.fail("invalid literal")
	}
	c.pos += len(s)
	c.out = append(c.out, s...)
	return nil
}

func (c *canonicalizer) number() error {
	start := c.pos
	i := c.pos
	if c.in[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(c.in) && '0' <= c.in[i] && c.in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(c.in) && c.in[i] == '0' {
		i++
	} else if digits() == 0 {
		return c.fail("invalid number")
	}
	if i < len(c.in) && c.in[i] == '.' {
		i++
		if digits() == 0 {
			return c.fail("invalid number")
		}
	}
	if i < len(c.in) && (c.in[i] == 'e' || c.in[i] == 'E') {
		i++
		if i < len(c.in) && (c.in[i] == '+' || c.in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return c.fail("invalid number")
		}
	}
	c.pos = i
	c.out = append(c.out, c.in[start:i]...)
	return nil
}

func (c *canonicalizer) array(depth int) error {
	c.pos++ // [
	c.out = append(c.out, '[')
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			c.out = append(c.out, ',')
		}
		if err := c.value(depth+1, false); err != nil {
			return err
		}
		c.ws()
		if c.pos >= len(c.in) {
			return c.fail("unterminated array")
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			return nil
		default:
			return c.fail("expected , or ] in array")
		}
	}
}

type member struct {
	key        []byte // decoded name; aliases the input when it had no escapes
	start, end int    // canonical "key":value in c.out
}

// object canonicalizes the object at pos: members read, the duplicate and
// top-level rules applied, then written sorted by key (RFC 8785). It is one
// function because it is the scanner's hot loop over every member of every
// admitted run: splitting it would add calls per member and move its state
// (the member stack, the output offsets) into a struct.
func (c *canonicalizer) object(depth int, top bool) error {
	c.pos++ // {
	base := len(c.out)
	sbase := len(c.stack)
	defer func() { c.stack = c.stack[:sbase] }()
	replacedAny := false
	ascending := true
	c.out = append(c.out, '{')
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return nil
	}
	for n := 0; ; n++ {
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.fail("expected a member name")
		}
		if n > 0 {
			c.out = append(c.out, ',')
		}
		key, err := c.strBytes()
		if err != nil {
			return err
		}
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.fail("expected :")
		}
		c.pos++
		start := len(c.out)
		c.out = appendStringBytes(c.out, key)
		c.out = append(c.out, ':')
		if err := c.value(depth+1, false); err != nil {
			return err
		}
		m := member{key: key, start: start, end: len(c.out)}
		// A repeated key: the last one wins, as when decoding into a map.
		// While keys come in increasing order (the API server writes them
		// sorted), a new key cannot repeat an earlier one: the search is
		// needed only once the order breaks.
		replaced := false
		if n := len(c.stack); !ascending || n == sbase || bytes.Compare(c.stack[n-1].key, key) >= 0 {
			ascending = ascending && n == sbase
			for i := sbase; i < len(c.stack); i++ {
				if bytes.Equal(c.stack[i].key, key) {
					c.stack[i] = m
					replaced = true
					break
				}
			}
		}
		if !replaced {
			c.stack = append(c.stack, m)
		} else {
			replacedAny = true
		}
		c.ws()
		if c.pos >= len(c.in) {
			return c.fail("unterminated object")
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] == '}' {
			c.pos++
			break
		}
		return c.fail("expected , or } in object")
	}
	members := c.stack[sbase:]
	dropped := false
	if top {
		kept := members[:0]
		for _, m := range members {
			if !lifecycleFields[string(m.key)] {
				kept = append(kept, m)
			} else {
				dropped = true
			}
		}
		members = kept
	}
	cmp := func(a, b member) int { return bytes.Compare(a.key, b.key) }
	if !dropped && !replacedAny && slices.IsSortedFunc(members, cmp) {
		// Already in canonical order (the API server writes sorted keys):
		// only the closing brace is missing.
		c.out = append(c.out, '}')
		return nil
	}
	slices.SortStableFunc(members, cmp)
	// Rewrite this object's region of out in key order.
	c.tmp = append(c.tmp[:0], '{')
	for i, m := range members {
		if i > 0 {
			c.tmp = append(c.tmp, ',')
		}
		c.tmp = append(c.tmp, c.out[m.start:m.end]...)
	}
	c.tmp = append(c.tmp, '}')
	c.out = append(c.out[:base], c.tmp...)
	return nil
}

// str reads a JSON string at pos and returns its value.
func (c *canonicalizer) str() (string, error) {
	b, err := c.strBytes()
	return string(b), err
}

// strBytes reads a JSON string at pos and returns its value, with invalid
// UTF-8 and unpaired surrogates replaced by U+FFFD, as encoding/json does.
// Without escapes the result aliases the input. It is long because it is
// the byte loop every string of every admitted run goes through: the
// escape, surrogate and UTF-8 cases are written out, not called.
func (c *canonicalizer) strBytes() ([]byte, error) {
	c.pos++ // opening quote
	start := c.pos
	// Fast path: ASCII without escapes or control characters, as nearly
	// every string in a run is; anything else takes the loop below.
	for i := start; i < len(c.in); i++ {
		ch := c.in[i]
		if ch == '"' {
			c.pos = i + 1
			return c.in[start:i], nil
		}
		if ch == '\\' || ch < 0x20 || ch >= utf8.RuneSelf {
			break
		}
	}
	b := []byte{}
	i := start
	for {
		if i >= len(c.in) {
			c.pos = i
			return nil, c.fail("unterminated string")
		}
		ch := c.in[i]
		switch {
		case ch == '"':
			c.pos = i + 1
			return b, nil
		case ch < 0x20:
			c.pos = i
			return nil, c.fail("control character in string")
		case ch == '\\':
			if i+1 >= len(c.in) {
				c.pos = i
				return nil, c.fail("unterminated escape")
			}
			switch e := c.in[i+1]; {
			case simpleEscapes[e] != 0:
				b = append(b, simpleEscapes[e])
				i += 2
			case e == 'u':
				r, ok := hex4(c.in, i+2)
				if !ok {
					c.pos = i
					return nil, c.fail("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(-1), false
					if i+1 < len(c.in) && c.in[i] == '\\' && c.in[i+1] == 'u' {
						r2, ok2 = hex4(c.in, i+2)
					}
					if ok2 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							b = utf8.AppendRune(b, dec)
							break
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
			default:
				c.pos = i
				return nil, c.fail("invalid escape")
			}
		case ch < utf8.RuneSelf:
			b = append(b, ch)
			i++
		default:
			r, size := utf8.DecodeRune(c.in[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, c.in[i:i+size]...)
			}
			i += size
		}
	}
}

// simpleEscapes maps the character after a backslash to what it stands for.
var simpleEscapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[at : at+4] {
		switch {
		case '0' <= ch && ch <= '9':
			ch -= '0'
		case 'a' <= ch && ch <= 'f':
			ch = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			ch = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(ch)
	}
	return r, true
}

// appendStringBytes appends s as a canonical JSON string: the characters
// JSON requires escaped, escaped; nothing else (no HTML escaping). Runs of
// characters that need nothing are copied whole: every string of every
// admitted run is written here.
func appendStringBytes(out []byte, s []byte) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		ch := s[i]
		if ch < utf8.RuneSelf {
			if ch >= 0x20 && ch != '"' && ch != '\\' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch {
			case ch == '"':
				out = append(out, '\\', '"')
			case ch == '\\':
				out = append(out, '\\', '\\')
			default:
				out = append(out, '\\', 'u', '0', '0', "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// skipValue advances over one value without canonicalizing it.
func (c *canonicalizer) skipValue(depth int) error {
	mark := len(c.out)
	err := c.value(depth, false)
	c.out = c.out[:mark]
	return err
}

// canonicalSpecOf finds the top-level "spec" member of an object and
// canonicalizes it; other members are only validated. The raw JSON of the
// last top-level member named keep (when keep is not "") is returned too.
func canonicalSpecOf(obj []byte, keep string) (spec, kept []byte, err error) {
	c := &canonicalizer{in: obj, out: make([]byte, 0, len(obj))}
	c.ws()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return nil, nil, fmt.Errorf("decoding object: %w", ErrNotObject)
	}
	c.pos++
	found := false
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		return nil, nil, fmt.Errorf("object has no spec: %w", ErrNotObject)
	}
	for {
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return nil, nil, c.fail("expected a member name")
		}
		key, err := c.str()
		if err != nil {
			return nil, nil, err
		}
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return nil, nil, c.fail("expected :")
		}
		c.pos++
		if key == "spec" {
			c.out = c.out[len(c.out):]
			c.ws()
			if c.pos < len(c.in) && c.in[c.pos] != '{' {
				if err := c.skipValue(1); err != nil {
					return nil, nil, err
				}
				spec, found = nil, false
				// A non-object spec: remembered as invalid unless a later "spec" replaces it.
				found = true
			} else {
				if err := c.value(1, true); err != nil {
					return nil, nil, err
				}
				// Keep the canonical spec; later members are only
				// validated, into the free capacity after it.
				spec, found = c.out, true
				c.out = c.out[len(c.out):]
			}
		} else {
			c.ws()
			start := c.pos
			if err := c.skipValue(1); err != nil {
				return nil, nil, err
			}
			if keep != "" && key == keep {
				kept = c.in[start:c.pos]
			}
		}
		c.ws()
		if c.pos >= len(c.in) {
			return nil, nil, c.fail("unterminated object")
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] == '}' {
			c.pos++
			break
		}
		return nil, nil, c.fail("expected , or } in object")
	}
	c.ws()
	if c.pos != len(c.in) {
		return nil, nil, errors.New("decoding object: trailing data after the JSON value")
	}
	if !found || spec == nil {
		return nil, nil, fmt.Errorf("object has no spec: %w", ErrNotObject)
	}
	return spec, kept, nil
}
