package runs

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/rego"
)

func BenchmarkRegoInput(b *testing.B) {
	var steps []string
	for i := 0; i < 15; i++ {
		steps = append(steps, fmt.Sprintf(`{"name":"step-%d","image":"registry.example/tool@sha256:%064d","script":"make build","securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}},"computeResources":{"limits":{"cpu":"1","memory":"1Gi"}}}`, i, i))
	}
	raw := []byte(`{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"x"},"spec":{"pipelineSpec":{"tasks":[{"name":"t","taskSpec":{"steps":[` + join(steps) + `]}}]}}}`)
	in := &Input{Kind: KindPipelineRun, Namespace: "ns", Name: "x"}
	b.Run("unmarshal", func(b *testing.B) {
		for range b.N {
			var v any
			json.Unmarshal(raw, &v)
		}
	})
	b.Run("regoInput", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := regoInput(in, RegoRequest{Object: raw}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("valueFromReader", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var v any
			json.Unmarshal(raw, &v)
			rego.Input(v)
		}
	})
	b.Logf("%d bytes", len(raw))
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
