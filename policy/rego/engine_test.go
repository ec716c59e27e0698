package rego_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/policy/rego"
)

func input(t *testing.T, v any) any {
	t.Helper()
	in, err := rego.Input(v)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestLibrary(t *testing.T) {
	results, err := rego.Test(t.Context(), rego.LibraryTests(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 8 {
		t.Fatalf("only %d library tests ran", len(results))
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s", rego.Describe(r))
		}
	}
}

const params = `package acme.params

import rego.v1

# METADATA
# title: No token in params
deny contains {"msg": sprintf("param %q looks like a token", [p.name]), "path": "spec.params"} if {
	some p in input.run.spec.params
	regex.match("(?i)token|secret", p.name)
}

warn contains "no params at all" if count(object.get(input.run.spec, "params", [])) == 0
`

func TestEval(t *testing.T) {
	p, err := rego.Compile(t.Context(), []rego.Module{{Name: "params.rego", Source: params}}, rego.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	in := input(t, map[string]any{"run": map[string]any{"spec": map[string]any{"params": []any{map[string]any{"name": "GITHUB_TOKEN"}, map[string]any{"name": "url"}}}}})
	fs, err := p.Eval(t.Context(), in.(rego.Value))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || !fs[0].Deny || fs[0].Rule != "data.acme.params.deny" || fs[0].Msg != `param "GITHUB_TOKEN" looks like a token` || fs[0].Path != "spec.params" {
		t.Fatalf("findings: %+v", fs)
	}
	fs, err = p.Eval(t.Context(), input(t, map[string]any{"run": map[string]any{"spec": map[string]any{}}}).(rego.Value))
	if err != nil || len(fs) != 1 || fs[0].Deny || fs[0].Msg != "no params at all" {
		t.Fatalf("findings: %+v %v", fs, err)
	}
}

func TestBadModules(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"syntax error":          {"package a\n\ndeny contains msg if {", "a.rego:3"},
		"compile error":         {"package a\nimport rego.v1\ndeny contains msg if { msg := undefined_fn(1) }", "a.rego:3:"},
		"network built-in":      {"package a\nimport rego.v1\ndeny contains msg if { r := http.send({\"method\": \"get\", \"url\": \"http://x\"}); msg := r.body }", "undefined function http.send"},
		"runtime built-in":      {"package a\nimport rego.v1\ndeny contains msg if { msg := opa.runtime().env.HOME }", "undefined function opa.runtime"},
		"not rego v1":           {"package a\ndeny[msg] { msg := \"x\" }", "a.rego:2"},
		"nothing to enforce":    {"package a\nimport rego.v1\nallow := true", "no module defines a deny or warn rule"},
		"the library's package": {"package tollgate.lib\nimport rego.v1\ndeny contains \"x\"", "reserved for the built-in library"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := rego.Compile(t.Context(), []rego.Module{{Name: "a.rego", Source: c.src}}, rego.DefaultOptions())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRuntimeFailuresFailClosed(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"a rule that errors":          {"package a\nimport rego.v1\ndeny contains msg if { msg := sprintf(\"%d\", [to_number(\"nope\")]) }", "data.a.deny"},
		"a message of the wrong type": {"package a\nimport rego.v1\ndeny contains 42", "a message is a number"},
		"an object without msg":       {"package a\nimport rego.v1\ndeny contains {\"text\": \"x\"}", `has no string "msg"`},
		"deny that is not a set":      {"package a\nimport rego.v1\ndeny := \"no\"", "is a string, not a set of messages"},
		"an endless rule":             {"package a\nimport rego.v1\ndeny contains msg if { some i in numbers.range(1, 100000000000); i < 0; msg := \"never\" }", "did not finish within 50ms"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := rego.Compile(t.Context(), []rego.Module{{Name: "a.rego", Source: c.src}}, rego.Options{Timeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = p.Eval(context.Background(), input(t, map[string]any{}).(rego.Value))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}
