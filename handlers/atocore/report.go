package atocore

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// TableSchema is what the importer found of one of AtoCore's tables.
type TableSchema struct {
	Table string `json:"table"`
	// Absent is true when the database has no such table.
	Absent bool `json:"absent,omitempty"`
	// MissingColumns are known columns the table lacks: their defaults are used.
	MissingColumns []string `json:"missing_columns,omitempty"`
	// UnknownColumns are columns the importer does not know: they are not imported.
	UnknownColumns []string `json:"unknown_columns,omitempty"`
	// DroppedColumns are known columns memledger has no field for, with why.
	DroppedColumns []string `json:"dropped_columns,omitempty"`
}

// Skipped is a source row the import leaves out, and why.
type Skipped struct {
	Table  string `json:"table"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Adjusted is a value the import changed to fit memledger's rules, and how.
type Adjusted struct {
	Table string `json:"table"`
	ID    string `json:"id"`
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Report says what an import read, what it made of it and what it wrote.
type Report struct {
	Database string        `json:"database"`
	DryRun   bool          `json:"dry_run"`
	Merge    bool          `json:"merge"`
	Schema   []TableSchema `json:"schema"`
	// RowsRead is the number of rows read per table (and registry entries as "registry").
	RowsRead map[string]int `json:"rows_read"`
	// Events is the number of events the source maps to, per event type.
	Events map[string]int `json:"events"`
	// EventsWritten is how many of them were appended; EventsPresent how many the ledger
	// already held (an earlier import of the same rows).
	EventsWritten int `json:"events_written"`
	EventsPresent int `json:"events_present"`
	// Memories is the number of memories imported; Reconciled lists those that needed a
	// reconciling event to reach the database's row, CreatedWithoutAudit those that had no
	// audit row at all.
	Memories            int      `json:"memories"`
	Reconciled          []string `json:"reconciled"`
	CreatedWithoutAudit int      `json:"created_without_audit"`
	// RemappedRows are audit rows recorded otherwise than their action (an action memledger
	// does not know, or a transition its state machine does not allow), counted per reason.
	RemappedRows map[string]int `json:"remapped_rows"`
	// MappedStatuses counts statuses memledger does not have, as "from → to".
	MappedStatuses map[string]int `json:"mapped_statuses"`
	// IgnoredSnapshotKeys counts keys of audit snapshots the importer does not know.
	IgnoredSnapshotKeys map[string]int `json:"ignored_snapshot_keys"`
	// SynthesizedCreates counts memories whose audit has rows but no created row: their
	// creation is made up from the memories row and the first row's before snapshot.
	SynthesizedCreates int `json:"synthesized_creates"`
	// OrphanedChunks are chunks whose document the database no longer has: imported as
	// chunks of that missing document, which memledger's integrity check reports.
	OrphanedChunks []string   `json:"orphaned_chunks"`
	Skipped        []Skipped  `json:"skipped"`
	Adjusted       []Adjusted `json:"adjusted"`
	// Integrity is the integrity findings of the ledger after the import, per check.
	Integrity map[string]int `json:"integrity,omitempty"`
	// Seconds is how long the import took; RowsPerSecond and EventsPerSecond its rates.
	Seconds         float64 `json:"seconds"`
	RowsPerSecond   float64 `json:"rows_per_second"`
	EventsPerSecond float64 `json:"events_per_second"`
}

func newReport(db string) *Report {
	return &Report{Database: db, RowsRead: map[string]int{}, Events: map[string]int{},
		RemappedRows: map[string]int{}, MappedStatuses: map[string]int{}, IgnoredSnapshotKeys: map[string]int{},
		Reconciled: []string{}, OrphanedChunks: []string{}, Skipped: []Skipped{}, Adjusted: []Adjusted{}}
}

func (r *Report) skip(table, id, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skipped{Table: table, ID: id, Reason: fmt.Sprintf(format, args...)})
}

func (r *Report) adjust(table, id, field, from, to string) {
	r.Adjusted = append(r.Adjusted, Adjusted{Table: table, ID: id, Field: field, From: from, To: to})
}

// TotalRows is the number of source rows read.
func (r *Report) TotalRows() int {
	n := 0
	for _, v := range r.RowsRead {
		n += v
	}
	return n
}

// TotalEvents is the number of events the source maps to.
func (r *Report) TotalEvents() int {
	n := 0
	for _, v := range r.Events {
		n += v
	}
	return n
}

// maxListed bounds the skipped and adjusted rows the text report lists one by one.
const maxListed = 50

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) {
	verb := "imported"
	if r.DryRun {
		verb = "would import (dry run, nothing written)"
	}
	fmt.Fprintf(w, "import-atocore %s: %s\n", r.Database, verb)
	for _, s := range r.Schema {
		switch {
		case s.Absent:
			fmt.Fprintf(w, "  table %s: absent\n", s.Table)
		default:
			fmt.Fprintf(w, "  table %s: %d rows read", s.Table, r.RowsRead[s.Table])
			if len(s.MissingColumns) > 0 {
				fmt.Fprintf(w, "; missing columns (defaults used): %s", strings.Join(s.MissingColumns, ", "))
			}
			if len(s.UnknownColumns) > 0 {
				fmt.Fprintf(w, "; unknown columns (not imported): %s", strings.Join(s.UnknownColumns, ", "))
			}
			if len(s.DroppedColumns) > 0 {
				fmt.Fprintf(w, "; not imported: %s", strings.Join(s.DroppedColumns, ", "))
			}
			fmt.Fprintln(w)
		}
	}
	if n, ok := r.RowsRead["registry"]; ok {
		fmt.Fprintf(w, "  registry: %d projects read\n", n)
	}
	fmt.Fprintf(w, "  events: %d mapped (%s)\n", r.TotalEvents(), countList(r.Events))
	if !r.DryRun {
		fmt.Fprintf(w, "  events written: %d, already in the ledger: %d\n", r.EventsWritten, r.EventsPresent)
	}
	fmt.Fprintf(w, "  memories: %d, %d created without audit rows, %d reconciled with their row\n",
		r.Memories, r.CreatedWithoutAudit, len(r.Reconciled))
	if r.SynthesizedCreates > 0 {
		fmt.Fprintf(w, "  memories whose audit has no created row (created from the row and the first before snapshot): %d\n", r.SynthesizedCreates)
	}
	if len(r.OrphanedChunks) > 0 {
		fmt.Fprintf(w, "  chunks whose document is gone (imported as orphaned chunks, an integrity finding): %s\n", strings.Join(r.OrphanedChunks, ", "))
	}
	if len(r.MappedStatuses) > 0 {
		fmt.Fprintf(w, "  statuses mapped: %s\n", countList(r.MappedStatuses))
	}
	if len(r.RemappedRows) > 0 {
		fmt.Fprintf(w, "  audit rows recorded otherwise: %s\n", countList(r.RemappedRows))
	}
	if len(r.IgnoredSnapshotKeys) > 0 {
		fmt.Fprintf(w, "  audit snapshot keys ignored: %s\n", countList(r.IgnoredSnapshotKeys))
	}
	fmt.Fprintf(w, "  skipped rows: %d\n", len(r.Skipped))
	for i, s := range r.Skipped {
		if i == maxListed {
			fmt.Fprintf(w, "    ... and %d more (see --json)\n", len(r.Skipped)-maxListed)
			break
		}
		fmt.Fprintf(w, "    %s %s: %s\n", s.Table, s.ID, s.Reason)
	}
	fmt.Fprintf(w, "  adjusted values: %d\n", len(r.Adjusted))
	for i, a := range r.Adjusted {
		if i == maxListed {
			fmt.Fprintf(w, "    ... and %d more (see --json)\n", len(r.Adjusted)-maxListed)
			break
		}
		fmt.Fprintf(w, "    %s %s %s: %q -> %q\n", a.Table, a.ID, a.Field, a.From, a.To)
	}
	if r.Integrity != nil {
		fmt.Fprintf(w, "  integrity findings after the import: %s\n", countList(r.Integrity))
	}
	if r.Seconds > 0 {
		fmt.Fprintf(w, "  %.1fs: %.0f rows/s, %.0f events/s\n", r.Seconds, r.RowsPerSecond, r.EventsPerSecond)
	}
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range slices.Compact(keys) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
