package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/signer/config"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	slsapredicate "github.com/tollgate-dev/tollgate/policy/slsa"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/signer/hints"
)

// Names Chains gives resolved dependencies and byproducts.
const (
	depTask        = "task"
	depPipeline    = "pipeline"
	depInputResult = "inputs/result"
)

// Options configure a formatter.
type Options struct {
	// BuilderID is runDetails.builder.id (chains-config builder.id).
	BuilderID string
	// BuildType is buildDefinition.buildType (chains-config builddefinition.buildtype).
	BuildType string
}

// variant is what distinguishes Chains' two SLSA v1.0 formats.
type variant struct {
	// alpha4: subjects are build artifacts and images (v2alpha3: every
	// type hint, as SLSA v0.2 does); byproducts leave out what became a
	// subject; steps' own results (StepActions) count as sources and
	// byproducts; deep inspection adds the tasks' byproducts.
	alpha4 bool
}

var (
	v2alpha3 = variant{}
	v2alpha4 = variant{alpha4: true}
)

// TaskRunV2Alpha4 returns the SLSA v1.0 statement Chains' slsa/v2alpha4
// format produces for a finished TaskRun.
func TaskRunV2Alpha4(tr *pipelinev1.TaskRun, opts Options) (*intoto.Statement, error) {
	return taskRunV1(tr, opts, v2alpha4)
}

// TaskRunV2Alpha3 returns the SLSA v1.0 statement Chains' slsa/v2alpha3
// format produces for a finished TaskRun.
func TaskRunV2Alpha3(tr *pipelinev1.TaskRun, opts Options) (*intoto.Statement, error) {
	return taskRunV1(tr, opts, v2alpha3)
}

func taskRunV1(tr *pipelinev1.TaskRun, opts Options, v variant) (*intoto.Statement, error) {
	buildType := opts.BuildType
	if buildType == "" {
		buildType = config.BuildTypeSLSA
	}
	subjects := v.taskRunSubjects(tr)
	deps, err := taskRunDependencies(tr, v)
	if err != nil {
		return nil, err
	}
	spec, err := runSpec(tr.Spec)
	if err != nil {
		return nil, err
	}
	external := map[string]any{"runSpec": spec}
	if src := remoteSource(tr); src != nil {
		external["buildConfigSource"] = src
	}
	internal, err := internalParameters(tr.Status.Provenance, tr.Labels, tr.Annotations, buildType)
	if err != nil {
		return nil, err
	}
	rec, err := taskRunRecord(tr, artifactsOf(subjects))
	if err != nil {
		return nil, err
	}
	addTollgate(internal, rec)
	byproducts, err := v.taskRunByproducts(tr)
	if err != nil {
		return nil, err
	}
	return statementV1(subjects, &slsa.BuildDefinition{BuildType: buildType, ResolvedDependencies: deps}, external, internal,
		&slsa.RunDetails{
			Builder:    &slsa.Builder{Id: opts.BuilderID},
			Metadata:   buildMetadata(string(tr.UID), tr.Status.StartTime, tr.Status.CompletionTime),
			Byproducts: byproducts,
		})
}

// addTollgate records Tollgate's record, if any, in a parameters map.
func addTollgate(params map[string]any, rec *Record) {
	if rec != nil {
		params[TollgateKey] = rec
	}
}

func artifactsOf(ds []*intoto.ResourceDescriptor) []hints.Artifact {
	out := make([]hints.Artifact, 0, len(ds))
	for _, d := range ds {
		out = append(out, hints.Artifact{Name: d.Name, Digest: d.Digest})
	}
	return out
}

// statementV1 assembles an in-toto v1 statement with an SLSA v1.0 predicate.
func statementV1(subjects []*intoto.ResourceDescriptor, bd *slsa.BuildDefinition, external, internal map[string]any, rd *slsa.RunDetails) (*intoto.Statement, error) {
	var err error
	if bd.ExternalParameters, err = toStruct(external); err != nil {
		return nil, fmt.Errorf("encoding externalParameters: %w", err)
	}
	if bd.InternalParameters, err = toStruct(internal); err != nil {
		return nil, fmt.Errorf("encoding internalParameters: %w", err)
	}
	pred := &slsa.Provenance{BuildDefinition: bd, RunDetails: rd}
	predJSON, err := protojson.Marshal(pred)
	if err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	predStruct := &structpb.Struct{}
	if err := protojson.Unmarshal(predJSON, predStruct); err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	return &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       subjects,
		PredicateType: slsapredicate.PredicateV1,
		Predicate:     predStruct,
	}, nil
}

// taskRunSubjects: v2alpha4 takes build artifacts and images of each
// step's results, then of the TaskRun's; v2alpha3 takes every type hint of
// the TaskRun's results.
func (v variant) taskRunSubjects(tr *pipelinev1.TaskRun) []*intoto.ResourceDescriptor {
	if !v.alpha4 {
		return subjectDescriptors(hintSubjects(hints.TaskRunResults(tr)))
	}
	var all []hints.Artifact
	for _, s := range tr.Status.Steps {
		rs := make([]hints.Result, 0, len(s.Results))
		for _, r := range s.Results {
			rs = append(rs, hints.Result{Name: r.Name, Value: r.Value})
		}
		all = hints.Append(all, buildSubjects(rs)...)
	}
	all = hints.Append(all, buildSubjects(hints.TaskRunResults(tr))...)
	return subjectDescriptors(all)
}

// buildSubjects: build artifacts, then images.
func buildSubjects(rs []hints.Result) []hints.Artifact {
	ba, _ := hints.BuildArtifacts(rs)
	im, _ := hints.Images(rs)
	return hints.Append(hints.Append(nil, ba...), im...)
}

// hintSubjects: images, ARTIFACT_URI/DIGEST pairs, ARTIFACT_OUTPUTS.
func hintSubjects(rs []hints.Result) []hints.Artifact {
	im, _ := hints.Images(rs)
	st, _ := hints.SignableTargets(rs)
	so, _ := hints.Structured(rs, hints.OutputsSuffix)
	return hints.Append(hints.Append(hints.Append(nil, im...), st...), so...)
}

// subjectDescriptors: a subject names its artifact in name.
func subjectDescriptors(as []hints.Artifact) []*intoto.ResourceDescriptor {
	out := make([]*intoto.ResourceDescriptor, 0, len(as))
	for _, a := range as {
		out = append(out, &intoto.ResourceDescriptor{Name: a.Name, Digest: a.Digest})
	}
	return out
}

// depDescriptors: a dependency names its artifact in uri, and carries a
// fixed name (or none).
func depDescriptors(as []hints.Artifact, name string) []*intoto.ResourceDescriptor {
	out := make([]*intoto.ResourceDescriptor, 0, len(as))
	for _, a := range as {
		out = append(out, &intoto.ResourceDescriptor{Name: name, Uri: a.Name, Digest: a.Digest})
	}
	return out
}

// taskRunDependencies: the remote Task source, step and sidecar images,
// sources reported by steps, sources of the TaskRun; duplicates removed.
func taskRunDependencies(tr *pipelinev1.TaskRun, v variant) ([]*intoto.ResourceDescriptor, error) {
	var deps []*intoto.ResourceDescriptor
	if p := tr.Status.Provenance; p != nil && p.RefSource != nil {
		deps = append(deps, &intoto.ResourceDescriptor{Name: depTask, Uri: p.RefSource.URI, Digest: p.RefSource.Digest})
	}
	imgs, err := imageMaterials(tr)
	if err != nil {
		return nil, err
	}
	deps = append(deps, depDescriptors(imgs, "")...)
	if v.alpha4 {
		deps = append(deps, depDescriptors(stepSourceMaterials(tr), depInputResult)...)
	}
	deps = append(deps, depDescriptors(sourceMaterials(tr), depInputResult)...)
	return dedupe(deps)
}

// dedupe drops a dependency equal (uri, digest, content) to an earlier one,
// except the run's own task or pipeline source.
func dedupe(deps []*intoto.ResourceDescriptor) ([]*intoto.ResourceDescriptor, error) {
	out := make([]*intoto.ResourceDescriptor, 0, len(deps))
	seen := map[string]bool{}
	for _, d := range deps {
		key, err := protojson.Marshal(&intoto.ResourceDescriptor{Uri: d.Uri, Digest: d.Digest, Content: d.Content})
		if err != nil {
			return nil, err
		}
		k := string(key)
		if seen[k] && d.Name != depTask && d.Name != depPipeline {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return out, nil
}

// remoteSource is externalParameters.buildConfigSource for a run whose Task
// (or Pipeline) was resolved remotely.
func remoteSource(tr *pipelinev1.TaskRun) map[string]string {
	p := tr.Status.Provenance
	if p == nil || p.RefSource == nil || tr.Spec.TaskRef == nil || tr.Spec.TaskRef.Resolver == "" || tr.Spec.TaskRef.Resolver == "Cluster" {
		return nil
	}
	return map[string]string{"ref": firstDigest(p.RefSource.Digest), "repository": p.RefSource.URI, "path": p.RefSource.EntryPoint}
}

func internalParameters(p *pipelinev1.Provenance, labels, annotations map[string]string, buildType string) (map[string]any, error) {
	out := map[string]any{}
	if p != nil && p.FeatureFlags != nil {
		ff, err := recordedFeatureFlags(p.FeatureFlags)
		if err != nil {
			return nil, err
		}
		out["tekton-pipelines-feature-flags"] = ff
	}
	switch buildType {
	case config.BuildTypeSLSA:
	case config.BuildTypeSLSATekton:
		out["labels"] = labels
		out["annotations"] = annotations
	default:
		return nil, fmt.Errorf("unsupported build type %q", buildType)
	}
	return out, nil
}

// taskRunByproducts: v2alpha4 takes every result that is neither a build
// artifact nor an image hint, TaskRun results first, then step results;
// v2alpha3 every TaskRun result.
func (v variant) taskRunByproducts(tr *pipelinev1.TaskRun) ([]*intoto.ResourceDescriptor, error) {
	var out []*intoto.ResourceDescriptor
	add := func(rs []hints.Result, prefix string) error {
		for _, r := range rs {
			if v.alpha4 && (isBuildArtifact(r) || isImageHint(r.Name)) {
				continue
			}
			content, err := json.Marshal(r.Value)
			if err != nil {
				return fmt.Errorf("encoding result %s: %w", r.Name, err)
			}
			out = append(out, &intoto.ResourceDescriptor{Name: prefix + r.Name, Content: content, MediaType: "application/json"})
		}
		return nil
	}
	if err := add(hints.TaskRunResults(tr), "taskRunResults/"); err != nil {
		return nil, err
	}
	if v.alpha4 {
		if err := add(hints.StepResults(tr), "stepResults/"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isBuildArtifact(r hints.Result) bool {
	if !strings.HasSuffix(r.Name, hints.OutputsSuffix) {
		return false
	}
	// A malformed *ARTIFACT_OUTPUTS is neither a subject nor a byproduct (Chains).
	ba, rej := hints.BuildArtifacts([]hints.Result{r})
	return len(ba) > 0 || len(rej) > 0
}

func isImageHint(name string) bool {
	return strings.HasSuffix(name, hints.ImageURLSuffix) || strings.HasSuffix(name, hints.ImageDigestSuffix) || name == hints.ImagesResult
}

func buildMetadata(uid string, start, end *metav1.Time) *slsa.BuildMetadata {
	m := &slsa.BuildMetadata{InvocationId: uid}
	if start != nil {
		m.StartedOn = timestamppb.New(start.UTC())
	}
	if end != nil {
		m.FinishedOn = timestamppb.New(end.UTC())
	}
	return m
}

// runSpec encodes a run's spec as Chains does. Chains' Go types (an older
// apimachinery) encode a workspace's volumeClaimTemplate with
// "metadata": {"creationTimestamp": null} and "status": {}, which this
// apimachinery omits; a digest over runSpec must see the same bytes.
func runSpec(spec any) (map[string]any, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the run's spec: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding the run's spec: %w", err)
	}
	ws, _ := out["workspaces"].([]any)
	for _, w := range ws {
		vct, _ := w.(map[string]any)["volumeClaimTemplate"].(map[string]any)
		if vct == nil {
			continue
		}
		meta, _ := vct["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			vct["metadata"] = meta
		}
		if _, ok := meta["creationTimestamp"]; !ok {
			meta["creationTimestamp"] = nil
		}
		if _, ok := vct["status"]; !ok {
			vct["status"] = map[string]any{}
		}
	}
	return out, nil
}

// toStruct encodes a value as a protobuf Struct through JSON.
func toStruct(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}
