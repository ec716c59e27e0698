package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"time"
)

// PredicateCycloneDX is the predicate type of a CycloneDX SBOM attestation
// (`cosign attest --type cyclonedx`, `cosign verify-attestation --type cyclonedx`).
const PredicateCycloneDX = "https://cyclonedx.org/bom"

// Module is one Go module linked into the binary, as its build information
// records it (after replacements).
type Module struct {
	Path, Version, Sum string
}

// modulesOf lists the modules a binary's build information names, the
// replacement in place of a replaced module.
func modulesOf(bi *debug.BuildInfo) []Module {
	out := make([]Module, 0, len(bi.Deps))
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		out = append(out, Module{Path: d.Path, Version: d.Version, Sum: d.Sum})
	}
	return out
}

// mergeModules is the union of the platforms' module lists, in path order.
func mergeModules(lists ...[]Module) []Module {
	seen := map[Module]bool{}
	var out []Module
	for _, l := range lists {
		for _, m := range l {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// The CycloneDX 1.5 document: the fields this SBOM fills.
type (
	cdxBOM struct {
		BOMFormat    string          `json:"bomFormat"`
		SpecVersion  string          `json:"specVersion"`
		Version      int             `json:"version"`
		Metadata     cdxMetadata     `json:"metadata"`
		Components   []cdxComponent  `json:"components"`
		Dependencies []cdxDependency `json:"dependencies"`
	}
	cdxMetadata struct {
		Timestamp string       `json:"timestamp"`
		Tools     cdxTools     `json:"tools"`
		Component cdxComponent `json:"component"`
	}
	cdxTools struct {
		Components []cdxComponent `json:"components"`
	}
	cdxComponent struct {
		BOMRef     string        `json:"bom-ref,omitempty"`
		Type       string        `json:"type"`
		Name       string        `json:"name"`
		Version    string        `json:"version,omitempty"`
		PURL       string        `json:"purl,omitempty"`
		Properties []cdxProperty `json:"properties,omitempty"`
	}
	cdxProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	cdxDependency struct {
		Ref       string   `json:"ref"`
		DependsOn []string `json:"dependsOn"`
	}
)

// SBOM is the CycloneDX 1.5 SBOM of the image: the container, the tollgate
// application in it, the Go standard library and every module linked into
// the binary of any platform, from the binaries' own build information (the
// module graph the linker used, not go.mod's wider one). A module's go.sum
// hash (h1:, a hash of its file tree, not of one file) is a property, not a
// CycloneDX hash. The document is the same for the same inputs.
func SBOM(o Options, repository, goVersion string, mods []Module) ([]byte, error) {
	app := cdxComponent{BOMRef: "pkg:golang/" + mainModule + "@" + o.Version, Type: "application", Name: mainModule, Version: o.Version,
		PURL: "pkg:golang/" + mainModule + "@" + o.Version, Properties: []cdxProperty{{Name: "tollgate:commit", Value: o.Commit}}}
	std := cdxComponent{BOMRef: "pkg:golang/stdlib@" + goVersion, Type: "library", Name: "stdlib", Version: goVersion, PURL: "pkg:golang/stdlib@" + goVersion}
	comps := []cdxComponent{app, std}
	deps := []string{std.BOMRef}
	for _, m := range mods {
		if m.Path == mainModule {
			continue
		}
		purl := "pkg:golang/" + m.Path + "@" + m.Version
		c := cdxComponent{BOMRef: purl, Type: "library", Name: m.Path, Version: m.Version, PURL: purl}
		if m.Sum != "" {
			c.Properties = []cdxProperty{{Name: "golang:go.sum", Value: m.Sum}}
		}
		comps = append(comps, c)
		deps = append(deps, purl)
	}
	name := repository
	if name == "" {
		name = "tollgate"
	}
	container := cdxComponent{BOMRef: "container:" + name, Type: "container", Name: name, Version: o.Version}
	bom := cdxBOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		Metadata: cdxMetadata{
			Timestamp: o.Epoch.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "tollgate build/image", Version: o.Version}}},
			Component: container,
		},
		Components:   comps,
		Dependencies: []cdxDependency{{Ref: container.BOMRef, DependsOn: []string{app.BOMRef}}, {Ref: app.BOMRef, DependsOn: deps}},
	}
	b, err := json.Marshal(bom)
	if err != nil {
		return nil, fmt.Errorf("encoding the SBOM: %w", err)
	}
	return b, nil
}

// mainModule is the module the binary is built from.
const mainModule = "github.com/tollgate-dev/tollgate"
