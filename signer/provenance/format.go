package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/signer/config"

	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Formats lists the formats accepted (chains-config's names, in package
// config).
var Formats = []string{config.FormatInToto, config.FormatSLSAv1, config.FormatSLSAv2alpha3, config.FormatSLSAv2alpha4}

func unknownFormat(f string) error {
	return fmt.Errorf("unknown provenance format %q (want one of %s)", f, strings.Join(Formats, ", "))
}

// TaskRunStatement returns the statement of a finished TaskRun in a format.
func TaskRunStatement(format string, tr *pipelinev1.TaskRun, opts Options) (*intoto.Statement, error) {
	switch format {
	case config.FormatInToto, config.FormatSLSAv1:
		return TaskRunSLSAv02(tr, opts)
	case config.FormatSLSAv2alpha3:
		return TaskRunV2Alpha3(tr, opts)
	case config.FormatSLSAv2alpha4:
		return TaskRunV2Alpha4(tr, opts)
	}
	return nil, unknownFormat(format)
}

// PipelineRunStatement returns the statement of a finished PipelineRun in a
// format; deep adds what its child TaskRuns built (enable-deep-inspection).
func PipelineRunStatement(format string, p *PipelineRun, opts Options, deep bool) (*intoto.Statement, error) {
	switch format {
	case config.FormatInToto, config.FormatSLSAv1:
		return PipelineRunSLSAv02(p, opts, deep)
	case config.FormatSLSAv2alpha3:
		return PipelineRunV2Alpha3(p, opts, deep)
	case config.FormatSLSAv2alpha4:
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
