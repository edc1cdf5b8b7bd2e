package testenv

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
)

// Reason is a Reason* constant of api/v1alpha1/common.go.
type Reason struct {
	Name, Value string
	// Ready is false for the reasons of another condition (a const block documented
	// "Reasons of the RolloutRestarted condition"), which Ready never carries.
	Ready bool
}

// Reasons parses api/v1alpha1/common.go for its Reason* constants, so that the tests that
// classify every reason (kstatus, Argo CD health, the plugin's hints) fail when one is added
// without being classified.
func Reasons() ([]Reason, error) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(RepoRoot(), "api", "v1alpha1", "common.go"), nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var out []Reason
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		ready := g.Doc == nil || !strings.Contains(g.Doc.Text(), "Reasons of the RolloutRestarted condition")
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", n.Name, err)
				}
				out = append(out, Reason{Name: n.Name, Value: v, Ready: ready})
			}
		}
	}
	if len(out) < 20 {
		return nil, fmt.Errorf("found only %d Reason constants in api/v1alpha1/common.go", len(out))
	}
	return out, nil
}

// ReadyReasons returns the values of the reasons the Ready condition may carry.
func ReadyReasons() ([]string, error) {
	all, err := Reasons()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range all {
		if r.Ready {
			out = append(out, r.Value)
		}
	}
	return out, nil
}
