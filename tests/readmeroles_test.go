package tests

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers"
)

// TestREADMERoleTable: the README's table of what each role can do names every route the
// handlers register, once, and its marks are what THE route table (handlers/routes.go) says,
// so that it cannot drift from the code.
func TestREADMERoleTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "<!-- role table: begin")
	end := strings.Index(text, "<!-- role table: end -->")
	require.True(t, start >= 0 && end > start, "the README has no role table between its markers")
	rows := strings.Split(strings.TrimSpace(text[start:end]), "\n")[1:]
	require.GreaterOrEqual(t, len(rows), 3, "header, rule and rows")
	header := strings.Split(strings.Trim(rows[0], "| "), " | ")
	cols := append([]string{"what", "routes", "no token"}, func() []string {
		var rs []string
		for _, r := range domain.Roles {
			rs = append(rs, string(r))
		}
		return rs
	}()...)
	require.Equal(t, cols, header, "the table's columns are the roles, in order")

	want := map[string]bool{"/mcp": true}
	for _, p := range registeredPatterns(t) {
		want[p] = true
	}
	seen := map[string]bool{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, row := range rows[2:] {
		cells := strings.Split(strings.Trim(row, "| "), " | ")
		require.Len(t, cells, len(cols), "row %q", row)
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			p := m[1]
			require.True(t, want[p], "the README's role table names %s, which no handler registers", p)
			require.False(t, seen[p], "the README's role table names %s twice", p)
			seen[p] = true
			need, public := handlers.RouteRole(p)
			marks := []bool{public}
			for _, r := range domain.Roles {
				marks = append(marks, public || r.Allows(need))
			}
			for i, allowed := range marks {
				mark := "—"
				if allowed {
					mark = "✓"
				}
				require.Equal(t, mark, cells[2+i], "README role table, %s, column %s: handlers/routes.go says %s", p, cols[2+i], mark)
			}
		}
	}
	for p := range want {
		require.True(t, seen[p], "the README's role table (section Roles) does not name %s: add it to the row of its role", p)
	}
}
