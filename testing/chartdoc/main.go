// Command chartdoc writes charts/tollgate/README.md from the comments of
// values.yaml (`make generate`; `make verify` fails when it is stale). A
// value is documented by the comment above it; "-- " starts the text.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

type row struct{ key, def, doc string }

func main() {
	chart := "charts/tollgate"
	if len(os.Args) > 1 {
		chart = os.Args[1]
	}
	data, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		fail(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		fail(err)
	}
	var rows []row
	walk(doc.Content[0], "", "", &rows)
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("| key | default | description |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", r.key, strings.ReplaceAll(r.def, "|", "\\|"), strings.ReplaceAll(r.doc, "|", "\\|"))
	}
	if err := os.WriteFile(filepath.Join(chart, "README.md"), b.Bytes(), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chartdoc:", err)
	os.Exit(1)
}

// walk lists leaves (and documented maps) with their comments.
func walk(n *yaml.Node, prefix, inherited string, rows *[]row) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		comment := clean(k.HeadComment)
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 && comment == "" {
			walk(v, key, "", rows)
			continue
		}
		def := inline(v)
		*rows = append(*rows, row{key: key, def: def, doc: comment})
	}
}

func inline(v *yaml.Node) string {
	c := *v
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	c.Style = yaml.FlowStyle
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func clean(comment string) string {
	var lines []string
	on := false
	for _, l := range strings.Split(comment, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if strings.HasPrefix(l, "-- ") {
			on = true
			l = strings.TrimPrefix(l, "-- ")
		}
		if on && l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " ")
}

const header = `# Tollgate Helm chart

The supply-chain gate for Tekton: the run guard and the image gate
(admission webhooks) and the signer (signed SLSA provenance, a drop-in for
Tekton Chains). See the repository's README for what each does.

` + "```sh" + `
helm install tollgate charts/tollgate --namespace tollgate-system --create-namespace
cosign generate-key-pair k8s://tollgate-system/signing-secrets
kubectl label namespace prod tollgate.dev/gate=enforce
` + "```" + `

Every value is checked by values.schema.json: an unknown key or a value of
the wrong kind fails the install with a message naming it. This table is
generated from the comments in values.yaml (` + "`make generate`" + `).

`
