package provenance

import (
	"fmt"
	"sort"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/tollgate-dev/tollgate/signer/hints"
)

// Chains' conventions for the source a run built from.
const (
	GitCommitParam = "CHAINS-GIT_COMMIT"
	GitURLParam    = "CHAINS-GIT_URL"
	ociScheme      = "oci://"
	gitScheme      = "git+"
)

// imageMaterial turns a container status image ID
// ("docker-pullable://registry/repo@sha256:...") into an oci:// material.
func imageMaterial(imageID string) (hints.Artifact, error) {
	uri, digest, ok := strings.Cut(imageID, "@")
	if !ok || strings.Contains(digest, "@") {
		return hints.Artifact{}, fmt.Errorf("image ID %q is not of the form image@algorithm:hex", imageID)
	}
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || strings.Contains(hex, ":") {
		return hints.Artifact{}, fmt.Errorf("image ID %q is not of the form image@algorithm:hex", imageID)
	}
	return hints.Artifact{Name: ociScheme + strings.TrimPrefix(uri, "docker-pullable://"), Digest: map[string]string{alg: hex}}, nil
}

// imageMaterials returns the step images, then the sidecar images, of a
// TaskRun (each list merged within itself, as Chains does).
func imageMaterials(tr *pipelinev1.TaskRun) ([]hints.Artifact, error) {
	var steps, sidecars []hints.Artifact
	for _, s := range tr.Status.Steps {
		m, err := imageMaterial(s.ImageID)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", s.Name, err)
		}
		steps = hints.Append(steps, m)
	}
	for _, s := range tr.Status.Sidecars {
		m, err := imageMaterial(s.ImageID)
		if err != nil {
			return nil, fmt.Errorf("sidecar %q: %w", s.Name, err)
		}
		sidecars = hints.Append(sidecars, m)
	}
	return append(steps, sidecars...), nil
}

// gitURI writes a git URL as an SPDX download location: git+URL.git.
func gitURI(url string) string {
	if !strings.HasPrefix(url, gitScheme) {
		url = gitScheme + url
	}
	if !strings.HasSuffix(url, ".git") {
		url += ".git"
	}
	return url
}

// sourceMaterials returns the git source named by CHAINS-GIT_URL and
// CHAINS-GIT_COMMIT of a TaskRun and the ARTIFACT_INPUTS of its results.
func sourceMaterials(tr *pipelinev1.TaskRun) []hints.Artifact {
	var specs pipelinev1.ParamSpecs
	if ts := tr.Status.TaskSpec; ts != nil {
		specs = ts.Params
	}
	rs := hints.TaskRunResults(tr)
	out := gitSource(specs, tr.Spec.Params, rs)
	inputs, _ := hints.Structured(rs, hints.InputsSuffix)
	return hints.Append(out, inputs...)
}

// gitSource is the git material named by CHAINS-GIT_URL and
// CHAINS-GIT_COMMIT in param defaults, then params, then results (the later
// winning); none unless both are known.
func gitSource(specs pipelinev1.ParamSpecs, params pipelinev1.Params, results []hints.Result) []hints.Artifact {
	var commit, url string
	set := func(name, v string) {
		switch name {
		case GitCommitParam:
			commit = v
		case GitURLParam:
			url = v
		}
	}
	for _, p := range specs {
		if p.Default != nil {
			set(p.Name, p.Default.StringVal)
		}
	}
	for _, p := range params {
		set(p.Name, p.Value.StringVal)
	}
	for _, r := range results {
		set(r.Name, r.Value.StringVal)
	}
	if commit == "" || url == "" {
		return nil
	}
	return []hints.Artifact{{Name: gitURI(url), Digest: map[string]string{"sha1": commit}}}
}

// stepSourceMaterials is sourceMaterials for each step's own results
// (StepActions report their sources there).
func stepSourceMaterials(tr *pipelinev1.TaskRun) []hints.Artifact {
	var out []hints.Artifact
	for _, s := range tr.Status.Steps {
		rs := make([]hints.Result, 0, len(s.Results))
		for _, r := range s.Results {
			rs = append(rs, hints.Result{Name: r.Name, Value: r.Value})
		}
		out = hints.Append(out, gitSource(nil, nil, rs)...)
	}
	inputs, _ := hints.Structured(hints.StepResults(tr), hints.InputsSuffix)
	return hints.Append(out, inputs...)
}

// firstDigest returns "alg:hex" of a digest set, choosing the algorithm
// deterministically (sorted) where Chains takes whichever a map yields first.
func firstDigest(d map[string]string) string {
	algs := make([]string, 0, len(d))
	for a := range d {
		algs = append(algs, a)
	}
	sort.Strings(algs)
	if len(algs) == 0 {
		return ""
	}
	return algs[0] + ":" + d[algs[0]]
}
