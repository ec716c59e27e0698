package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/signer/hints"
	"github.com/tollgate-dev/tollgate/signer/provenance"
	"github.com/tollgate-dev/tollgate/signer/sign"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
)

const (
	// BuildType is the provenance's buildDefinition.buildType: the
	// external parameters are source (git URI and commit), version,
	// platforms and package; the internal ones the Go version, the
	// environment and the build flags of compile.
	BuildType = "https://tollgate.dev/buildtypes/image/v1"
	// DefaultBuilderID is runDetails.builder.id unless -builder-id says
	// otherwise (a release pipeline names itself).
	DefaultBuilderID = "https://tollgate.dev/builders/make-image"
	// SourceURI is the source repository, as SLSA names a git dependency.
	SourceURI = "git+https://github.com/tollgate-dev/tollgate"
)

// SignOptions say how the pushed image is signed and attested.
type SignOptions struct {
	// Key is a cosign private key file (encrypted; Password decrypts it,
	// as COSIGN_PASSWORD does for cosign) or a sigstore KMS reference
	// (gcpkms://, awskms://, azurekms://, hashivault://).
	Key, Password string
	// BuilderID is the provenance's builder id.
	BuilderID string
	// Started is when the build started (the provenance's startedOn).
	Started time.Time
	// Progress, if set, is told each step.
	Progress io.Writer
}

// Sign signs the pushed index and each platform's image as `cosign sign
// --recursive` does, and attests the index twice in cosign's layout: the
// SLSA v1.0 provenance of this build (Tollgate's provenance code) and the
// CycloneDX SBOM. Signatures and attestations go next to the image in its
// repository, with the Docker config's credentials.
func Sign(ctx context.Context, b *Built, o Options, ref name.Digest, so SignOptions) error {
	s, err := loadKey(ctx, so)
	if err != nil {
		return err
	}
	store, err := oci.New("", authn.DefaultKeychain)
	if err != nil {
		return err
	}
	subjects, err := subjectsOf(b, ref)
	if err != nil {
		return err
	}
	for _, d := range subjects {
		progress(so.Progress, "image: signing %s", d)
		payload, err := oci.SimpleSigningPayload(d)
		if err != nil {
			return err
		}
		sig, err := s.Sign(ctx, payload)
		if err != nil {
			return fmt.Errorf("signing %s: %w", d, err)
		}
		if err := store.StoreSignature(ctx, d, payload, sig, oci.Material{}); err != nil {
			return err
		}
	}
	prov, err := provenanceOf(b, o, subjects, so)
	if err != nil {
		return err
	}
	sbom, err := SBOM(o, ref.Context().String(), b.GoVersion, b.Modules)
	if err != nil {
		return err
	}
	sbomStatement, err := statementOf(subjects, PredicateCycloneDX, sbom)
	if err != nil {
		return err
	}
	for _, st := range []struct {
		what      string
		statement []byte
	}{{"SLSA provenance", prov}, {"CycloneDX SBOM", sbomStatement}} {
		progress(so.Progress, "image: attesting %s (%s)", ref, st.what)
		env, err := s.Envelope(ctx, st.statement)
		if err != nil {
			return fmt.Errorf("signing the %s: %w", st.what, err)
		}
		if err := store.StoreAttestation(ctx, ref, env, oci.Material{}); err != nil {
			return err
		}
	}
	return nil
}

// loadKey: a KMS reference, or a cosign key file and its password.
func loadKey(ctx context.Context, so SignOptions) (*sign.Signer, error) {
	if strings.Contains(so.Key, "://") {
		return sign.FromKMS(ctx, so.Key, options.RPCAuth{})
	}
	key, err := os.ReadFile(so.Key)
	if err != nil {
		return nil, fmt.Errorf("-key: %w", err)
	}
	s, err := sign.FromSecret(map[string][]byte{sign.KeyCosignKey: key, sign.KeyCosignPassword: []byte(so.Password)})
	if err != nil {
		return nil, fmt.Errorf("-key %s: %w", so.Key, err)
	}
	return s, nil
}

// subjectsOf: the index first, then each platform's image.
func subjectsOf(b *Built, ref name.Digest) ([]name.Digest, error) {
	m, err := b.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := []name.Digest{ref}
	for _, desc := range m.Manifests {
		out = append(out, ref.Context().Digest(desc.Digest.String()))
	}
	return out, nil
}

// provenanceOf is the build's SLSA v1.0 statement, every image a subject.
func provenanceOf(b *Built, o Options, subjects []name.Digest, so SignOptions) ([]byte, error) {
	builder := so.BuilderID
	if builder == "" {
		builder = DefaultBuilderID
	}
	platforms := make([]any, len(o.Platforms))
	for i, p := range o.Platforms {
		platforms[i] = p
	}
	st, err := provenance.BuildStatement(provenance.Build{
		Subjects:  artifacts(subjects),
		BuildType: BuildType,
		BuilderID: builder,
		External: map[string]any{
			"source":    SourceURI + "@" + o.Commit,
			"version":   o.Version,
			"platforms": platforms,
			"package":   "./cmd/tollgate",
		},
		Internal: map[string]any{
			"goVersion": b.GoVersion,
			"env":       []any{"CGO_ENABLED=0", "GOFLAGS=-mod=readonly"},
			"flags":     []any{"-trimpath", "-buildvcs=false", "-ldflags=" + ldflags(o)},
			"epoch":     o.Epoch.UTC().Format(time.RFC3339),
		},
		Dependencies: []hints.Artifact{
			{Name: SourceURI, Digest: map[string]string{"gitCommit": o.Commit}},
			{Name: "pkg:golang/stdlib@" + b.GoVersion},
		},
		InvocationID: subjects[0].DigestStr(),
		Started:      so.Started,
		Finished:     time.Now(),
	})
	if err != nil {
		return nil, err
	}
	return provenance.Marshal(st)
}

// statementOf wraps a JSON predicate in an in-toto v1 statement.
func statementOf(subjects []name.Digest, predicateType string, predicate []byte) ([]byte, error) {
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(predicate, pred); err != nil {
		return nil, fmt.Errorf("the %s predicate: %w", predicateType, err)
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: predicateType, Predicate: pred}
	for _, a := range artifacts(subjects) {
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{Name: a.Name, Digest: a.Digest})
	}
	return provenance.Marshal(st)
}

func artifacts(ds []name.Digest) []hints.Artifact {
	out := make([]hints.Artifact, len(ds))
	for i, d := range ds {
		alg, hex, _ := strings.Cut(d.DigestStr(), ":")
		out[i] = hints.Artifact{Name: d.Context().String(), Digest: map[string]string{alg: hex}}
	}
	return out
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
