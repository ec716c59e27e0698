// Command tollgate is the one binary of Tollgate, the supply-chain gate for
// Tekton: `tollgate webhook` serves the admission webhooks, `tollgate signer`
// signs what finished runs built, `tollgate check` and `tollgate verify`
// decide runs and images offline with the webhooks' own decisions,
// `tollgate policy` tests Rego, `tollgate provenance` prints a run's
// provenance, `tollgate dev` runs the whole system on this machine, and
// `tollgate version` prints what this build supports. Flags and environment
// are read only here.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError is an error in the command line or the input (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// emit prints results as indented JSON or as text, and returns exit
// status 1 when any of them failed.
func emit[T any](w io.Writer, format string, results []T, text func(io.Writer, []T), failed func(T) bool) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		text(w, results)
	}
	for _, r := range results {
		if failed(r) {
			return &exitError{code: 1}
		}
	}
	return nil
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "tollgate",
		Short: "The supply-chain gate for Tekton: admission checks for runs, signed provenance, and an image gate",
		Long: `Tollgate guards Tekton CI on Kubernetes.

It denies unsafe PipelineRuns and TaskRuns at admission (service accounts with
too much power, privileged steps, missing resource limits, unpinned remote
Tasks, specs changed after admission) and stamps every admitted run with a
non-falsifiable spec digest. Its signer signs what the runs build with SLSA
provenance the way Tekton Chains does, and its image gate admits into gated
namespaces only images signed by a trusted authority with that provenance.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newWebhookCmd(), newCheckCmd(), newProvenanceCmd(), newSignerCmd(), newVerifyCmd(), newPolicyCmd(), newDevCmd(), newAuditCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	return root
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "tollgate:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "tollgate:", err)
	// Cobra's own argument errors ("unknown command", "accepts 1 arg") are usage errors.
	return 2
}
