package hints

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

const goldens = "../provenance/testdata/chains"

type golden struct {
	Format    string `json:"format"`
	Run       string `json:"run"`
	Statement struct {
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	} `json:"statement"`
}

func results(rs []pipelinev1.TaskRunResult) []Result {
	out := make([]Result, len(rs))
	for i, r := range rs {
		out[i] = Result{Name: r.Name, Value: r.Value}
	}
	return out
}

// subjectsLike computes a TaskRun's subjects with the rules each Chains
// format applies: SLSA v0.2 takes images, ARTIFACT_URI/DIGEST pairs and
// ARTIFACT_OUTPUTS; SLSA v1.0 takes build artifacts and images, from step
// results first, then the TaskRun's.
func subjectsLike(t *testing.T, format string, tr *pipelinev1.TaskRun) []Artifact {
	t.Helper()
	var subjects []Artifact
	add := func(a []Artifact, _ []Rejected) { subjects = Append(subjects, a...) }
	rs := results(tr.Status.Results)
	if format == "slsa/v1" {
		add(Images(rs))
		add(SignableTargets(rs))
		add(Structured(rs, OutputsSuffix))
		return subjects
	}
	if format == "slsa/v2alpha4" { // v2alpha3 reads no step results
		for _, step := range tr.Status.Steps {
			add(BuildArtifacts(results(step.Results)))
			add(Images(results(step.Results)))
		}
	}
	add(BuildArtifacts(rs))
	add(Images(rs))
	return subjects
}

// Chains itself is the oracle: for every TaskRun golden, the subjects found
// here equal the subjects Chains v0.24.0 put in its statement. (Chains orders
// same-kind pairs by map iteration, so the comparison ignores order.)
func TestSubjectsMatchChains(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldens, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens in %s (run make golden): %v", goldens, err)
	}
	n := 0
	for _, f := range files {
		var g golden
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(filepath.Base(g.Run), "taskrun") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(goldens, "runs", g.Run))
			if err != nil {
				t.Fatal(err)
			}
			var tr pipelinev1.TaskRun
			if err := json.Unmarshal(raw, &tr); err != nil {
				t.Fatal(err)
			}
			var want []Artifact
			for _, s := range g.Statement.Subject {
				want = append(want, Artifact{Name: s.Name, Digest: s.Digest})
			}
			got := subjectsLike(t, g.Format, &tr)
			sortArtifacts(want)
			sortArtifacts(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("subjects (-chains +tollgate):\n%s", diff)
			}
		})
	}
	if n < 8 {
		t.Fatalf("only %d TaskRun goldens found", n)
	}
}

func sortArtifacts(a []Artifact) {
	sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
}

func str(s string) pipelinev1.ResultValue { return *pipelinev1.NewStructuredValues(s) }

func obj(m map[string]string) pipelinev1.ResultValue {
	return pipelinev1.ResultValue{Type: pipelinev1.ParamTypeObject, ObjectVal: m}
}

func TestHintsReportWhatTheyReject(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	imgs, rej := Images([]Result{
		{Name: "IMAGE_URL", Value: str("registry.example/app")},
		{Name: "IMAGE_DIGEST", Value: str(digest)},
		{Name: "BAD_IMAGE_URL", Value: str("registry.example/app")},
		{Name: "BAD_IMAGE_DIGEST", Value: str("sha256:XYZ")},
		{Name: "ONLY_IMAGE_URL", Value: str("registry.example/half")},
		{Name: "IMAGES", Value: str("registry.example/app2@" + digest + "\n, registry.example/b:latest")},
	})
	if len(imgs) != 2 || imgs[0].Name != "registry.example/app" || imgs[1].Name != "registry.example/app2" {
		t.Errorf("images = %+v", imgs)
	}
	if len(rej) != 2 || rej[0].Result != "BAD_IMAGE_URL" || !strings.Contains(rej[1].Reason, "registry.example/b:latest") {
		t.Errorf("rejected = %+v", rej)
	}
	arts, rej := BuildArtifacts([]Result{
		{Name: "BIN_ARTIFACT_OUTPUTS", Value: obj(map[string]string{"uri": "pkg:x", "digest": digest, "isBuildArtifact": "true"})},
		{Name: "LOG_ARTIFACT_OUTPUTS", Value: obj(map[string]string{"uri": "pkg:y", "digest": digest})},
		{Name: "NODIGEST_ARTIFACT_OUTPUTS", Value: obj(map[string]string{"uri": "pkg:z", "isBuildArtifact": "true"})},
		{Name: "STRING_ARTIFACT_OUTPUTS", Value: str("pkg:w")},
		{Name: "MD5_ARTIFACT_OUTPUTS", Value: obj(map[string]string{"uri": "pkg:v", "digest": "md5:abc", "isBuildArtifact": "true"})},
	})
	if len(arts) != 1 || arts[0].Name != "pkg:x" {
		t.Errorf("build artifacts = %+v", arts)
	}
	if len(rej) != 3 {
		t.Errorf("rejected = %+v", rej)
	}
}

func TestParseDigest(t *testing.T) {
	for in, ok := range map[string]bool{
		"sha256:" + strings.Repeat("0", 64):  true,
		"SHA256:" + strings.Repeat("0", 64):  true,
		"sha512:" + strings.Repeat("0", 128): true,
		"sha1:" + strings.Repeat("0", 40):    true,
		"sha256:" + strings.Repeat("0", 63):  false,
		"sha256:" + strings.Repeat("A", 64):  false,
		"md5:" + strings.Repeat("0", 32):     false,
		"sha256":                             false,
		"sha256:a:b":                         false,
	} {
		if _, _, err := ParseDigest(in); (err == nil) != ok {
			t.Errorf("ParseDigest(%q) err = %v", in, err)
		}
	}
}
