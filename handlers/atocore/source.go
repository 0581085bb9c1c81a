// Package atocore reads an AtoCore SQLite database (the Python service memledger replaces) and
// maps its rows to memledger's events: memories with their audit history, projects and their
// aliases, project state, documents and chunks. The mapping is pure (rows in, events and a
// report out); the events are written through the command layer's import entry point.
package atocore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// ErrNotAtoCore is returned for a file that is not an AtoCore database: not SQLite, damaged,
// or without AtoCore's tables.
var ErrNotAtoCore = errors.New("not an AtoCore database")

// column is a column the importer knows, and whether a table is unusable without it.
type column struct {
	name     string
	required bool
}

// knownTables are AtoCore's tables and the columns the importer reads (schema of the
// robustness release, with the columns later migrations added).
var knownTables = map[string][]column{
	"memories": {{"id", true}, {"memory_type", true}, {"content", true}, {"project", false},
		{"source_chunk_id", false}, {"confidence", false}, {"status", false}, {"created_at", false},
		{"updated_at", false}, {"last_referenced_at", false}, {"reference_count", false},
		{"domain_tags", false}, {"valid_until", false}, {"graduated_to_entity_id", false}},
	"memory_audit": {{"id", true}, {"memory_id", true}, {"action", true}, {"actor", false},
		{"before_json", false}, {"after_json", false}, {"note", false}, {"timestamp", false},
		{"entity_kind", false}},
	"projects": {{"id", true}, {"name", false}, {"description", false}, {"created_at", false}},
	"project_state": {{"id", true}, {"project_id", true}, {"category", true}, {"key", true},
		{"value", true}, {"source", false}, {"confidence", false}, {"status", false},
		{"created_at", false}, {"updated_at", false}},
	"source_documents": {{"id", true}, {"file_path", true}, {"file_hash", false}, {"title", false},
		{"doc_type", false}, {"tags", false}, {"ingested_at", false}, {"updated_at", false}},
	"source_chunks": {{"id", true}, {"document_id", true}, {"chunk_index", false}, {"content", true},
		{"heading_path", false}, {"char_count", false}, {"metadata", false}, {"created_at", false}},
}

// tableOrder is the order tables are read and reported in.
var tableOrder = []string{"projects", "source_documents", "source_chunks", "project_state", "memories", "memory_audit"}

// droppedColumns are columns the importer knows but memledger has no field for.
var droppedColumns = map[string]string{
	"source_chunks.metadata":      "memledger's chunks have no metadata",
	"source_documents.updated_at": "memledger's documents have no times of their own",
	"projects.created_at":         "used as the time of the project's registration only",
}

// Source is an open AtoCore database and the columns each of its tables has.
type Source struct {
	Path string
	db   *sql.DB
	// columns[table] is the set of columns the table has; a table absent from the database
	// is absent here.
	columns map[string]map[string]bool
}

// Open opens the database at path read-only and checks that it is an AtoCore database: a
// SQLite file that passes a quick integrity check and has a memories table with the
// columns the importer needs.
func Open(ctx context.Context, path string) (*Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("atocore database: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("atocore database %s is a directory: %w", path, ErrNotAtoCore)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &Source{Path: path, db: db, columns: map[string]map[string]bool{}}
	if err := s.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Source) Close() error { return s.db.Close() }

func (s *Source) check(ctx context.Context) error {
	var result string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&result); err != nil {
		return fmt.Errorf("%s is not a readable SQLite database (%v): %w", s.Path, err, ErrNotAtoCore)
	}
	if result != "ok" {
		return fmt.Errorf("%s is a damaged SQLite database (quick_check: %s): %w", s.Path, result, ErrNotAtoCore)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		return fmt.Errorf("%s: list tables: %v: %w", s.Path, err, ErrNotAtoCore)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("%s: list tables: %w", s.Path, err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: list tables: %v: %w", s.Path, err, ErrNotAtoCore)
	}
	if !slices.Contains(tables, "memories") {
		known := slices.Sorted(func(yield func(string) bool) {
			for t := range knownTables {
				if !yield(t) {
					return
				}
			}
		})
		have := "no tables"
		if len(tables) > 0 {
			have = "tables " + strings.Join(tables, ", ")
		}
		return fmt.Errorf("%s has %s and no memories table; an AtoCore database has %s: %w",
			s.Path, have, strings.Join(known, ", "), ErrNotAtoCore)
	}
	for _, t := range tables {
		if _, ok := knownTables[t]; !ok {
			continue
		}
		cols, err := s.tableColumns(ctx, t)
		if err != nil {
			return err
		}
		s.columns[t] = cols
		var missing []string
		for _, c := range knownTables[t] {
			if c.required && !cols[c.name] {
				missing = append(missing, c.name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: table %s lacks the column(s) %s that the importer needs: %w",
				s.Path, t, strings.Join(missing, ", "), ErrNotAtoCore)
		}
	}
	return nil
}

func (s *Source) tableColumns(ctx context.Context, table string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, fmt.Errorf("%s: columns of %s: %w", s.Path, table, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("%s: columns of %s: %w", s.Path, table, err)
		}
		cols[name] = true
	}
	return cols, rows.Err()
}

// Schema reports, per known table, whether it is there, the known columns it lacks (whose
// defaults the importer uses) and the columns it has that the importer does not know (and
// ignores).
func (s *Source) Schema() []TableSchema {
	var out []TableSchema
	for _, t := range tableOrder {
		ts := TableSchema{Table: t}
		cols, ok := s.columns[t]
		if !ok {
			ts.Absent = true
			out = append(out, ts)
			continue
		}
		known := map[string]bool{}
		for _, c := range knownTables[t] {
			known[c.name] = true
			if !cols[c.name] {
				ts.MissingColumns = append(ts.MissingColumns, c.name)
			} else if why, ok := droppedColumns[t+"."+c.name]; ok {
				ts.DroppedColumns = append(ts.DroppedColumns, c.name+" ("+why+")")
			}
		}
		for c := range cols {
			if !known[c] {
				ts.UnknownColumns = append(ts.UnknownColumns, c)
			}
		}
		sort.Strings(ts.UnknownColumns)
		out = append(out, ts)
	}
	return out
}

// row is one row read from a table: each known column the table has, as text (NULL is
// absent from the map).
type row struct {
	rowid int64
	vals  map[string]string
}

func (r row) get(col string) (string, bool) {
	v, ok := r.vals[col]
	return v, ok
}

// str is the column's text, "" for NULL or a column the table lacks.
func (r row) str(col string) string { return r.vals[col] }

// readTable reads every row of table (none when the table is absent), with the known columns
// it has, each cast to text, in rowid order.
func (s *Source) readTable(ctx context.Context, table string) ([]row, error) {
	cols, ok := s.columns[table]
	if !ok {
		return nil, nil
	}
	var names []string
	var exprs []string
	for _, c := range knownTables[table] {
		if cols[c.name] {
			names = append(names, c.name)
			exprs = append(exprs, fmt.Sprintf("CAST(%q AS TEXT)", c.name))
		}
	}
	q := fmt.Sprintf("SELECT rowid, %s FROM %q ORDER BY rowid", strings.Join(exprs, ", "), table)
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var out []row
	dest := make([]any, len(names)+1)
	vals := make([]sql.NullString, len(names))
	for rows.Next() {
		var r row
		dest[0] = &r.rowid
		for i := range vals {
			dest[i+1] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		r.vals = make(map[string]string, len(names))
		for i, n := range names {
			if vals[i].Valid {
				r.vals[n] = vals[i].String
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}
