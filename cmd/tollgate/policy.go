package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/policy/rego"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with Rego policies offline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("policy needs a subcommand: test\nRun 'tollgate policy --help' for usage")
		},
	}
	cmd.AddCommand(newPolicyTestCmd())
	return cmd
}

func newPolicyTestCmd() *cobra.Command {
	var (
		verbose bool
		run     string
	)
	cmd := &cobra.Command{
		Use:   "test DIR|FILE...",
		Short: "Run Rego unit tests (test_ rules in *_test.rego) the way `opa test` does",
		Long: `Run the test_ rules of every .rego file under the given directories (and
files), the way 'opa test' does, with Tollgate's built-in library
data.tollgate.lib loaded and with the same restrictions as admission:
Rego v1 syntax, no network or runtime built-ins.

Exit status: 0 every test passed, 1 a test failed or errored, 2 a module
does not parse or compile (or no test was found).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mods, err := readRego(args)
			if err != nil {
				return usageError("%w", err)
			}
			results, err := rego.Test(cmd.Context(), mods, run)
			if err != nil {
				return usageError("%w", err)
			}
			if len(results) == 0 {
				return usageError("no test_ rule found in %s", strings.Join(args, " "))
			}
			out := cmd.OutOrStdout()
			var failed, passed int
			for _, r := range results {
				switch {
				case r.Pass():
					passed++
					if verbose {
						fmt.Fprintf(out, "%s\n", rego.Describe(r))
					}
				case r.Skip:
					if verbose {
						fmt.Fprintf(out, "%s\n", rego.Describe(r))
					}
				default:
					failed++
					fmt.Fprintf(out, "%s\n", rego.Describe(r))
					if r.Location != nil {
						fmt.Fprintf(out, "  at %s:%d\n", r.Location.File, r.Location.Row)
					}
					if r.FailedAt != nil && r.FailedAt.Location != nil {
						fmt.Fprintf(out, "  failed at %s:%d: %s\n", r.FailedAt.Location.File, r.FailedAt.Location.Row, r.FailedAt.String())
					}
					if r.Error != nil {
						fmt.Fprintf(out, "  error: %v\n", r.Error)
					}
					if len(r.Output) > 0 {
						fmt.Fprintf(out, "  output:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(string(r.Output)), "\n", "\n    "))
					}
				}
			}
			fmt.Fprintln(out, strings.Repeat("-", 72))
			if failed > 0 {
				fmt.Fprintf(out, "PASS: %d/%d\nFAIL: %d/%d\n", passed, len(results), failed, len(results))
				return &exitError{code: 1}
			}
			fmt.Fprintf(out, "PASS: %d/%d\n", passed, len(results))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only failures")
	cmd.Flags().StringVarP(&run, "run", "r", "", "run only tests whose name matches this regular expression")
	return cmd
}

// readRego reads every .rego file named or under the directories named.
func readRego(paths []string) ([]rego.Module, error) {
	files, err := findFiles(paths, ".rego")
	if err != nil {
		return nil, err
	}
	var mods []rego.Module
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		mods = append(mods, rego.Module{Name: f, Source: string(b)})
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no .rego file in %s", strings.Join(paths, " "))
	}
	return mods, nil
}
