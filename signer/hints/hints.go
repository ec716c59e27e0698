package hints

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Result names and fields of the conventions.
const (
	ImageURLSuffix       = "IMAGE_URL"
	ImageDigestSuffix    = "IMAGE_DIGEST"
	ImagesResult         = "IMAGES"
	ArtifactURISuffix    = "ARTIFACT_URI"
	ArtifactDigestSuffix = "ARTIFACT_DIGEST"
	OutputsSuffix        = "ARTIFACT_OUTPUTS"
	InputsSuffix         = "ARTIFACT_INPUTS"
	isBuildArtifactField = "isBuildArtifact"
)

// Result is one named result of a TaskRun, a PipelineRun or a step.
type Result struct {
	Name  string
	Value pipelinev1.ResultValue
}

// Artifact is something a run produced or consumed: a name and its digests
// (algorithm → lowercase hex).
type Artifact struct {
	Name   string
	Digest map[string]string
}

// Rejected is a result that looked like a hint but could not be used.
type Rejected struct {
	Result string
	Reason string
}

func (r Rejected) String() string { return fmt.Sprintf("result %s: %s", r.Result, r.Reason) }

// Images returns the images named by *IMAGE_URL/*IMAGE_DIGEST pairs and by
// IMAGES, as repository name and sha256 digest, in that order.
func Images(results []Result) ([]Artifact, []Rejected) {
	var out []Artifact
	var rej []Rejected
	for _, p := range pairs(results, ImageURLSuffix, ImageDigestSuffix) {
		if p.uri == "" || p.digest == "" {
			continue // Chains ignores half a pair too; a lone IMAGE_URL is common
		}
		d, err := name.NewDigest(p.uri + "@" + p.digest)
		if err != nil {
			rej = append(rej, Rejected{p.marker + ImageURLSuffix, fmt.Sprintf("%s@%s is not an image reference by digest: %v", p.uri, p.digest, err)})
			continue
		}
		out = append(out, imageArtifact(d))
	}
	for _, r := range results {
		if r.Name != ImagesResult {
			continue
		}
		for _, img := range strings.FieldsFunc(r.Value.StringVal, func(c rune) bool { return c == '\n' || c == ',' }) {
			img = strings.TrimSpace(img)
			if img == "" {
				continue
			}
			d, err := name.NewDigest(img)
			if err != nil {
				rej = append(rej, Rejected{ImagesResult, fmt.Sprintf("%q is not an image reference by digest: %v", img, err)})
				continue
			}
			out = append(out, imageArtifact(d))
		}
	}
	return out, rej
}

func imageArtifact(d name.Digest) Artifact {
	return Artifact{Name: d.Repository.Name(), Digest: map[string]string{"sha256": strings.TrimPrefix(d.DigestStr(), "sha256:")}}
}

// SignableTargets returns the artifacts named by *ARTIFACT_URI/*ARTIFACT_DIGEST pairs.
func SignableTargets(results []Result) ([]Artifact, []Rejected) {
	var out []Artifact
	var rej []Rejected
	for _, p := range pairs(results, ArtifactURISuffix, ArtifactDigestSuffix) {
		if p.uri == "" || p.digest == "" {
			continue
		}
		alg, hex, err := ParseDigest(p.digest)
		if err != nil {
			rej = append(rej, Rejected{p.marker + ArtifactDigestSuffix, err.Error()})
			continue
		}
		out = append(out, Artifact{Name: p.uri, Digest: map[string]string{alg: hex}})
	}
	return out, rej
}

// Structured returns the {uri, digest} objects of results ending in suffix
// (OutputsSuffix or InputsSuffix).
func Structured(results []Result, suffix string) ([]Artifact, []Rejected) {
	return structured(results, suffix, false)
}

// BuildArtifacts returns the *ARTIFACT_OUTPUTS objects marked isBuildArtifact: "true".
func BuildArtifacts(results []Result) ([]Artifact, []Rejected) {
	return structured(results, OutputsSuffix, true)
}

func structured(results []Result, suffix string, buildOnly bool) ([]Artifact, []Rejected) {
	var out []Artifact
	var rej []Rejected
	for _, r := range results {
		if !strings.HasSuffix(r.Name, suffix) {
			continue
		}
		obj := r.Value.ObjectVal
		if r.Value.Type != pipelinev1.ParamTypeObject || obj == nil {
			rej = append(rej, Rejected{r.Name, "should be an object with uri and digest"})
			continue
		}
		if buildOnly && obj[isBuildArtifactField] != "true" {
			continue
		}
		if obj["uri"] == "" || obj["digest"] == "" {
			rej = append(rej, Rejected{r.Name, "should have uri and digest fields"})
			continue
		}
		alg, hex, err := ParseDigest(obj["digest"])
		if err != nil {
			rej = append(rej, Rejected{r.Name, err.Error()})
			continue
		}
		out = append(out, Artifact{Name: obj["uri"], Digest: map[string]string{alg: hex}})
	}
	return out, rej
}

type pair struct {
	marker, uri, digest string
}

// pairs groups results by the prefix before uriSuffix/digestSuffix, sorted by prefix.
func pairs(results []Result, uriSuffix, digestSuffix string) []pair {
	byMarker := map[string]*pair{}
	for _, r := range results {
		for _, suffix := range []string{uriSuffix, digestSuffix} {
			if !strings.HasSuffix(r.Name, suffix) {
				continue
			}
			v := strings.TrimSpace(r.Value.StringVal)
			if v == "" {
				continue
			}
			m := strings.TrimSuffix(r.Name, suffix)
			p := byMarker[m]
			if p == nil {
				p = &pair{marker: m}
				byMarker[m] = p
			}
			if suffix == uriSuffix {
				p.uri = v
			} else {
				p.digest = v
			}
		}
	}
	out := make([]pair, 0, len(byMarker))
	for _, p := range byMarker {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].marker < out[j].marker })
	return out
}

var (
	sha1Hex   = regexp.MustCompile(`^[a-f0-9]{40}$`)
	hexDigest = map[string]*regexp.Regexp{
		"sha256": regexp.MustCompile(`^[a-f0-9]{64}$`),
		"sha384": regexp.MustCompile(`^[a-f0-9]{96}$`),
		"sha512": regexp.MustCompile(`^[a-f0-9]{128}$`),
	}
)

// ParseDigest splits "algorithm:hex" and validates it: sha256, sha384,
// sha512 or sha1, lowercase hex of the right length.
func ParseDigest(d string) (alg, hex string, err error) {
	parts := strings.Split(d, ":")
	if len(parts) != 2 {
		return "", "", fmt.Errorf("digest %q is not in the form algorithm:hex", d)
	}
	alg = strings.ToLower(strings.TrimSpace(parts[0]))
	hex = strings.TrimSpace(parts[1])
	if re, ok := hexDigest[alg]; ok {
		if !re.MatchString(hex) {
			return "", "", fmt.Errorf("digest %q: not %d lowercase hex characters", d, len(re.String())-8)
		}
		return alg, hex, nil
	}
	if alg == "sha1" {
		if !sha1Hex.MatchString(hex) {
			return "", "", fmt.Errorf("digest %q: not 40 lowercase hex characters", d)
		}
		return alg, hex, nil
	}
	return "", "", fmt.Errorf("digest %q: unsupported algorithm %q (sha256, sha384, sha512, sha1)", d, alg)
}

// Append adds items to a list of artifacts the way Chains merges subjects:
// an item with the name of an existing artifact and one digest in common
// merges its digests into it; anything else is appended.
func Append(list []Artifact, items ...Artifact) []Artifact {
	for _, it := range items {
		merged := false
		for i := range list {
			if list[i].Name == it.Name && shareDigest(list[i].Digest, it.Digest) {
				for k, v := range it.Digest {
					list[i].Digest[k] = v
				}
				merged = true
				break
			}
		}
		if !merged {
			d := make(map[string]string, len(it.Digest))
			for k, v := range it.Digest {
				d[k] = v
			}
			list = append(list, Artifact{Name: it.Name, Digest: d})
		}
	}
	return list
}

func shareDigest(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] == v {
			return true
		}
	}
	return false
}

// TaskRunResults returns a TaskRun's results.
func TaskRunResults(tr *pipelinev1.TaskRun) []Result {
	out := make([]Result, 0, len(tr.Status.Results))
	for _, r := range tr.Status.Results {
		out = append(out, Result{Name: r.Name, Value: r.Value})
	}
	return out
}

// StepResults returns the results every step of a TaskRun reported.
func StepResults(tr *pipelinev1.TaskRun) []Result {
	var out []Result
	for _, s := range tr.Status.Steps {
		for _, r := range s.Results {
			out = append(out, Result{Name: r.Name, Value: r.Value})
		}
	}
	return out
}

// PipelineRunResults returns a PipelineRun's results.
func PipelineRunResults(pr *pipelinev1.PipelineRun) []Result {
	out := make([]Result, 0, len(pr.Status.Results))
	for _, r := range pr.Status.Results {
		out = append(out, Result{Name: r.Name, Value: r.Value})
	}
	return out
}
