package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyTest(t *testing.T) {
	library := filepath.Join("..", "..", "policy", "library")
	code, out, errOut := tollgate("policy", "test", library)
	if code != 0 || !strings.Contains(out, "PASS: ") {
		t.Fatalf("the library: exit %d\n%s%s", code, out, errOut)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rule.rego"), []byte("package acme\nimport rego.v1\ndeny contains \"x\" if input.bad\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "rule_test.rego"), []byte("package acme_test\nimport rego.v1\nimport data.acme\ntest_wrong if { count(acme.deny) == 1 with input as {} }\n"), 0o600)
	code, out, _ = tollgate("policy", "test", dir)
	if code != 1 || !strings.Contains(out, "data.acme_test.test_wrong: FAIL") || !strings.Contains(out, "rule_test.rego:4") {
		t.Fatalf("a failing test: exit %d\n%s", code, out)
	}

	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package broken\nimport rego.v1\ndeny contains x if {\n"), 0o600)
	code, _, errOut = tollgate("policy", "test", dir)
	if code != 2 || !strings.Contains(errOut, "broken.rego:4") {
		t.Fatalf("a syntax error: exit %d\n%s", code, errOut)
	}

	code, _, errOut = tollgate("policy", "test", filepath.Join(dir, "missing"))
	if code != 2 || errOut == "" {
		t.Fatalf("a missing directory: exit %d %s", code, errOut)
	}
	os.WriteFile(filepath.Join(dir, "net.rego"), []byte("package net\nimport rego.v1\ndeny contains r.body if r := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1\"})\n"), 0o600)
	os.Remove(filepath.Join(dir, "broken.rego"))
	code, _, errOut = tollgate("policy", "test", dir)
	if code != 2 || !strings.Contains(errOut, "http.send") {
		t.Fatalf("a network built-in: exit %d %s", code, errOut)
	}
}
