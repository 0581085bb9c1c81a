package atocore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/memledger/memledger/domain"
)

// Options are the settings of a mapping.
type Options struct {
	// Registry is the path of AtoCore's project registry file, or "".
	Registry string
	// Rules are the limits the memories are checked against (domain.DefaultRules, with the
	// service's --max-content).
	Rules domain.Rules
	// Now is the time of projects that have none in the source (the registry file's
	// modification time is used first).
	Now time.Time
}

// Plan is what a database maps to: the events to append, in order, and the report.
type Plan struct {
	// Events are in the order they are appended: projects, documents and chunks, project
	// state, then every memory event in the order of its time, so that the log (and the
	// recent audit, which follows it) is in the order things happened.
	Events []domain.Event
	// Memories is the state each imported memory has once its events are folded: the
	// database's row, as memledger holds it.
	Memories map[string]domain.Memory
	Report   *Report
}

// builder holds what a mapping has read so far.
type builder struct {
	opts            Options
	report          *Report
	projects        *projectSet
	registryTime    time.Time
	now             time.Time
	events          []domain.Event
	memEvents       []domain.Event
	memories        map[string]domain.Memory
	chunkIDs        map[string]string // chunk id → document id, of the chunks imported
	resolvedAliases int
}

// Build reads every table of src and maps the rows to events.
func Build(ctx context.Context, src *Source, opts Options) (*Plan, error) {
	if opts.Rules.MaxContentLength == 0 {
		opts.Rules = domain.DefaultRules()
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now().UTC()
	}
	b := &builder{opts: opts, report: newReport(src.Path), now: opts.Now.UTC(),
		memories: map[string]domain.Memory{}, chunkIDs: map[string]string{}}
	b.report.Schema = src.Schema()
	tables := map[string][]row{}
	for _, t := range tableOrder {
		rows, err := src.readTable(ctx, t)
		if err != nil {
			return nil, err
		}
		tables[t] = rows
		if _, ok := src.columns[t]; ok {
			b.report.RowsRead[t] = len(rows)
		}
	}
	if err := b.readProjects(tables["projects"], opts.Registry); err != nil {
		return nil, err
	}
	b.readDocuments(tables["source_documents"], tables["source_chunks"])
	if err := b.readState(tables["project_state"]); err != nil {
		return nil, err
	}
	b.readMemories(tables["memories"], tables["memory_audit"])
	if b.resolvedAliases > 0 {
		b.report.adjust("memories", "*", "project", fmt.Sprintf("%d project names that are aliases or AtoCore row ids", b.resolvedAliases), "their canonical project ids")
	}
	// Memory events go last, in the order of their time; a memory's own events keep their order.
	sort.SliceStable(b.memEvents, func(i, j int) bool { return b.memEvents[i].Time.Before(b.memEvents[j].Time) })
	b.events = append(b.events, b.memEvents...)
	for _, ev := range b.events {
		b.report.Events[ev.Type]++
	}
	b.report.Memories = len(b.memories)
	return &Plan{Events: b.events, Memories: b.memories, Report: b.report}, nil
}

func (b *builder) emit(ev domain.Event) { b.events = append(b.events, ev) }

// rowTime reads a time column of a row: def when the column is absent or NULL; a value that
// is not a time is reported and def used.
func (b *builder) rowTime(table, id, col string, r row, def time.Time) time.Time {
	v, ok := r.get(col)
	if !ok || v == "" {
		return def
	}
	t, err := parseTime(v)
	if err != nil {
		to := "(none)"
		if !def.IsZero() {
			to = def.Format(time.RFC3339Nano)
		}
		b.report.adjust(table, id, col, v, to)
		return def
	}
	return t
}
