package images

import (
	"fmt"
	"regexp"
	"strings"
)

var globChars = regexp.MustCompile(`^[a-z0-9._:/*-]+$`)

// Glob matches fully qualified repositories with policy-controller's glob
// syntax: "*" matches within one path segment, "**" across segments, and
// the bare globs "*" and "*/*" mean Docker Hub's official and user images.
// Unlike policy-controller, a glob never matches the reference as written
// (only its normalised form) and never includes a tag or a digest: the
// policy that applies to an image cannot change with a mutable tag.
type Glob struct {
	pattern string
	re      *regexp.Regexp
}

// CompileGlob compiles one glob.
func CompileGlob(glob string) (*Glob, error) {
	g := strings.ToLower(glob)
	switch g {
	case "*":
		g = "index.docker.io/library/*"
	case "*/*":
		g = "index.docker.io/*/*"
	}
	if !globChars.MatchString(g) {
		return nil, fmt.Errorf("glob %q: only letters, digits, '.', '_', '-', ':', '/' and '*' may appear", glob)
	}
	first, rest, hasPath := strings.Cut(g, "/")
	if !hasPath && !strings.Contains(first, "*") {
		return nil, fmt.Errorf("glob %q names no repository: write registry/repository (Docker Hub is index.docker.io/library/NAME)", glob)
	}
	if strings.Contains(rest, ":") {
		return nil, fmt.Errorf("glob %q has a tag: globs match repositories, and the digest is what is verified; drop the ':...'", glob)
	}
	if first == "docker.io" || first == "registry-1.docker.io" {
		g = "index.docker.io" + strings.TrimPrefix(g, first)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case c == '*' && i+1 < len(g) && g[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", glob, err)
	}
	return &Glob{pattern: glob, re: re}, nil
}

// Match reports whether the image's repository matches.
func (g *Glob) Match(img Image) bool {
	return g.re.MatchString(strings.ToLower(img.Repository.Name()))
}

func (g *Glob) String() string { return g.pattern }
