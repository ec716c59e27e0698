package provenance

import (
	"encoding/json"
	"strings"
	"testing"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
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
