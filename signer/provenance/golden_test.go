package provenance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

const goldenDir = "testdata/chains"

type golden struct {
	Format         string          `json:"format"`
	BuilderID      string          `json:"builderID"`
	BuildType      string          `json:"buildType"`
	DeepInspection bool            `json:"deepInspection"`
	Run            string          `json:"run"`
	ChildTaskRuns  []string        `json:"childTaskRuns"`
	Statement      json.RawMessage `json:"statement"`
}

func loadGoldens(t *testing.T, format, kind string) map[string]golden {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens in %s (make golden): %v", goldenDir, err)
	}
	out := map[string]golden{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if g.Format == format && strings.HasPrefix(filepath.Base(g.Run), kind) {
			out[filepath.Base(f)] = g
		}
	}
	return out
}

func readTaskRun(t *testing.T, path string) *pipelinev1.TaskRun {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, "runs", path))
	if err != nil {
		t.Fatal(err)
	}
	var tr pipelinev1.TaskRun
	if err := json.Unmarshal(data, &tr); err != nil {
		t.Fatal(err)
	}
	return &tr
}

// normalize decodes a statement for comparison; subjects are sorted, as
// Chains orders pairs of one kind by map iteration.
func normalize(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if subs, ok := v["subject"].([]any); ok {
		sort.Slice(subs, func(i, j int) bool {
			return subs[i].(map[string]any)["name"].(string) < subs[j].(map[string]any)["name"].(string)
		})
	}
	return v
}

func TestTaskRunV2Alpha4MatchesChains(t *testing.T) {
	testTaskRuns(t, "slsa/v2alpha4", 5, TaskRunV2Alpha4)
}

func TestTaskRunV2Alpha3MatchesChains(t *testing.T) {
	testTaskRuns(t, "slsa/v2alpha3", 3, TaskRunV2Alpha3)
}

func TestPipelineRunV2Alpha3MatchesChains(t *testing.T) {
	testPipelineRuns(t, "slsa/v2alpha3", 2, PipelineRunV2Alpha3)
}

func testTaskRuns(t *testing.T, format string, want int, build func(*pipelinev1.TaskRun, Options) (*intoto.Statement, error)) {
	gs := loadGoldens(t, format, "taskrun")
	if len(gs) < want {
		t.Fatalf("%d %s TaskRun goldens, want %d", len(gs), format, want)
	}
	for name, g := range gs {
		t.Run(name, func(t *testing.T) {
			tr := readTaskRun(t, g.Run)
			st, err := build(tr, Options{BuilderID: g.BuilderID, BuildType: g.BuildType})
			if err != nil {
				t.Fatal(err)
			}
			got, err := protojson.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalize(t, g.Statement), normalize(t, got)); diff != "" {
				t.Errorf("statement (-chains +tollgate):\n%s", diff)
			}
		})
	}
}

func TestPipelineRunV2Alpha4MatchesChains(t *testing.T) {
	testPipelineRuns(t, "slsa/v2alpha4", 8, PipelineRunV2Alpha4)
}

func testPipelineRuns(t *testing.T, format string, want int, build func(*PipelineRun, Options, bool) (*intoto.Statement, error)) {
	gs := loadGoldens(t, format, "pipelinerun")
	if len(gs) < want {
		t.Fatalf("%d %s PipelineRun goldens, want %d", len(gs), format, want)
	}
	for name, g := range gs {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(goldenDir, "runs", g.Run))
			if err != nil {
				t.Fatal(err)
			}
			p := &PipelineRun{Run: &pipelinev1.PipelineRun{}}
			if err := json.Unmarshal(data, p.Run); err != nil {
				t.Fatal(err)
			}
			for _, c := range g.ChildTaskRuns {
				p.TaskRuns = append(p.TaskRuns, readTaskRun(t, c))
			}
			st, err := build(p, Options{BuilderID: g.BuilderID, BuildType: g.BuildType}, g.DeepInspection)
			if err != nil {
				t.Fatal(err)
			}
			got, err := protojson.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalize(t, g.Statement), normalize(t, got)); diff != "" {
				t.Errorf("statement (-chains +tollgate):\n%s", diff)
			}
		})
	}
}

func TestTaskRunSLSAv02MatchesChains(t *testing.T) {
	testTaskRuns(t, "slsa/v1", 3, TaskRunSLSAv02)
}

func TestPipelineRunSLSAv02MatchesChains(t *testing.T) {
	testPipelineRuns(t, "slsa/v1", 4, PipelineRunSLSAv02)
}
