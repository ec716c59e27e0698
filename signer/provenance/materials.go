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
// CHAINS-GIT_COMMIT (Task param defaults, then run params, then results, the
// later winning) and the ARTIFACT_INPUTS of the TaskRun's results.
func sourceMaterials(tr *pipelinev1.TaskRun) []hints.Artifact {
	var commit, url string
	if ts := tr.Status.TaskSpec; ts != nil {
		for _, p := range ts.Params {
			if p.Default == nil {
				continue
			}
			switch p.Name {
			case GitCommitParam:
				commit = p.Default.StringVal
			case GitURLParam:
				url = p.Default.StringVal
			}
		}
	}
	for _, p := range tr.Spec.Params {
		switch p.Name {
		case GitCommitParam:
			commit = p.Value.StringVal
		case GitURLParam:
			url = p.Value.StringVal
		}
	}
	for _, r := range tr.Status.Results {
		switch r.Name {
		case GitCommitParam:
			commit = r.Value.StringVal
		case GitURLParam:
			url = r.Value.StringVal
		}
	}
	var out []hints.Artifact
	if commit != "" && url != "" {
		out = hints.Append(out, hints.Artifact{Name: gitURI(url), Digest: map[string]string{"sha1": commit}})
	}
	inputs, _ := hints.Structured(taskRunResults(tr), hints.InputsSuffix)
	return hints.Append(out, inputs...)
}

// stepSourceMaterials is sourceMaterials for each step's own results
// (StepActions report their sources there).
func stepSourceMaterials(tr *pipelinev1.TaskRun) []hints.Artifact {
	var out []hints.Artifact
	for _, s := range tr.Status.Steps {
		var commit, url string
		for _, r := range s.Results {
			switch r.Name {
			case GitCommitParam:
				commit = r.Value.StringVal
			case GitURLParam:
				url = r.Value.StringVal
			}
		}
		if commit != "" && url != "" {
			out = hints.Append(out, hints.Artifact{Name: gitURI(url), Digest: map[string]string{"sha1": commit}})
		}
	}
	inputs, _ := hints.Structured(stepResults(tr), hints.InputsSuffix)
	return hints.Append(out, inputs...)
}

func taskRunResults(tr *pipelinev1.TaskRun) []hints.Result {
	out := make([]hints.Result, 0, len(tr.Status.Results))
	for _, r := range tr.Status.Results {
		out = append(out, hints.Result{Name: r.Name, Value: r.Value})
	}
	return out
}

func stepResults(tr *pipelinev1.TaskRun) []hints.Result {
	var out []hints.Result
	for _, s := range tr.Status.Steps {
		for _, r := range s.Results {
			out = append(out, hints.Result{Name: r.Name, Value: r.Value})
		}
	}
	return out
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
