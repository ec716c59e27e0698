package tekton

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestAnnotations(t *testing.T) {
	key := Key("TaskRun", "1234")
	if key != "taskrun-1234" {
		t.Fatalf("key = %s", key)
	}
	got, err := Annotations(key, []byte(`{"_type":"x"}`), []byte("sig"), nil, nil, map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if v := got["chains.tekton.dev/payload-taskrun-1234"]; v != base64.StdEncoding.EncodeToString([]byte(`{"_type":"x"}`)) {
		t.Errorf("payload annotation = %q", v)
	}
	if v := got["chains.tekton.dev/signature-taskrun-1234"]; v != base64.StdEncoding.EncodeToString([]byte("sig")) {
		t.Errorf("signature annotation = %q", v)
	}
	for _, k := range []string{"chains.tekton.dev/cert-taskrun-1234", "chains.tekton.dev/chain-taskrun-1234"} {
		if v, ok := got[k]; !ok || v != "" {
			t.Errorf("%s = %q, %v (Chains writes it empty for a key signer)", k, v, ok)
		}
	}
	_, err = Annotations(key, []byte(strings.Repeat("x", 200<<10)), []byte("sig"), nil, nil, map[string]string{"big": strings.Repeat("y", 100<<10)})
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("an oversized payload: err = %v", err)
	}
}
