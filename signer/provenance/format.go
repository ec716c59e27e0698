package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Formats, as chains-config names them.
const (
	FormatInToto   = "in-toto"
	FormatSLSAv1   = "slsa/v1"
	FormatV2Alpha3 = "slsa/v2alpha3"
	FormatV2Alpha4 = "slsa/v2alpha4"
)

// Formats lists the formats accepted.
var Formats = []string{FormatInToto, FormatSLSAv1, FormatV2Alpha3, FormatV2Alpha4}

func unknownFormat(f string) error {
	return fmt.Errorf("unknown provenance format %q (want one of %s)", f, strings.Join(Formats, ", "))
}

// TaskRunStatement returns the statement of a finished TaskRun in a format.
func TaskRunStatement(format string, tr *pipelinev1.TaskRun, opts Options) (*intoto.Statement, error) {
	switch format {
	case FormatInToto, FormatSLSAv1:
		return TaskRunSLSAv02(tr, opts)
	case FormatV2Alpha3:
		return TaskRunV2Alpha3(tr, opts)
	case FormatV2Alpha4:
		return TaskRunV2Alpha4(tr, opts)
	}
	return nil, unknownFormat(format)
}

// PipelineRunStatement returns the statement of a finished PipelineRun in a
// format; deep adds what its child TaskRuns built (enable-deep-inspection).
func PipelineRunStatement(format string, p *PipelineRun, opts Options, deep bool) (*intoto.Statement, error) {
	switch format {
	case FormatInToto, FormatSLSAv1:
		return PipelineRunSLSAv02(p, opts, deep)
	case FormatV2Alpha3:
		return PipelineRunV2Alpha3(p, opts, deep)
	case FormatV2Alpha4:
		return PipelineRunV2Alpha4(p, opts, deep)
	}
	return nil, unknownFormat(format)
}

// Marshal writes a statement as Chains' signer does (protojson), so the
// field names are the in-toto ones (_type, predicateType), compacted:
// protojson deliberately varies its spacing between builds, and the same
// statement must be the same bytes whichever signer binary writes it.
func Marshal(st *intoto.Statement) ([]byte, error) {
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
