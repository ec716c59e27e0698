package rego

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

//go:embed lib/*.rego
var libFS embed.FS

// LibraryPackage is the package of the built-in library.
const LibraryPackage = "tollgate.lib"

// Module is one Rego source file.
type Module struct {
	// Name identifies the module in errors (a file name or "policy/module").
	Name   string
	Source string
}

// Library returns the built-in library's modules (without its tests).
func Library() []Module {
	var out []Module
	_ = fs.WalkDir(libFS, "lib", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		b, err := libFS.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, Module{Name: "tollgate/" + p, Source: string(b)})
		return nil
	})
	return out
}

// LibraryTests returns the built-in library's tests.
func LibraryTests() []Module {
	var out []Module
	_ = fs.WalkDir(libFS, "lib", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.rego") {
			return err
		}
		b, _ := libFS.ReadFile(p)
		out = append(out, Module{Name: "tollgate/" + p, Source: string(b)})
		return nil
	})
	return out
}

// forbidden are the built-ins a policy may not call: anything that reaches
// the network or the host. A module that calls one does not compile.
var forbidden = []string{"http.send", "opa.runtime", "net.lookup_ip_addr", "net.cidr_expand"}

// Capabilities are OPA's, without network and runtime built-ins.
func Capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if isForbidden(b.Name) {
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps
}

func isForbidden(name string) bool {
	for _, f := range forbidden {
		if name == f {
			return true
		}
	}
	return strings.HasPrefix(name, "net.") || strings.HasPrefix(name, "http.")
}

// Parse parses a module as Rego v1 with its METADATA annotations.
func Parse(m Module) (*ast.Module, error) {
	return ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true, Capabilities: Capabilities()})
}

// NewCompiler compiles parsed modules with the library and the restricted
// capabilities. Errors carry file, line and column.
func NewCompiler(modules map[string]*ast.Module) (*ast.Compiler, error) {
	all := make(map[string]*ast.Module, len(modules)+4)
	for _, m := range Library() {
		pm, err := Parse(m)
		if err != nil {
			return nil, fmt.Errorf("the built-in library: %w", err)
		}
		all[m.Name] = pm
	}
	for name, m := range modules {
		if _, clash := all[name]; clash {
			return nil, fmt.Errorf("module %s: the name is taken by the built-in library", name)
		}
		if m.Package.Path.String() == "data."+LibraryPackage || strings.HasPrefix(m.Package.Path.String(), "data."+LibraryPackage+".") {
			return nil, fmt.Errorf("%s: package %s is reserved for the built-in library", name, strings.TrimPrefix(m.Package.Path.String(), "data."))
		}
		all[name] = m
	}
	c := ast.NewCompiler().WithCapabilities(Capabilities()).WithStrict(false).WithEnablePrintStatements(false)
	c.Compile(all)
	if c.Failed() {
		return nil, c.Errors
	}
	return c, nil
}

// Options bound evaluation.
type Options struct {
	// Timeout bounds one evaluation of all of a program's rules.
	Timeout time.Duration
}

// DefaultOptions give a policy's rules 1 s: far above what rules need
// (tens of microseconds), far below the webhook timeout, and long enough
// that a stall of the process (a collection, a busy 2-core node: 100 ms
// was seen to deny a run whose rules take microseconds) does not deny;
// an endless rule is still cut, and denies.
func DefaultOptions() Options { return Options{Timeout: time.Second} }

// Program is the compiled Rego of one policy: a prepared query for each
// package's deny and warn rules. It is immutable and safe for concurrent use.
type Program struct {
	opts    Options
	queries []query
	// all evaluates every query at once (one evaluation per request instead
	// of one per rule); when it errors or a rule is undefined, the queries
	// are evaluated one by one to say which.
	all rego.PreparedEvalQuery
}

type query struct {
	pkg   string // without "data."
	kind  string // deny or warn
	pq    rego.PreparedEvalQuery
	title string // from # METADATA, rule scope first, then package
	fix   string // custom.fix
}

// prepared counts prepared queries, so a test can prove they are built
// once per policy generation and never per request.
var prepared atomic.Int64

// Prepared returns how many queries have been prepared in this process.
func Prepared() int64 { return prepared.Load() }

// Compile parses and compiles modules into a program. The error names the
// module, line and column.
func Compile(ctx context.Context, modules []Module, opts Options) (*Program, error) {
	if len(modules) == 0 {
		return nil, nil
	}
	if opts.Timeout <= 0 {
		opts = DefaultOptions()
	}
	parsed := map[string]*ast.Module{}
	for _, m := range modules {
		if _, dup := parsed[m.Name]; dup {
			return nil, fmt.Errorf("two modules are named %s", m.Name)
		}
		pm, err := Parse(m)
		if err != nil {
			return nil, located(err)
		}
		parsed[m.Name] = pm
	}
	c, err := NewCompiler(parsed)
	if err != nil {
		return nil, located(err)
	}
	p := &Program{opts: opts}
	docs := annotations(parsed)
	for _, pkg := range packages(parsed) {
		for _, kind := range []string{"deny", "warn"} {
			if !defines(parsed, pkg, kind) {
				continue
			}
			pq, err := rego.New(rego.Compiler(c), rego.Query("data."+pkg+"."+kind), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
			if err != nil {
				return nil, fmt.Errorf("preparing data.%s.%s: %w", pkg, kind, err)
			}
			prepared.Add(1)
			q := query{pkg: pkg, kind: kind, pq: pq}
			for _, path := range []string{"data." + pkg + "." + kind, "data." + pkg} {
				if d, ok := docs[path]; ok {
					if q.title == "" {
						q.title = d.title
					}
					if q.fix == "" {
						q.fix = d.fix
					}
				}
			}
			p.queries = append(p.queries, q)
		}
	}
	if len(p.queries) == 0 {
		return nil, errors.New("no module defines a deny or warn rule: nothing would be enforced")
	}
	parts := make([]string, len(p.queries))
	for i, q := range p.queries {
		parts[i] = fmt.Sprintf("q%d := data.%s.%s", i, q.pkg, q.kind)
	}
	all, err := rego.New(rego.Compiler(c), rego.Query(strings.Join(parts, "; ")), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("preparing the rules: %w", err)
	}
	prepared.Add(1)
	p.all = all
	return p, nil
}

type doc struct{ title, fix string }

// annotations collects each package's and rule's METADATA title and
// custom.fix, by path.
func annotations(ms map[string]*ast.Module) map[string]doc {
	list := make([]*ast.Module, 0, len(ms))
	for _, m := range ms {
		list = append(list, m)
	}
	set, _ := ast.BuildAnnotationSet(list) // errors were reported by the compiler
	out := map[string]doc{}
	if set == nil {
		return out
	}
	for _, ref := range set.Flatten() {
		a := ref.Annotations
		if a == nil {
			continue
		}
		d := out[ref.Path.String()]
		if d.title == "" {
			d.title = a.Title
		}
		if f, ok := a.Custom["fix"].(string); ok && d.fix == "" {
			d.fix = strings.TrimSpace(f)
		}
		out[ref.Path.String()] = d
	}
	return out
}

// located renders OPA's errors as "file:line:column: message", one per line.
func located(err error) error {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		return err
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		if e.Location != nil {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", e.Location.File, e.Location.Row, e.Location.Col, e.Message))
		} else {
			lines = append(lines, e.Message)
		}
	}
	return errors.New(strings.Join(lines, "; "))
}

// Packages returns the packages the modules define (without "data.").
func packages(ms map[string]*ast.Module) []string {
	seen := map[string]bool{}
	for _, m := range ms {
		seen[strings.TrimPrefix(m.Package.Path.String(), "data.")] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func defines(ms map[string]*ast.Module, pkg, rule string) bool {
	for _, m := range ms {
		if strings.TrimPrefix(m.Package.Path.String(), "data.") != pkg {
			continue
		}
		for _, r := range m.Rules {
			if r.Head.Name.String() == rule || (len(r.Head.Reference) > 0 && r.Head.Reference[0].Value.String() == rule) {
				return true
			}
		}
	}
	return false
}

// Packages returns the packages the program enforces.
func (p *Program) Packages() []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, q := range p.queries {
		if len(out) == 0 || out[len(out)-1] != q.pkg {
			out = append(out, q.pkg)
		}
	}
	return out
}

// Finding is one message a rule produced.
type Finding struct {
	// Rule is "data.PACKAGE.deny" or "data.PACKAGE.warn".
	Rule string
	Deny bool
	Msg  string
	Path string
	// Title and Fix come from the rule's (or its package's) METADATA.
	Title string
	Fix   string
}

// Eval evaluates every rule over input (ast.Value from Input, or any
// JSON-shaped Go value). A rule that errors, runs out of time or returns a
// message of the wrong shape is returned as an error naming the rule: the
// caller denies (fail closed).
func (p *Program) Eval(ctx context.Context, input ast.Value) ([]Finding, error) {
	if p == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	var out []Finding
	var errs []error
	if rs, err := p.all.Eval(ctx, rego.EvalParsedInput(input)); err == nil && len(rs) == 1 {
		for i, q := range p.queries {
			fs, err := q.findings(rs[0].Bindings[fmt.Sprintf("q%d", i)])
			out, errs = append(out, fs...), appendErr(errs, err)
		}
		return sorted(out), errors.Join(errs...)
	} else if ctx.Err() != nil {
		return nil, fmt.Errorf("the rules did not finish within %s", p.opts.Timeout)
	}
	for _, q := range p.queries {
		rule := "data." + q.pkg + "." + q.kind
		rs, err := q.pq.Eval(ctx, rego.EvalParsedInput(input))
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("did not finish within %s", p.opts.Timeout)
			}
			errs = append(errs, fmt.Errorf("%s: %w", rule, err))
			continue
		}
		for _, r := range rs {
			for _, e := range r.Expressions {
				fs, err := q.findings(e.Value)
				out, errs = append(out, fs...), appendErr(errs, err)
			}
		}
	}
	return sorted(out), errors.Join(errs...)
}

// findings reads one rule's value into findings with the rule's METADATA.
func (q query) findings(v any) ([]Finding, error) {
	fs, err := findings("data."+q.pkg+"."+q.kind, q.kind == "deny", v)
	for i := range fs {
		fs[i].Title, fs[i].Fix = q.title, q.fix
	}
	return fs, err
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

func sorted(out []Finding) []Finding {
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Msg < out[j].Msg
	})
	return out
}

func findings(rule string, deny bool, v any) ([]Finding, error) {
	set, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: is a %s, not a set of messages (write `%s contains msg if {...}`)", rule, typeName(v), path.Base(strings.ReplaceAll(rule, ".", "/")))
	}
	out := make([]Finding, 0, len(set))
	for _, m := range set {
		f := Finding{Rule: rule, Deny: deny}
		switch m := m.(type) {
		case string:
			f.Msg = m
		case map[string]any:
			msg, ok := m["msg"].(string)
			if !ok {
				return nil, fmt.Errorf("%s: a message object has no string \"msg\"", rule)
			}
			f.Msg = msg
			if p, has := m["path"]; has {
				ps, ok := p.(string)
				if !ok {
					return nil, fmt.Errorf("%s: a message's \"path\" is a %s, not a string", rule, typeName(p))
				}
				f.Path = ps
			}
		default:
			return nil, fmt.Errorf("%s: a message is a %s, not a string or {\"msg\": string, \"path\": string}", rule, typeName(m))
		}
		out = append(out, f)
	}
	return out, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "set or array"
	case map[string]any:
		return "object"
	default:
		return "number"
	}
}
