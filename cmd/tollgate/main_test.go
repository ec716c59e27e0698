package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

var samples = filepath.Join("..", "..", "testing", "samples")

func tollgate(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckExitCodes(t *testing.T) {
	state := filepath.Join(samples, "cluster")
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"allowed run", []string{"check", "--cluster-state", state, filepath.Join(samples, "runs", "08-taskrun-build.yaml")}, 0, "TaskRun team-a/build-1: allowed"},
		{"denied run", []string{"check", "--cluster-state", state, filepath.Join(samples, "runs", "03-privileged-step.yaml")}, 1, `deny 1. [podSecurity] task "build" step "docker-build"`},
		{"a directory with a denial", []string{"check", "--cluster-state", state, filepath.Join(samples, "runs")}, 1, "PipelineRun team-a/build-and-push-1: allowed"},
		{"without cluster state, cluster checks are skipped", []string{"check", filepath.Join(samples, "runs", "08-taskrun-build.yaml")}, 0, "existence and RBAC not checked"},
		{"a file that is not a run", []string{"check", filepath.Join(samples, "cluster", "rbac.yaml")}, 2, ""},
		{"a missing file", []string{"check", "no-such-file.yaml"}, 2, ""},
		{"no arguments", []string{"check"}, 2, ""},
		{"bad output", []string{"check", "-o", "xml", filepath.Join(samples, "runs")}, 2, ""},
		{"unknown flag", []string{"check", "--frobnicate", filepath.Join(samples, "runs")}, 2, ""},
		{"unknown command", []string{"frobnicate"}, 2, ""},
		{"a policy dir that is not policies", []string{"check", "--policy", filepath.Join(samples, "runs"), filepath.Join(samples, "runs")}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tollgate(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("stdout does not contain %q:\n%s", tc.out, out)
			}
			if code == 2 && errOut == "" {
				t.Error("a usage error printed nothing on stderr")
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	code, out, _ := tollgate("check", "-o", "json", "--cluster-state", filepath.Join(samples, "cluster"), filepath.Join(samples, "runs"))
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var results []checkResult
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(results) != 10 {
		t.Fatalf("%d results, want 10 (one per sample run)", len(results))
	}
	for _, r := range results {
		if r.Allowed != (len(r.Decision.Denials) == 0) {
			t.Errorf("%s: allowed=%v with %d denials", r.Source, r.Allowed, len(r.Decision.Denials))
		}
	}
}

func TestHelpListsTheCommands(t *testing.T) {
	code, out, _ := tollgate("--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"check", "webhook", "version", "provenance", "signer", "verify", "policy"} {
		if !strings.Contains(out, c) {
			t.Errorf("--help does not list %s", c)
		}
	}
	code, out, _ = tollgate("check", "--help")
	if code != 0 || !strings.Contains(out, "Exit status: 0 every run allowed, 1 a run denied, 2 a usage or input error") {
		t.Errorf("check --help: exit %d\n%s", code, out)
	}
}

func TestWebhookRequiresTLS(t *testing.T) {
	code, _, errOut := tollgate("webhook", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if code != 2 || errOut == "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
