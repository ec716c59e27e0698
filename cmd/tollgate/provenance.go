package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/spf13/cobra"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/signer/config"
	"github.com/tollgate-dev/tollgate/signer/provenance"
)

// newProvenanceCmd is the command's help, flags and the few lines that
// read the run and print its statement; most of its length is the help.
func newProvenanceCmd() *cobra.Command {
	var (
		format     string
		configFile string
		sets       []string
		compact    bool
	)
	cmd := &cobra.Command{
		Use:   "provenance FILE",
		Short: "Print the in-toto statement the signer would produce for a finished run",
		Long: `Print the in-toto statement (SLSA provenance) for a finished TaskRun or
PipelineRun given as YAML or JSON, offline, with the code the signer uses.

FILE holds the run; for a PipelineRun, its child TaskRuns may follow in the
same file (they are matched by their tekton.dev/pipelineTask label), which
deep inspection (artifacts.pipelinerun.enable-deep-inspection) and the task
materials need.

The format and the builder come from Tekton Chains' configuration keys:
--config reads a chains-config ConfigMap (or a YAML map of its keys), --set
key=value sets one key (repeatable, after --config). Without either, Chains'
defaults apply (format in-toto, i.e. SLSA v0.2). --format overrides the
format: in-toto, slsa/v1, slsa/v2alpha3 or slsa/v2alpha4.

The statement is printed indented; --compact prints it as the signer stores it.
Exit status: 0 printed, 2 a usage or input error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := map[string]string{}
			if configFile != "" {
				m, err := readChainsConfig(configFile)
				if err != nil {
					return usageError("--config %s: %w", configFile, err)
				}
				data = m
			}
			for _, s := range sets {
				k, v, ok := strings.Cut(s, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return usageError("--set %q: want key=value", s)
				}
				data[strings.TrimSpace(k)] = v
			}
			cfg, err := config.Parse(data)
			if err != nil {
				return usageError("chains configuration:\n%w", err)
			}
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return usageError("%w", err)
			}
			docs, err := runs.ParseDocuments(raw, args[0])
			if err != nil {
				return usageError("%w", err)
			}
			opts := provenance.Options{BuilderID: cfg.BuilderID, BuildType: cfg.BuildType}
			st, err := statementFor(docs, cfg, format, opts)
			if err != nil {
				return usageError("%w", err)
			}
			out, err := provenance.Marshal(st)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if compact {
				err = json.Compact(&buf, out)
			} else {
				err = json.Indent(&buf, out, "", "  ")
			}
			if err != nil {
				return err
			}
			buf.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(buf.Bytes())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "provenance format (default: artifacts.taskrun.format or artifacts.pipelinerun.format of the configuration)")
	f.StringVar(&configFile, "config", "", "chains-config ConfigMap YAML, or a YAML map of its keys")
	f.StringArrayVar(&sets, "set", nil, "set a chains-config key, e.g. --set builder.id=https://ci.example/builder (repeatable)")
	f.BoolVar(&compact, "compact", false, "print the statement compact, as stored")
	return cmd
}

// readChainsConfig reads a ConfigMap's data, or a bare map of keys.
func readChainsConfig(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err == nil && cm.Kind == "ConfigMap" {
		if cm.Data == nil {
			return map[string]string{}, nil
		}
		return cm.Data, nil
	}
	var m map[string]string
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("neither a ConfigMap nor a map of string keys and values: %w", err)
	}
	return m, nil
}

func statementFor(docs []runs.Document, cfg config.Config, format string, opts provenance.Options) (*intoto.Statement, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("no run in the file")
	}
	first := docs[0]
	if !first.IsRun() {
		return nil, fmt.Errorf("%s: %s %s is not a tekton.dev/v1 PipelineRun or TaskRun", first.Source, first.APIVersion, first.Kind)
	}
	switch first.Kind {
	case runs.KindTaskRun:
		if len(docs) > 1 {
			return nil, fmt.Errorf("%s: a TaskRun file holds one run", docs[1].Source)
		}
		var tr pipelinev1.TaskRun
		if err := kjson.UnmarshalCaseSensitivePreserveInts(first.Raw, &tr); err != nil {
			return nil, fmt.Errorf("%s: decoding TaskRun: %w", first.Source, err)
		}
		if tr.Status.CompletionTime == nil {
			return nil, fmt.Errorf("%s: TaskRun %s has not finished (no status.completionTime); the signer signs finished runs only", first.Source, tr.Name)
		}
		if format == "" {
			format = cfg.TaskRuns.Format
		}
		return provenance.TaskRunStatement(format, &tr, opts)
	default:
		p := &provenance.PipelineRun{Run: &pipelinev1.PipelineRun{}}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(first.Raw, p.Run); err != nil {
			return nil, fmt.Errorf("%s: decoding PipelineRun: %w", first.Source, err)
		}
		if p.Run.Status.CompletionTime == nil {
			return nil, fmt.Errorf("%s: PipelineRun %s has not finished (no status.completionTime); the signer signs finished runs only", first.Source, p.Run.Name)
		}
		for _, d := range docs[1:] {
			if d.APIVersion != "tekton.dev/v1" || d.Kind != runs.KindTaskRun {
				return nil, fmt.Errorf("%s: after a PipelineRun only its child TaskRuns may follow, not %s %s", d.Source, d.APIVersion, d.Kind)
			}
			tr := &pipelinev1.TaskRun{}
			if err := kjson.UnmarshalCaseSensitivePreserveInts(d.Raw, tr); err != nil {
				return nil, fmt.Errorf("%s: decoding TaskRun: %w", d.Source, err)
			}
			p.TaskRuns = append(p.TaskRuns, tr)
		}
		if format == "" {
			format = cfg.PipelineRuns.Format
		}
		return provenance.PipelineRunStatement(format, p, opts, cfg.DeepInspection)
	}
}
