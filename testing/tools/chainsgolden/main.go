// Command chainsgolden writes the provenance Tekton Chains v0.24.0 produces
// for Chains' own fixture runs, as golden files for Tollgate's formatters.
// Chains itself is the oracle: this module requires it (with the dependency
// versions it was released with), separately from Tollgate's module.
//
//	go run . -out ../../../signer/provenance/testdata/chains
//
// `make golden` runs it. The fixtures are read from the Chains module in the
// module cache; each golden file holds the fixture names, the configuration
// and the statement Chains produced.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/tektoncd/chains/pkg/chains/formats"
	slsav1 "github.com/tektoncd/chains/pkg/chains/formats/slsa/v1"
	"github.com/tektoncd/chains/pkg/chains/formats/slsa/v2alpha3"
	"github.com/tektoncd/chains/pkg/chains/formats/slsa/v2alpha4"
	"github.com/tektoncd/chains/pkg/chains/objects"
	"github.com/tektoncd/chains/pkg/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// golden is one file: what went in and what Chains produced.
type golden struct {
	Chains         string          `json:"chains"`
	Format         string          `json:"format"`
	BuilderID      string          `json:"builderID"`
	BuildType      string          `json:"buildType"`
	DeepInspection bool            `json:"deepInspection"`
	Run            string          `json:"run"`
	ChildTaskRuns  []string        `json:"childTaskRuns,omitempty"`
	Statement      json.RawMessage `json:"statement"`
}

// ownFixtures are Tollgate's runs (in the output's runs/tollgate): shapes
// Chains' fixtures lack, such as a workspace's volumeClaimTemplate, whose
// metadata Chains' Go types encode with "creationTimestamp": null.
const ownFixtures = "tollgate"

// tektonFixtures are runs the real Tekton controller produced in Tollgate's
// end-to-end test (TestTektonArticlePipeline with TOLLGATE_CAPTURE_RUNS, in
// the output's runs/tekton): the seed article's PipelineRun and its TaskRuns.
const tektonFixtures = "tekton"

// local reports whether a fixture directory is kept in the output (not
// read from the Chains module).
func local(dir string) bool { return dir == ownFixtures || dir == tektonFixtures }

var article = []fixture{
	{tektonFixtures, "taskrun-article-fetch-source.json", nil},
	{tektonFixtures, "taskrun-article-build-push.json", nil},
	{tektonFixtures, "pipelinerun-article.json", []string{"taskrun-article-fetch-source.json", "taskrun-article-build-push.json"}},
}

type fixture struct {
	dir      string
	run      string
	children []string
}

// main is the table of Chains' formatters and fixtures, then one loop that
// writes a golden file for each; it reads best whole.
func main() {
	out := flag.String("out", "", "directory to write golden files to")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: chainsgolden -out DIR")
		os.Exit(2)
	}
	dirOut, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/chains").Output()
	if err != nil {
		fail(fmt.Errorf("locating the chains module: %w", err))
	}
	testdata := filepath.Join(strings.TrimSpace(string(dirOut)), "pkg", "chains", "formats", "slsa", "testdata")

	formatters := []struct {
		name     string
		new      func(config.Config) (formats.Payloader, error)
		fixtures []fixture
	}{
		{"slsa/v1", slsav1.NewFormatter, append([]fixture{
			{"pipeline-v1", "taskrun1.json", nil},
			{"pipeline-v1", "taskrun2.json", nil},
			{"pipeline-v1", "taskrun-multiple-subjects.json", nil},
			{"pipeline-v1", "pipelinerun1.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"pipeline-v1", "pipelinerun_structured_results.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"tollgate", "pipelinerun-vct.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"tollgate", "taskrun-vct.json", nil},
		}, article...)},
		{"slsa/v2alpha3", v2alpha3.NewFormatter, append([]fixture{
			{"slsa-v2alpha3", "taskrun1.json", nil},
			{"slsa-v2alpha3", "taskrun2.json", nil},
			{"slsa-v2alpha3", "taskrun-multiple-subjects.json", nil},
			{"slsa-v2alpha3", "pipelinerun1.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"tollgate", "pipelinerun-vct.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"tollgate", "taskrun-vct.json", nil},
		}, article...)},
		{"slsa/v2alpha4", v2alpha4.NewFormatter, append([]fixture{
			{"slsa-v2alpha4", "taskrun1.json", nil},
			{"slsa-v2alpha4", "taskrun2.json", nil},
			{"slsa-v2alpha4", "taskrun3.json", nil},
			{"slsa-v2alpha4", "taskrun4.json", nil},
			{"slsa-v2alpha4", "taskrun-multiple-subjects.json", nil},
			{"slsa-v2alpha4", "pipelinerun1.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"slsa-v2alpha4", "pipelinerun2.json", []string{"taskrun3.json", "taskrun4.json"}},
			{"slsa-v2alpha4", "pipelinerun_structured_results.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"slsa-v2alpha4", "pipelinerun-remote-resolver.json", nil},
			{"tollgate", "pipelinerun-vct.json", []string{"taskrun1.json", "taskrun2.json"}},
			{"tollgate", "taskrun-vct.json", nil},
		}, article...)},
	}
	ctx := context.Background()
	n := 0
	for _, f := range formatters {
		for _, deep := range []bool{false, true} {
			cfg := config.Config{
				Builder:         config.BuilderConfig{ID: "test_builder-1"},
				BuildDefinition: config.BuildDefinitionConfig{BuildType: "https://tekton.dev/chains/v2/slsa"},
				Artifacts:       config.ArtifactConfigs{PipelineRuns: config.Artifact{DeepInspectionEnabled: deep}},
			}
			p, err := f.new(cfg)
			if err != nil {
				fail(err)
			}
			for _, fx := range f.fixtures {
				isPR := strings.HasPrefix(fx.run, "pipelinerun")
				if deep && !isPR {
					continue // deep inspection only changes PipelineRun provenance
				}
				dir := filepath.Join(testdata, fx.dir)
				if local(fx.dir) {
					dir = filepath.Join(*out, "runs", fx.dir)
				}
				obj, err := load(dir, fx)
				if err != nil {
					fail(err)
				}
				stmt, err := p.CreatePayload(ctx, obj)
				if err != nil {
					fail(fmt.Errorf("%s %s/%s: %w", f.name, fx.dir, fx.run, err))
				}
				raw, err := rawPayload(stmt)
				if err != nil {
					fail(err)
				}
				g := golden{
					Chains: "v0.24.0", Format: f.name, BuilderID: cfg.Builder.ID, BuildType: cfg.BuildDefinition.BuildType,
					DeepInspection: deep, Run: fx.dir + "/" + fx.run, Statement: raw,
				}
				for _, c := range fx.children {
					g.ChildTaskRuns = append(g.ChildTaskRuns, fx.dir+"/"+c)
				}
				name := strings.ReplaceAll(f.name, "/", "-") + "_" + fx.dir + "_" + strings.TrimSuffix(fx.run, ".json")
				if deep {
					name += "_deep"
				}
				data, err := json.MarshalIndent(g, "", "  ")
				if err != nil {
					fail(err)
				}
				if err := os.MkdirAll(*out, 0o755); err != nil {
					fail(err)
				}
				if err := os.WriteFile(filepath.Join(*out, name+".json"), append(data, '\n'), 0o644); err != nil {
					fail(err)
				}
				// Keep a copy of the inputs next to the goldens, so Tollgate's
				// tests do not depend on the Chains module being downloaded.
				for _, in := range append([]string{fx.run}, fx.children...) {
					if local(fx.dir) {
						break // already there
					}
					src := filepath.Join(testdata, fx.dir, in)
					dst := filepath.Join(*out, "runs", fx.dir, in)
					b, err := os.ReadFile(src)
					if err != nil {
						fail(err)
					}
					if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
						fail(err)
					}
					if err := os.WriteFile(dst, b, 0o644); err != nil {
						fail(err)
					}
				}
				n++
			}
		}
	}
	fmt.Printf("chainsgolden: wrote %d golden statements to %s\n", n, *out)
}

func load(dir string, fx fixture) (any, error) {
	read := func(name string, v any) error {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	if !strings.HasPrefix(fx.run, "pipelinerun") {
		var tr v1.TaskRun
		if err := read(fx.run, &tr); err != nil {
			return nil, err
		}
		return objects.NewTaskRunObjectV1(&tr), nil
	}
	var pr v1.PipelineRun
	if err := read(fx.run, &pr); err != nil {
		return nil, err
	}
	pro := objects.NewPipelineRunObjectV1(&pr)
	for _, c := range fx.children {
		var tr v1.TaskRun
		if err := read(c, &tr); err != nil {
			return nil, err
		}
		pro.AppendTaskRun(&tr)
	}
	return pro, nil
}

// rawPayload serializes a payload the way Chains' signer does
// (pkg/chains/signing.go getRawPayload): protojson for in-toto v1
// statements, encoding/json otherwise. protojson's spacing is unstable, so
// the result is normalized through a generic decode.
func rawPayload(payload any) (json.RawMessage, error) {
	var b []byte
	var err error
	switch p := payload.(type) {
	case intoto.Statement:
		b, err = protojson.Marshal(&p)
	case *intoto.Statement:
		b, err = protojson.Marshal(p)
	default:
		b, err = json.Marshal(payload)
	}
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chainsgolden:", err)
	os.Exit(1)
}
