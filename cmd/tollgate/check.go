package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/runs"
)

type checkOptions struct {
	policyDirs   []string
	clusterState string
	output       string
	namespace    string
	user         string
	tekton       []string
	trusted      []string
}

// checkResult is one run's outcome, as printed.
type checkResult struct {
	Source    string          `json:"source"`
	Allowed   bool            `json:"allowed"`
	Decision  policy.Decision `json:"decision"`
	Defaulted []string        `json:"defaulted,omitempty"`
	Digest    string          `json:"specDigest,omitempty"`
}

func newCheckCmd() *cobra.Command {
	o := checkOptions{}
	cmd := &cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Evaluate PipelineRun and TaskRun YAML offline with the run guard's checks",
		Long: `Evaluate tekton.dev/v1 PipelineRuns and TaskRuns offline, exactly as the
webhook would on CREATE: default limits are written, the spec digest is
stamped, then every check decides.

FILE may be YAML (several documents) or JSON; a DIR is searched for *.yaml,
*.yml and *.json. Policies come from --policy (ClusterRunPolicy YAML); without
it the built-in default policy applies. Checks that need the cluster (service
account existence, RBAC, Tasks and Pipelines referenced by name) read
--cluster-state DIR (Namespaces, ServiceAccounts, Roles, ClusterRoles,
RoleBindings, ClusterRoleBindings, Tasks, Pipelines); without it they are
reported as skipped, never as passed.

Exit status: 0 every run allowed, 1 a run denied, 2 a usage or input error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.policyDirs, "policy", nil, "file or directory of ClusterRunPolicy YAML (repeatable)")
	f.StringVar(&o.clusterState, "cluster-state", "", "file or directory of cluster objects the cluster-dependent checks read")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "namespace of runs whose metadata names none")
	f.StringVar(&o.user, "as", "tollgate-check", "user the runs are created as (matters for reserved annotations)")
	f.StringSliceVar(&o.tekton, "tekton-controller-users", []string{runs.DefaultTektonController}, "as for the webhook")
	f.StringSliceVar(&o.trusted, "trusted-users", []string{runs.DefaultSigner}, "as for the webhook")
	return cmd
}

// readDocuments reads every YAML/JSON file named (directories recursively).
func readDocuments(paths []string) ([]runs.Document, error) {
	files, err := findFiles(paths, ".yaml", ".yml", ".json")
	if err != nil {
		return nil, err
	}
	var docs []runs.Document
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d, err := runs.ParseDocuments(data, f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

// findFiles lists the files named and, under the directories named, every
// file with one of the extensions, in order.
func findFiles(paths []string, exts ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && slices.Contains(exts, strings.ToLower(filepath.Ext(path))) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

func runCheck(cmd *cobra.Command, o checkOptions, args []string) error {
	if o.output != "text" && o.output != "json" {
		return usageError("--output %q: want text or json", o.output)
	}
	ctx := cmd.Context()
	var policies []*runs.Policy
	if len(o.policyDirs) > 0 {
		docs, err := readDocuments(o.policyDirs)
		if err != nil {
			return usageError("reading policies: %w", err)
		}
		if policies, err = runs.PoliciesFromDocuments(docs, nil); err != nil {
			return usageError("%w", err)
		}
		if len(policies) == 0 {
			return usageError("--policy %s holds no ClusterRunPolicy", strings.Join(o.policyDirs, ","))
		}
	}
	set := runs.NewSet(runs.BuiltinDefault(), policies...)

	var cluster runs.Cluster
	var static *runs.StaticCluster
	if o.clusterState != "" {
		docs, err := readDocuments([]string{o.clusterState})
		if err != nil {
			return usageError("reading cluster state: %w", err)
		}
		objs, err := runs.StateFromDocuments(docs)
		if err != nil {
			return usageError("reading cluster state: %w", err)
		}
		static = runs.NewStaticCluster(objs)
		cluster = static
	}

	docs, err := readDocuments(args)
	if err != nil {
		return usageError("%w", err)
	}
	var results []checkResult
	for _, d := range docs {
		if !d.IsRun() {
			return usageError("%s: %s %s is not a tekton.dev/v1 PipelineRun or TaskRun", d.Source, d.APIVersion, d.Kind)
		}
		ns := d.Namespace
		if ns == "" {
			ns = o.namespace
		}
		var labels map[string]string
		if static != nil {
			l, ok := static.NamespaceLabels(ns)
			if !ok {
				return usageError("%s: namespace %q is not in the cluster state", d.Source, ns)
			}
			labels = l
		}
		a, err := runs.Admit(ctx, cluster, runs.Facts{
			Review:          runs.Review{Kind: d.Kind, Namespace: ns, User: o.user, Object: d.Raw},
			NamespaceLabels: labels,
			Policies:        set.ForNamespace(labels),
			Identities:      runs.Identities{TektonControllers: o.tekton, Trusted: o.trusted},
		})
		if err != nil {
			return usageError("%s: %w", d.Source, err)
		}
		results = append(results, checkResult{Source: d.Source, Allowed: a.Decision.Allowed(), Decision: a.Decision, Defaulted: a.Mutation.Defaulted, Digest: a.Mutation.Digest})
	}
	if len(results) == 0 {
		return usageError("no PipelineRun or TaskRun found in %s", strings.Join(args, " "))
	}
	return emit(cmd.OutOrStdout(), o.output, results, printText, func(r checkResult) bool { return !r.Allowed })
}

func printText(w io.Writer, results []checkResult) {
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "allowed"
		if !r.Allowed {
			verdict = "DENIED"
		}
		d := r.Decision
		fmt.Fprintf(w, "%s: %s (%s)\n", d.Subject, verdict, r.Source)
		for j, v := range d.Denials {
			fmt.Fprintf(w, "  deny %d. %s\n", j+1, v.String())
		}
		for _, v := range d.Warnings {
			fmt.Fprintf(w, "  warn: %s\n", v.String())
		}
		for _, s := range r.Defaulted {
			fmt.Fprintf(w, "  default written: %s\n", s)
		}
		for _, n := range d.Exempted {
			fmt.Fprintf(w, "  exempt: %s\n", n.String())
		}
		for _, n := range d.Skipped {
			fmt.Fprintf(w, "  skipped: %s\n", n.String())
		}
		if r.Allowed {
			fmt.Fprintf(w, "  stamped %s\n", r.Digest)
		}
	}
}
