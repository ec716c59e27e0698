package runs

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A live run is decided again as its author wrote it: what the server,
// Tekton and the signer added is gone, the author's labels, annotations
// and spec are kept byte for byte in meaning.
func TestAuthored(t *testing.T) {
	live := []byte(`{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"build","namespace":"team-a","uid":"1234",
"resourceVersion":"7","finalizers":["tollgate.dev/signer"],"managedFields":[{"manager":"kubectl"}],
"labels":{"app":"web","tekton.dev/task":"build"},
"annotations":{"team":"a","tollgate.dev/spec-digest":"sha256:00","tollgate.dev/spec-mac":"k:00","chains.tekton.dev/signed":"true",
"chains.tekton.dev/transparency-upload":"true"}},
"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[{"name":"s","image":"x","script":"make"}]}},
"status":{"conditions":[{"type":"Succeeded","status":"True"}]}}`)
	got, err := Authored(live)
	if err != nil {
		t.Fatal(err)
	}
	var g, want any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal([]byte(`{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"build","namespace":"team-a",
"labels":{"app":"web","tekton.dev/task":"build"},"annotations":{"team":"a","chains.tekton.dev/transparency-upload":"true"}},
"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[{"name":"s","image":"x","script":"make"}]}}}`), &want)
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// Field names are case-sensitive, as the API server reads them: a
	// "Spec" is not the spec.
	if out, err := Authored([]byte(`{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"x"},"Spec":{"a":1}}`)); err != nil || string(out) != `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"x"}}` {
		t.Errorf("Authored = %s, %v", out, err)
	}
	if _, err := Authored([]byte(`{"metadata":`)); err == nil {
		t.Error("a truncated run was read")
	}
}
