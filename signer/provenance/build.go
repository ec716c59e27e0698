package provenance

import (
	"errors"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tollgate-dev/tollgate/signer/hints"
)

// Build describes a build that is not a Tekton run — Tollgate's own image,
// built by `make image` — in the terms of SLSA v1.0.
type Build struct {
	// Subjects are what the build produced (name and digest).
	Subjects []hints.Artifact
	// BuildType is buildDefinition.buildType: the URI that says how to
	// read the parameters.
	BuildType string
	// BuilderID is runDetails.builder.id: who ran the build.
	BuilderID string
	// External are the parameters a user chose (source, version, platforms);
	// Internal are the builder's own (toolchain, flags).
	External, Internal map[string]any
	// Dependencies are the resolved inputs (the source commit, the
	// toolchain); Name is their URI.
	Dependencies []hints.Artifact
	// InvocationID, Started and Finished are runDetails.metadata.
	InvocationID      string
	Started, Finished time.Time
}

// BuildStatement returns the SLSA v1.0 statement of a build, assembled by
// the same code as a run's (statementV1).
func BuildStatement(b Build) (*intoto.Statement, error) {
	if len(b.Subjects) == 0 {
		return nil, errors.New("a build statement needs at least one subject")
	}
	if b.BuildType == "" || b.BuilderID == "" {
		return nil, errors.New("a build statement needs a buildType and a builder id")
	}
	external, internal := b.External, b.Internal
	if external == nil {
		external = map[string]any{}
	}
	if internal == nil {
		internal = map[string]any{}
	}
	md := &slsa.BuildMetadata{InvocationId: b.InvocationID}
	if !b.Started.IsZero() {
		md.StartedOn = timestamppb.New(b.Started.UTC())
	}
	if !b.Finished.IsZero() {
		md.FinishedOn = timestamppb.New(b.Finished.UTC())
	}
	bd := &slsa.BuildDefinition{BuildType: b.BuildType, ResolvedDependencies: depDescriptors(b.Dependencies, "")}
	rd := &slsa.RunDetails{Builder: &slsa.Builder{Id: b.BuilderID}, Metadata: md}
	return statementV1(subjectDescriptors(b.Subjects), bd, external, internal, rd)
}
