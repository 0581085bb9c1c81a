package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// ImportOptions qualify an Import.
type ImportOptions struct {
	// Progress, when set, is called as the import goes: done of total events handled.
	Progress func(done, total int)
}

// ImportConflict is an aggregate an Import left alone: the ledger holds another history for it.
type ImportConflict struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// ImportResult says what an Import did.
type ImportResult struct {
	// Written is how many events were appended; Present how many the ledger already held
	// (by their ids: an earlier import of the same source).
	Written, Present int
	// Conflicts are the aggregates whose events were not appended, and why.
	Conflicts []ImportConflict
	// LastSeq is the log position the projections have applied when Import returns.
	LastSeq uint64
}

// importKinds are the kinds of aggregate an import may write.
var importKinds = []string{domain.KindProject, domain.KindDocument, domain.KindState, domain.KindMemory}

// Import appends prepared events: an importer's, each with its own id, actor, note and time
// (the source's), in the order given (several aggregates interleaved). Before writing
// anything it loads each aggregate's events: those of the prepared events the aggregate
// already holds (by id, as a prefix of its history) are present and skipped, an aggregate
// whose history is another is left alone and reported, and every remaining event must fold
// cleanly on the aggregate's state (domain.Rules.CheckImported for memories; for projects,
// state and documents the checks of their commands). Any event that does not is an error and
// nothing is written. The events are then appended pipelined (eventstore.AppendPipelined),
// each with the expected position of its aggregate's previous event (of every project, or
// every document, for those whose rules span them), so a concurrent writer makes the import
// fail rather than interleave (run again, it finds what it wrote); and Import returns once the
// projections have applied the last one.
func (l *Ledger) Import(ctx context.Context, c Caller, evs []domain.Event, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if err := domain.CheckActor(c.Actor); err != nil {
		return res, err
	}
	last, err := l.Store.LastSeq(ctx)
	if err != nil {
		return res, err
	}
	type aggregate struct {
		kind, id string
		events   []int // indexes into evs
		seq      uint64
		stored   []domain.Event
		skip     bool
	}
	aggs := map[[2]string]*aggregate{}
	var order []*aggregate
	for i, ev := range evs {
		if !slices.Contains(importKinds, ev.Kind()) {
			return res, domain.Invalid("type", "event %s: an import writes project, document, state and memory events, not %s", ev.ID, ev.Type)
		}
		if !domain.IsToken(ev.AggregateID) {
			return res, domain.Invalid("aggregate_id", "event %s: %q cannot name an aggregate", ev.ID, ev.AggregateID)
		}
		k := [2]string{ev.Kind(), ev.AggregateID}
		a, ok := aggs[k]
		if !ok {
			a = &aggregate{kind: k[0], id: k[1]}
			aggs[k] = a
			order = append(order, a)
		}
		a.events = append(a.events, i)
	}
	// What the ledger holds of each aggregate (nothing, in an empty ledger).
	if last > 0 {
		for _, a := range order {
			if a.stored, a.seq, err = l.Store.Load(ctx, a.kind, a.id); err != nil {
				return res, fmt.Errorf("import: load %s %s: %w", a.kind, a.id, err)
			}
		}
	}
	pending := make([]bool, len(evs))
	registry, err := l.DB.Registry()
	if err != nil {
		return res, err
	}
	for _, a := range order {
		n := 0
		for n < len(a.stored) && n < len(a.events) && a.stored[n].ID == evs[a.events[n]].ID {
			n++
		}
		if n < len(a.stored) && n < len(a.events) || (n == 0 && len(a.stored) > 0) {
			a.skip = true
			res.Conflicts = append(res.Conflicts, ImportConflict{Kind: a.kind, ID: a.id,
				Reason: fmt.Sprintf("the ledger holds %d events of it that this import did not write", len(a.stored)-n)})
			continue
		}
		res.Present += n
		if err := l.checkImported(a.kind, a.id, a.stored, evs, a.events[n:], registry); err != nil {
			return ImportResult{}, err
		}
		for _, i := range a.events[n:] {
			pending[i] = true
		}
	}
	// Append in the given order, pipelined: each event takes the log's next position, so the
	// expectation of each is the position its aggregate's previous event takes (of the last
	// project or document event, for those), and the server checks every one of them.
	filterSeq := map[string]uint64{}
	for _, filter := range []string{eventstore.ProjectSubjects, eventstore.DocumentSubjects} {
		if filterSeq[filter], err = l.Store.LastSeqOf(ctx, filter); err != nil {
			return res, err
		}
	}
	var items []eventstore.Prepared
	next := last
	for i := range evs {
		if !pending[i] {
			continue
		}
		ev := evs[i]
		a := aggs[[2]string{ev.Kind(), ev.AggregateID}]
		next++
		switch ev.Kind() {
		case domain.KindProject, domain.KindDocument:
			filter := eventstore.KindSubjects(ev.Kind())
			items = append(items, eventstore.Prepared{Event: ev, Expected: filterSeq[filter], Filter: filter})
			filterSeq[filter] = next
		default:
			items = append(items, eventstore.Prepared{Event: ev, Expected: a.seq})
		}
		a.seq = next
	}
	skipped := len(evs) - len(items)
	err = l.Store.AppendPipelined(ctx, items, 0, func(k int, ap eventstore.Appended) {
		if ap.Duplicate {
			res.Present++
		} else {
			res.Written++
		}
		res.LastSeq = max(res.LastSeq, ap.Seq)
		if o.Progress != nil {
			o.Progress(skipped+k+1, len(evs))
		}
	})
	if err != nil {
		if errors.Is(err, domain.ErrConflict) {
			err = fmt.Errorf("%w (another writer changed the ledger during the import, or it already held one of these events; run it again: what was written is recognised)", err)
		}
		return res, fmt.Errorf("import: %w", err)
	}
	if o.Progress != nil {
		o.Progress(len(evs), len(evs))
	}
	if res.LastSeq == 0 {
		res.LastSeq = last
	}
	// An import can be long: the projections are waited for as long as ctx allows.
	if err := l.Runner.WaitFor(ctx, res.LastSeq); err != nil {
		return res, fmt.Errorf("import: wait for the projections: %w", err)
	}
	return res, nil
}

// checkImported checks that the events at idx fold cleanly on the aggregate's stored events.
func (l *Ledger) checkImported(kind, id string, stored, evs []domain.Event, idx []int, reg domain.Registry) error {
	fail := func(ev domain.Event, err error) error {
		return fmt.Errorf("import: event %s (%s of %s %s) does not fold on its state: %w", ev.ID, ev.Type, kind, id, err)
	}
	for _, i := range idx {
		ev := evs[i]
		if err := domain.CheckActor(ev.Actor); err != nil {
			return fail(ev, err)
		}
		if err := domain.CheckNote(ev.Note, l.Rules.MaxNoteLength); err != nil {
			return fail(ev, err)
		}
		if ev.ID == "" || ev.Time.IsZero() || ev.Data == nil {
			return fail(ev, domain.Invalid("event", "needs an id, a time and a payload"))
		}
	}
	switch kind {
	case domain.KindMemory:
		var m domain.Memory
		for _, ev := range stored {
			m = domain.ApplyMemory(m, ev)
		}
		for _, i := range idx {
			if err := l.Rules.CheckImported(m, evs[i]); err != nil {
				return fail(evs[i], err)
			}
			m = domain.ApplyMemory(m, evs[i])
		}
	case domain.KindProject:
		exists := len(stored) > 0
		for _, i := range idx {
			ev := evs[i]
			var aliases []string
			switch p := ev.Data.(type) {
			case domain.ProjectRegistered:
				if exists {
					return fail(ev, fmt.Errorf("project %s is already registered: %w", id, domain.ErrConflict))
				}
				aliases = p.Aliases
			case domain.ProjectUpdated:
				if !exists {
					return fail(ev, fmt.Errorf("project %s: %w", id, domain.ErrNotFound))
				}
				aliases = p.Aliases
			default:
				return fail(ev, domain.Invalid("type", "%s is not a project event", ev.Type))
			}
			if err := domain.CheckProjectID("id", id); err != nil || id == domain.SystemProject {
				return fail(ev, domain.Invalid("id", "%q is not a project id of its own", id))
			}
			for _, a := range aliases {
				if err := domain.CheckProjectID("aliases", a); err != nil {
					return fail(ev, err)
				}
				if owner := reg.Resolve(a); owner != a && owner != id {
					return fail(ev, fmt.Errorf("alias %q is already an alias of project %s: %w", a, owner, domain.ErrConflict))
				}
				if _, ok := reg[a]; ok && a != id {
					return fail(ev, fmt.Errorf("alias %q is already a project: %w", a, domain.ErrConflict))
				}
			}
			domain.ApplyProject(reg, ev)
			exists = true
		}
	case domain.KindState:
		for _, i := range idx {
			ev := evs[i]
			switch p := ev.Data.(type) {
			case domain.StateSet:
				if err := domain.CheckStateKey(id, p.Category, p.Key); err != nil {
					return fail(ev, err)
				}
				if p.Value == "" {
					return fail(ev, domain.Invalid("value", "must not be empty"))
				}
				if err := domain.CheckConfidence(p.Confidence); err != nil {
					return fail(ev, err)
				}
			case domain.StateInvalidated:
				if err := domain.CheckStateKey(id, p.Category, p.Key); err != nil {
					return fail(ev, err)
				}
			default:
				return fail(ev, domain.Invalid("type", "%s is not a state event", ev.Type))
			}
		}
	case domain.KindDocument:
		exists := false
		for _, ev := range stored {
			switch ev.Data.(type) {
			case domain.DocumentRecorded:
				exists = true
			case domain.DocumentDeleted:
				exists = false
			}
		}
		for _, i := range idx {
			ev := evs[i]
			var chunks []domain.Chunk
			switch p := ev.Data.(type) {
			case domain.DocumentRecorded:
				if exists {
					return fail(ev, fmt.Errorf("document %s already exists: %w", id, domain.ErrConflict))
				}
				if p.FilePath == "" {
					return fail(ev, domain.Invalid("file_path", "must not be empty"))
				}
				exists, chunks = true, p.Chunks
			case domain.ChunksAdded:
				chunks = p.Chunks
			default:
				return fail(ev, domain.Invalid("type", "%s is not an importable document event", ev.Type))
			}
			st, err := l.DB.DocumentState(id)
			if err != nil {
				return err
			}
			for _, ch := range chunks {
				if ch.ID == "" || ch.DocumentID != id || ch.Content == "" || ch.ChunkIndex < 0 {
					return fail(ev, domain.Invalid("chunks", "chunk %q needs an id, this document's id, content and an index", ch.ID))
				}
				if owner, ok := st.ChunkOwner(ch.ID); ok && owner != id {
					return fail(ev, fmt.Errorf("chunk %s already belongs to document %s: %w", ch.ID, owner, domain.ErrConflict))
				}
			}
		}
	}
	return nil
}
