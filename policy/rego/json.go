package rego

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxDepth bounds nesting; the API server's own limit is far below it.
const maxDepth = 10000

// ParseJSON turns JSON bytes straight into the value rules see, in one
// pass: decoding into Go maps and converting those costs twice the time and
// three times the allocations, on every admission.
func ParseJSON(b []byte) (Value, error) {
	p := jsonParser{b: b}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.errorf("trailing data")
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (Value, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested deeper than %d", maxDepth)
	}
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == 't':
		return p.literal("true", ast.Boolean(true))
	case c == 'f':
		return p.literal("false", ast.Boolean(false))
	case c == 'n':
		return p.literal("null", ast.Null{})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *jsonParser) literal(word string, v Value) (Value, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, p.errorf("expected %s", word)
	}
	p.i += len(word)
	return v, nil
}

func (p *jsonParser) number() (Value, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errorf("malformed number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	return ast.Number(p.b[start:p.i]), nil
}

// str reads a string; strings without escapes in valid UTF-8 (nearly all)
// are sliced, the rest decoded by encoding/json (which also replaces
// invalid UTF-8 with U+FFFD, as the API server's decoder does).
func (p *jsonParser) str() (string, error) {
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			raw := p.b[start:p.i]
			if !escaped && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", p.errorf("%v", err)
			}
			return s, nil
		case c == '\\':
			escaped = true
			p.i += 2
		case c < 0x20:
			return "", p.errorf("control character in a string")
		default:
			p.i++
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) object(depth int) (Value, error) {
	p.i++ // {
	var pairs [][2]*ast.Term
	var keys map[string]int // once an object is large, to find duplicates
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return ast.NewObject(), nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errorf("expected a key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if len(pairs) == smallObject {
			keys = make(map[string]int, 2*smallObject)
			for i, p := range pairs {
				keys[string(p[0].Value.(ast.String))] = i
			}
		}
		i := -1
		if keys != nil {
			if j, ok := keys[k]; ok {
				i = j
			}
		} else {
			i = index(pairs, k)
		}
		if i >= 0 {
			pairs[i][1] = ast.NewTerm(v) // the last value wins, as in encoding/json
		} else {
			if keys != nil {
				keys[k] = len(pairs)
			}
			pairs = append(pairs, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
		}
		p.space()
		if p.i >= len(p.b) {
			return nil, p.errorf("unterminated object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return ast.NewObject(pairs...), nil // sized once
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

func (p *jsonParser) array(depth int) (Value, error) {
	p.i++ // [
	var terms []*ast.Term
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return ast.NewArray(), nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		terms = append(terms, ast.NewTerm(v))
		p.space()
		if p.i >= len(p.b) {
			return nil, p.errorf("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return ast.NewArray(terms...), nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

// smallObject is the size up to which duplicate keys are found by a
// linear scan (Kubernetes objects rarely have more keys); beyond it, a map.
const smallObject = 16

// index finds a key among an object's pairs so far.
func index(pairs [][2]*ast.Term, k string) int {
	for i, p := range pairs {
		if string(p[0].Value.(ast.String)) == k {
			return i
		}
	}
	return -1
}
