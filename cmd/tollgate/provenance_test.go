package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

var goldens = filepath.Join("..", "..", "signer", "provenance", "testdata", "chains")

// withKind writes a Chains fixture run as the API server would serve it
// today: with apiVersion and kind, and in the field names of the current
// Tekton types (the fixtures spell feature flags with their old Go names,
// which Chains' own loader reads case-insensitively).
func withKind(t *testing.T, dst *os.File, run, kind string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldens, "runs", run))
	if err != nil {
		t.Fatal(err)
	}
	var typed any = &pipelinev1.TaskRun{}
	if kind == "PipelineRun" {
		typed = &pipelinev1.PipelineRun{}
	}
	if err := json.Unmarshal(b, typed); err != nil {
		t.Fatal(err)
	}
	current, _ := json.Marshal(typed)
	var m map[string]any
	if err := json.Unmarshal(current, &m); err != nil {
		t.Fatal(err)
	}
	m["apiVersion"], m["kind"] = "tekton.dev/v1", kind
	out, _ := json.Marshal(m)
	if _, err := dst.Write(append(out, '\n')); err != nil {
		t.Fatal(err)
	}
}

func statementOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if subs, ok := v["subject"].([]any); ok {
		sort.Slice(subs, func(i, j int) bool {
			return subs[i].(map[string]any)["name"].(string) < subs[j].(map[string]any)["name"].(string)
		})
	}
	return v
}

// tollgate provenance prints, for Chains' fixture runs and Chains' settings,
// the statements Chains v0.24 produces.
func TestProvenancePrintsChainsStatements(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"slsa-v2alpha4_slsa-v2alpha4_taskrun1.json", []string{"--set", "artifacts.taskrun.format=slsa/v2alpha4"}},
		{"slsa-v1_pipeline-v1_taskrun1.json", nil}, // Chains' default format, in-toto
		{"slsa-v2alpha4_slsa-v2alpha4_pipelinerun1_deep.json", []string{"--format", "slsa/v2alpha4", "--set", "artifacts.pipelinerun.enable-deep-inspection=true"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var g struct {
				Run           string          `json:"run"`
				ChildTaskRuns []string        `json:"childTaskRuns"`
				Statement     json.RawMessage `json:"statement"`
			}
			b, err := os.ReadFile(filepath.Join(goldens, tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "run.json"))
			if err != nil {
				t.Fatal(err)
			}
			kind := "TaskRun"
			if strings.Contains(g.Run, "pipelinerun") {
				kind = "PipelineRun"
			}
			withKind(t, f, g.Run, kind)
			for _, c := range g.ChildTaskRuns {
				withKind(t, f, c, "TaskRun")
			}
			f.Close()
			args := append([]string{"provenance", "--set", "builder.id=test_builder-1"}, tc.args...)
			code, out, errOut := tollgate(append(args, f.Name())...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if diff := cmp.Diff(statementOf(t, g.Statement), statementOf(t, []byte(out))); diff != "" {
				t.Errorf("(-chains +tollgate provenance):\n%s", diff)
			}
		})
	}
}

func TestProvenanceRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	unfinished := filepath.Join(dir, "unfinished.yaml")
	os.WriteFile(unfinished, []byte("apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: x}\nspec: {taskRef: {name: t}}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unfinished run", []string{"provenance", unfinished}, "has not finished"},
		{"an unknown format", []string{"provenance", "--format", "slsa/v3", unfinished}, ""},
		{"an unknown config key", []string{"provenance", "--set", "artifacts.taskrun.formatt=slsa/v1", unfinished}, "did you mean artifacts.taskrun.format"},
		{"a malformed --set", []string{"provenance", "--set", "builder.id", unfinished}, "want key=value"},
		{"a missing file", []string{"provenance", filepath.Join(dir, "none.yaml")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := tollgate(tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}
