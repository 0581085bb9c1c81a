package tests

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mayAppend reports whether the code of the package in dir (from the module root) may append
// to the log: the log itself (with its test helpers) and the command layer.
func mayAppend(dir string) bool {
	return dir == "eventstore" || strings.HasPrefix(dir, "eventstore/") || dir == "handlers/ledger"
}

// appendCalls lists, as file:line, the calls of a method named Append, AppendFor,
// AppendPipelined or Restore (an import's writes) in src.
func appendCalls(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Append" || sel.Sel.Name == "AppendFor" || sel.Sel.Name == "AppendPipelined" || sel.Sel.Name == "Restore") {
			out = append(out, fset.Position(call.Pos()).String())
		}
		return true
	})
	return out, nil
}

// TestOnlyTheLedgerAppends fails when the code of a package other than the log and the
// command layer calls the store's Append or AppendFor: every write goes through
// handlers/ledger. Tests may write fixtures straight into the log, so test files are not
// looked at.
func TestOnlyTheLedgerAppends(t *testing.T) {
	fset := token.NewFileSet()
	// The check finds what it looks for.
	found, err := appendCalls(fset, "probe.go", `package p
func f() { s.Store.Append(ctx, eventstore.Unchecked, ev); st.AppendFor(ctx, f, 0, ev); st.Restore(ctx, msgs); st.AppendPipelined(ctx, ps, 0, nil); _ = append(xs, 1) }`)
	require.NoError(t, err)
	require.Len(t, found, 4)

	root, err := filepath.Abs("..")
	require.NoError(t, err)
	var bypass, inLedger []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		calls, err := appendCalls(fset, path, nil)
		if err != nil {
			return err
		}
		if mayAppend(rel) {
			if rel == "handlers/ledger" {
				inLedger = append(inLedger, calls...)
			}
			return nil
		}
		bypass = append(bypass, calls...)
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, bypass, "only handlers/ledger appends to the log; add a method there instead")
	require.NotEmpty(t, inLedger, "the command layer appends")
}

// TestTheTopLevelIsFixed fails when the repository's root holds a directory or a Go file
// outside its fixed layout: packages go inside cmd/, domain/, eventstore/, projections/,
// handlers/ or tests/. What the repository holds is what git tracks or would add (a data
// directory or a binary made by running the service from the root is ignored); without git,
// the entries of the root but those .gitignore names from the root.
func TestTheTopLevelIsFixed(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	fixed := map[string]bool{"cmd": true, "domain": true, "eventstore": true, "projections": true, "handlers": true, "tests": true}
	type entry struct {
		name string
		dir  bool
	}
	var entries []entry
	// Tracked files and the files git would add (not ignored), NUL-separated, unquoted.
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output(); err == nil && len(out) > 0 {
		seen := map[string]bool{}
		for _, f := range strings.Split(string(out), "\x00") {
			name, _, dir := strings.Cut(f, "/")
			if f != "" && !seen[name] {
				seen[name] = true
				entries = append(entries, entry{name, dir})
			}
		}
	} else {
		ignored := map[string]bool{}
		if gi, err := os.ReadFile(filepath.Join(root, ".gitignore")); err == nil {
			for _, line := range strings.Split(string(gi), "\n") {
				if name, ok := strings.CutPrefix(strings.TrimSpace(line), "/"); ok {
					ignored[strings.TrimSuffix(name, "/")] = true
				}
			}
		}
		des, err := os.ReadDir(root)
		require.NoError(t, err)
		for _, e := range des {
			if !ignored[e.Name()] {
				entries = append(entries, entry{e.Name(), e.IsDir()})
			}
		}
	}
	require.NotEmpty(t, entries)
	var outside []string
	for _, e := range entries {
		if strings.HasPrefix(e.name, ".") {
			continue
		}
		if (e.dir && !fixed[e.name]) || (!e.dir && strings.HasSuffix(e.name, ".go")) {
			outside = append(outside, e.name)
		}
	}
	require.Empty(t, outside, "the top level is fixed; put the package inside one of %v", fixed)
}
