package provenance

import (
	"encoding/json"
	"strings"
	"testing"

	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/signer/hints"
)

// A run the run guard admitted carries its stamp into every format, with the
// digest of the spec Tekton resolved; the rest of the statement is Chains'.
func TestStatementsRecordTheSpecDigests(t *testing.T) {
	stamp := "sha256:" + strings.Repeat("ab", 32)
	tr := readTaskRun(t, "slsa-v2alpha4/taskrun1.json")
	tr.Annotations = map[string]string{specdigest.Annotation: stamp}
	resolved, _ := json.Marshal(tr.Status.TaskSpec)
	wantResolved, err := specdigest.OfSpec(resolved)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name  string
		build func() (*intoto.Statement, error)
		path  []string
	}{
		{"slsa/v2alpha4", func() (*intoto.Statement, error) { return TaskRunV2Alpha4(tr, Options{BuilderID: "b"}) }, []string{"buildDefinition", "internalParameters", TollgateKey}},
		{"slsa/v2alpha3", func() (*intoto.Statement, error) { return TaskRunV2Alpha3(tr, Options{BuilderID: "b"}) }, []string{"buildDefinition", "internalParameters", TollgateKey}},
		{"slsa/v1", func() (*intoto.Statement, error) { return TaskRunSLSAv02(tr, Options{BuilderID: "b"}) }, []string{"invocation", "environment", TollgateKey}},
	} {
		t.Run(f.name, func(t *testing.T) {
			st, err := f.build()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := protojson.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			node := v["predicate"]
			for _, k := range f.path {
				m, ok := node.(map[string]any)
				if !ok {
					t.Fatalf("no %s in %s", k, raw)
				}
				node = m[k]
			}
			rec, _ := node.(map[string]any)
			if rec["specDigest"] != stamp || rec["resolvedSpecDigest"] != wantResolved {
				t.Errorf("tollgate record = %v, want specDigest %s and resolvedSpecDigest %s", node, stamp, wantResolved)
			}
		})
	}
}

// recordOf returns the Tollgate record of an SLSA v1.0 statement.
func recordOf(t *testing.T, st *intoto.Statement) Record {
	t.Helper()
	raw, err := protojson.Marshal(st.GetPredicate().GetFields()["buildDefinition"].GetStructValue().GetFields()["internalParameters"].GetStructValue().GetFields()[TollgateKey])
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Which task produced each subject is signed with the rest: an inline task
// is recorded as inline (never a trusted producer), a remote one by its
// reference and the digest Tekton resolved.
func TestRecordNamesTheProducingTask(t *testing.T) {
	const image = "gcr.io/my/image@sha256:d31cc8328054de2bd93735f9cbf0ccfb6e0ee8f4c4225da7d8f8cb3900eaf466"
	stamp := "sha256:" + strings.Repeat("ab", 32)
	t.Run("a TaskRun of a bundle task", func(t *testing.T) {
		tr := readTaskRun(t, "slsa-v2alpha4/taskrun1.json")
		tr.Annotations = map[string]string{specdigest.Annotation: stamp}
		tr.Spec.TaskRef = &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "bundles", Params: pipelinev1.Params{
			{Name: "bundle", Value: *pipelinev1.NewStructuredValues("registry.example.com/tasks/build:1@sha256:" + strings.Repeat("c", 64))},
			{Name: "name", Value: *pipelinev1.NewStructuredValues("build")},
			{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")},
		}}}
		st, err := TaskRunV2Alpha4(tr, Options{BuilderID: "b"})
		if err != nil {
			t.Fatal(err)
		}
		rec := recordOf(t, st)
		if rec.Namespace != tr.Namespace || rec.Run != "TaskRun/"+tr.Name {
			t.Errorf("record names %s %s, want %s TaskRun/%s", rec.Namespace, rec.Run, tr.Namespace, tr.Name)
		}
		var got *Producer
		for i := range rec.Producers {
			if rec.Producers[i].Subject == image {
				got = &rec.Producers[i]
			}
		}
		if got == nil || len(got.Tasks) != 1 || got.Tasks[0].Inline || got.Tasks[0].Ref != "oci://registry.example.com/tasks/build:1@sha256:"+strings.Repeat("c", 64) || got.Tasks[0].Name != "build" {
			t.Fatalf("producer of %s = %+v, want the bundle task (producers %+v)", image, got, rec.Producers)
		}
	})
	t.Run("an inline TaskRun", func(t *testing.T) {
		tr := readTaskRun(t, "slsa-v2alpha4/taskrun1.json")
		tr.Annotations = map[string]string{specdigest.Annotation: stamp}
		tr.Spec.TaskRef, tr.Spec.TaskSpec = nil, &pipelinev1.TaskSpec{}
		st, err := TaskRunV2Alpha4(tr, Options{BuilderID: "b"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range recordOf(t, st).Producers {
			if len(p.Tasks) != 1 || !p.Tasks[0].Inline || p.Tasks[0].Ref != "" {
				t.Errorf("producer %+v, want inline", p)
			}
		}
	})
	t.Run("a Task object in the run's namespace", func(t *testing.T) {
		tr := readTaskRun(t, "slsa-v2alpha4/taskrun1.json")
		if ref, _ := TaskRefString("team-a", tr.Spec.TaskRef); ref != "task://team-a/build" {
			t.Errorf("ref %q", ref)
		}
	})
}

func TestBuildStatement(t *testing.T) {
	b := Build{Subjects: []hints.Artifact{{Name: "reg/tollgate", Digest: map[string]string{"sha256": "ab"}}}, BuildType: "bt", BuilderID: "id",
		External: map[string]any{"version": "v1"}, Dependencies: []hints.Artifact{{Name: "git+https://x", Digest: map[string]string{"gitCommit": "c"}}}}
	st, err := BuildStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"predicateType":"https://slsa.dev/provenance/v1"`, `"buildType":"bt"`, `"id":"id"`, `"uri":"git+https://x"`, `"name":"reg/tollgate"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %s in %s", want, out)
		}
	}
	for _, bad := range []Build{{BuildType: "bt", BuilderID: "id"}, {Subjects: b.Subjects, BuilderID: "id"}, {Subjects: b.Subjects, BuildType: "bt"}} {
		if _, err := BuildStatement(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
