package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the linker (-X main.version=... -X main.commit=...); see the Makefile.
var (
	version = "dev"
	commit  = ""
)

const (
	supportedKubernetes = "v1.35 (tested against kube-apiserver v1.35.4)"
	supportedTekton     = "Pipelines tekton.dev/v1 (tested against v1.11.0 CRDs)"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, and the supported Kubernetes and Tekton versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := commit
			if c == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							c = s.Value
						}
					}
				}
			}
			if c == "" {
				c = "unknown"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "tollgate %s\ncommit: %s\nkubernetes: %s\ntekton: %s\n", version, c, supportedKubernetes, supportedTekton)
			return nil
		},
	}
}
