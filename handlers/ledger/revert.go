package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// RevertFilter names a slice of the history: the memory events that match every field set.
// At least one must be.
type RevertFilter struct {
	// Actor is whom the changes were made for; Principal the token they came through.
	Actor     string `json:"actor,omitempty"`
	Principal string `json:"principal,omitempty"`
	// Actions are audit actions (created, promoted, ...); reverted entries are part of a
	// slice only when Actions names reverted.
	Actions []domain.Action `json:"actions,omitempty"`
	// Since and Until bound the events' times: at or after Since, before Until.
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// MemoryIDs are the memories whose events are in the slice.
	MemoryIDs []string `json:"memory_ids,omitempty"`
	// Project: events of memories in the project (an alias is resolved).
	Project string `json:"project,omitempty"`
	// CorrelationID: the events of a request (X-Correlation-ID).
	CorrelationID string `json:"correlation_id,omitempty"`
	// NightlyRun: what a run of the nightly pipeline promoted and expired, named by its night
	// (YYYY-MM-DD: every run recorded for it) or by its log position.
	NightlyRun string `json:"nightly_run,omitempty"`
}

// RevertOptions qualify a revert.
type RevertOptions struct {
	// Apply writes the plan; without it the revert is a dry run that writes nothing.
	Apply bool
	// IncludeConflicts reverts the memories changed after the slice by something outside it
	// too (their later changes are undone with the slice's); by default they are skipped.
	IncludeConflicts bool
}

// Outcomes of a memory in a revert plan.
const (
	// RevertPlanned: a dry run would revert it.
	RevertPlanned = "revert"
	// RevertDone: the revert was written.
	RevertDone = "reverted"
	// RevertConflict: changed after the slice by events outside it; skipped.
	RevertConflict = "conflict"
	// RevertAlready: an earlier revert undid this slice's events already.
	RevertAlready = "already_reverted"
	// RevertUnchanged: the memory is in the state the revert would return it to.
	RevertUnchanged = "unchanged"
)

// EventRef is an event of a memory's history, as a revert plan names it.
type EventRef struct {
	Seq       uint64        `json:"seq"`
	EventID   string        `json:"event_id"`
	Action    domain.Action `json:"action"`
	Actor     string        `json:"actor"`
	Timestamp time.Time     `json:"timestamp"`
	Note      string        `json:"note"`
}

// RevertItem is one memory of a revert plan.
type RevertItem struct {
	MemoryID string `json:"memory_id"`
	Outcome  string `json:"outcome"`
	// Current is the memory now (before the revert, in a plan that applied it).
	Current json.RawMessage `json:"current"`
	// RevertTo is the state the revert returns it to: its state just before the slice's
	// first event, or, for a memory the slice created, its current state invalidated.
	RevertTo json.RawMessage `json:"revert_to"`
	// UndoesCreation: the slice created the memory; the revert invalidates it.
	UndoesCreation bool `json:"undoes_creation"`
	// Changes are the fields the revert changes.
	Changes []string `json:"changes"`
	// Undoes are the slice's events on the memory; Conflicts the later events outside it.
	Undoes    []EventRef `json:"undoes"`
	Conflicts []EventRef `json:"conflicts"`
	// Seq is the log position of the revert's event, once written.
	Seq uint64 `json:"seq,omitempty"`

	target  domain.Memory
	current domain.Memory
	undoIDs []string
}

// RevertCounts count a plan's memories by outcome.
type RevertCounts struct {
	Touched         int `json:"touched"`
	Planned         int `json:"revert"`
	Reverted        int `json:"reverted"`
	Conflicts       int `json:"conflicts"`
	AlreadyReverted int `json:"already_reverted"`
	Unchanged       int `json:"unchanged"`
}

// RevertPlan is the answer of a revert: every memory the slice touched and what the revert
// does (or, in a dry run, would do) to it.
type RevertPlan struct {
	DryRun           bool         `json:"dry_run"`
	IncludeConflicts bool         `json:"include_conflicts"`
	Filter           RevertFilter `json:"filter"`
	// AtSeq is the log position the plan was read at.
	AtSeq    uint64       `json:"at_seq"`
	Counts   RevertCounts `json:"counts"`
	Memories []RevertItem `json:"memories"`
}

// maxRevertAttempts is how often Revert plans again when a memory of its plan changed between
// the plan and the append.
const maxRevertAttempts = 3

// Revert undoes a slice of the history (f), memory by memory, as new events: each memory the
// slice touched returns to its state just before the slice's first event on it, in one
// memory.reverted event that names the events it undoes, with the caller as actor and note as
// the reason; a memory the slice created is invalidated. A memory changed after the slice by
// an event outside it is a conflict, skipped unless o.IncludeConflicts. Without o.Apply it
// writes nothing and answers the plan. The plan is read from the views once they have applied
// the whole log; its events are appended pipelined, each expecting its memory's position in
// the plan, so a memory changed meanwhile makes Revert plan again. Reverting the same slice
// again writes nothing: its memories are already reverted. Only an admin may revert, or see
// the plan (ErrForbidden otherwise).
func (l *Ledger) Revert(ctx context.Context, c Caller, note string, f RevertFilter, o RevertOptions) (RevertPlan, error) {
	if err := c.allow(domain.ActionReverted); err != nil {
		return RevertPlan{}, err
	}
	meta, err := l.meta(c, note, "")
	if err != nil {
		return RevertPlan{}, err
	}
	of, err := l.revertSlices(&f)
	if err != nil {
		return RevertPlan{}, err
	}
	if meta.Note == "" {
		meta.Note = "revert: " + f.describe()
		if r := []rune(meta.Note); len(r) > l.Rules.MaxNoteLength {
			meta.Note = string(r[:l.Rules.MaxNoteLength-1]) + "…"
		}
	}
	written := map[string]uint64{} // memory id → position of its revert
	for attempt := 1; ; attempt++ {
		if err := l.CaughtUp(ctx); err != nil {
			return RevertPlan{}, err
		}
		plan, err := l.planRevert(f, o, of)
		if err != nil || !o.Apply {
			return plan, err
		}
		var prepared []eventstore.Prepared
		var items []int
		for i := range plan.Memories {
			it := &plan.Memories[i]
			if it.Outcome != RevertPlanned {
				continue
			}
			m := meta
			m.EventID = NewID()
			evs, err := l.Rules.Decide(it.current, it.MemoryID,
				domain.RevertMemory{To: it.target, Undoes: it.undoIDs, UndoesCreation: it.UndoesCreation}, m)
			if err != nil {
				return plan, fmt.Errorf("revert memory %s: %w", it.MemoryID, err)
			}
			for _, ev := range evs {
				prepared = append(prepared, eventstore.Prepared{Event: ev, Expected: it.current.Seq})
				items = append(items, i)
			}
		}
		var last uint64
		err = l.Store.AppendPipelined(ctx, prepared, 0, func(k int, a eventstore.Appended) {
			written[plan.Memories[items[k]].MemoryID] = a.Seq
			last = max(last, a.Seq)
		})
		if errors.Is(err, domain.ErrConflict) && attempt < maxRevertAttempts {
			continue // a memory moved on: plan again, finding what was written reverted
		}
		if err != nil {
			return plan, fmt.Errorf("revert: %w", err)
		}
		if last > 0 {
			if err := l.Wait(ctx, last); err != nil {
				return plan, err
			}
		}
		plan.DryRun = false
		for i := range plan.Memories {
			it := &plan.Memories[i]
			if seq, ok := written[it.MemoryID]; ok {
				it.Outcome, it.Seq = RevertDone, seq
			}
		}
		plan.Counts = countOutcomes(plan.Memories)
		return plan, nil
	}
}

// revertSlices checks f and normalises it in place (the actor, the project resolved), and
// returns the slices of the audit it names.
func (l *Ledger) revertSlices(f *RevertFilter) ([]projections.AuditSlice, error) {
	if f.Actor == "" && f.Principal == "" && len(f.Actions) == 0 && f.Since == nil && f.Until == nil &&
		len(f.MemoryIDs) == 0 && f.Project == "" && f.CorrelationID == "" && f.NightlyRun == "" {
		return nil, domain.Invalid("filter", "names no slice of the history: set at least one of actor, principal, actions, since, until, memory_ids, project, correlation_id, nightly_run")
	}
	s := projections.AuditSlice{Actor: f.Actor, Principal: f.Principal}
	for field, v := range map[string]string{"actor": f.Actor, "principal": f.Principal} {
		if v == "" {
			continue
		}
		if err := domain.CheckActor(v); err != nil {
			return nil, domain.Invalid(field, "%q is not a name an actor or a token can have", v)
		}
	}
	for _, a := range f.Actions {
		if !slices.Contains(domain.Actions, a) {
			return nil, domain.Invalid("actions", "unknown action %q; the actions are %s", a, joinActions(domain.Actions))
		}
	}
	s.Actions = f.Actions
	if f.Since != nil {
		s.Since = f.Since.UTC()
	}
	if f.Until != nil {
		s.Until = f.Until.UTC()
	}
	if f.Since != nil && f.Until != nil && !s.Since.Before(s.Until) {
		return nil, domain.Invalid("until", "%s is not after since %s: the time range is empty", s.Until.Format(time.RFC3339Nano), s.Since.Format(time.RFC3339Nano))
	}
	for _, id := range f.MemoryIDs {
		if !domain.IsToken(id) {
			return nil, domain.Invalid("memory_ids", "%q cannot name a memory", id)
		}
	}
	s.MemoryIDs = f.MemoryIDs
	if f.Project != "" {
		p, err := l.Project(f.Project)
		if err != nil {
			return nil, err
		}
		f.Project, s.Project = p, p
	}
	if err := domain.CheckRef("correlation_id", f.CorrelationID); err != nil {
		return nil, err
	}
	s.CorrelationID = f.CorrelationID
	if f.NightlyRun == "" {
		return []projections.AuditSlice{s}, nil
	}
	return l.nightlySlices(s, f.NightlyRun)
}

// nightlySlices narrows s to what the nightly runs named by run (a night or a log position)
// did to memories: each successful step's events on the memories its summary lists, by the
// step's actor, from the step's start up to the run's record.
func (l *Ledger) nightlySlices(s projections.AuditSlice, run string) ([]projections.AuditSlice, error) {
	var runs []projections.NightlyRun
	if seq, err := strconv.ParseUint(run, 10, 64); err == nil {
		r, err := l.DB.NightlyRunAt(seq)
		if err != nil {
			return nil, err
		}
		if r != nil {
			runs = append(runs, *r)
		}
	} else if _, err := time.Parse(time.DateOnly, run); err == nil {
		if runs, err = l.DB.NightlyRunsFor(run); err != nil {
			return nil, err
		}
	} else {
		return nil, domain.Invalid("nightly_run", "%q is neither a night (like 2026-11-30) nor a run's log position", run)
	}
	out := []projections.AuditSlice{}
	for _, r := range runs {
		for _, step := range r.Steps {
			ids := summaryIDs(step.Summary)
			if step.Status != domain.StepOK || len(ids) == 0 || (s.Actor != "" && s.Actor != step.Actor) {
				continue
			}
			n := s
			n.Actor, n.MaxSeq = step.Actor, r.Seq
			if len(s.MemoryIDs) > 0 {
				ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(s.MemoryIDs, id) })
				if len(ids) == 0 {
					continue
				}
			}
			n.MemoryIDs = ids
			if n.Since.IsZero() || n.Since.Before(step.StartedAt) {
				n.Since = step.StartedAt
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// summaryIDs are the memory ids a nightly step's summary lists (promoted, expired).
func summaryIDs(summary map[string]any) []string {
	var out []string
	for _, key := range []string{"promoted", "expired"} {
		list, _ := summary[key].([]any)
		for _, v := range list {
			if id, ok := v.(string); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// planRevert reads what the slices touched from the views and decides, memory by memory,
// what a revert does.
func (l *Ledger) planRevert(f RevertFilter, o RevertOptions, of []projections.AuditSlice) (RevertPlan, error) {
	plan := RevertPlan{DryRun: true, IncludeConflicts: o.IncludeConflicts, Filter: f, Memories: []RevertItem{}}
	if len(of) == 0 {
		// A nightly run that changed no memory.
		return plan, nil
	}
	hs, err := l.DB.HistorySlice(of...)
	if err != nil {
		return plan, err
	}
	plan.AtSeq = hs.AtSeq
	for _, m := range hs.Memories {
		it, err := planMemory(m, o)
		if err != nil {
			return plan, err
		}
		plan.Memories = append(plan.Memories, it)
	}
	plan.Counts = countOutcomes(plan.Memories)
	return plan, nil
}

// planMemory decides what a revert does to one memory the slice touched.
func planMemory(m projections.SliceMemory, o RevertOptions) (RevertItem, error) {
	it := RevertItem{MemoryID: m.ID, Current: m.Current, Undoes: []EventRef{}, Conflicts: []EventRef{}, Changes: []string{}}
	if err := json.Unmarshal(m.Current, &it.current); err != nil {
		return it, fmt.Errorf("memory %s: %w", m.ID, err)
	}
	first := slices.Index(m.InSlice, true)
	var sliceIDs []string
	for i, e := range m.Entries[first:] {
		ref := EventRef{Seq: e.Seq, EventID: e.EventID, Action: e.Action, Actor: e.Actor, Timestamp: e.Timestamp, Note: e.Note}
		if m.InSlice[first+i] {
			it.Undoes = append(it.Undoes, ref)
			sliceIDs = append(sliceIDs, e.EventID)
			continue
		}
		if e.Action == domain.ActionReverted && containsAll(e.Undoes, sliceIDs) {
			it.Outcome = RevertAlready
		}
		it.Conflicts = append(it.Conflicts, ref)
	}
	start := m.Entries[first]
	it.UndoesCreation = string(start.Before) == "null"
	if it.UndoesCreation {
		it.target = it.current
		it.target.Status = domain.StatusInvalid
	} else if err := json.Unmarshal(start.Before, &it.target); err != nil {
		return it, fmt.Errorf("memory %s before %d: %w", m.ID, start.Seq, err)
	}
	target := it.current
	target.MemoryType, target.Content, target.Project, target.Status = it.target.MemoryType, it.target.Content, it.target.Project, it.target.Status
	target.Confidence, target.ReferenceCount, target.LastReferencedAt = it.target.Confidence, it.target.ReferenceCount, it.target.LastReferencedAt
	target.DomainTags, target.ValidUntil, target.SupersededBy = it.target.DomainTags, it.target.ValidUntil, it.target.SupersededBy
	revertTo, err := target.AppendJSON(nil)
	if err != nil {
		return it, err
	}
	it.RevertTo = revertTo
	if it.Outcome == RevertAlready {
		return it, nil
	}
	it.undoIDs = sliceIDs
	for _, c := range it.Conflicts {
		if o.IncludeConflicts {
			it.undoIDs = append(it.undoIDs, c.EventID)
		}
	}
	if ch := domain.RevertChanges(it.current, it.target); len(ch) > 0 {
		it.Changes = ch
	}
	switch {
	case len(it.Conflicts) > 0 && !o.IncludeConflicts:
		it.Outcome = RevertConflict
	case len(it.Changes) == 0:
		it.Outcome = RevertUnchanged
	default:
		it.Outcome = RevertPlanned
	}
	return it, nil
}

func countOutcomes(items []RevertItem) RevertCounts {
	c := RevertCounts{Touched: len(items)}
	for _, it := range items {
		switch it.Outcome {
		case RevertPlanned:
			c.Planned++
		case RevertDone:
			c.Reverted++
		case RevertConflict:
			c.Conflicts++
		case RevertAlready:
			c.AlreadyReverted++
		case RevertUnchanged:
			c.Unchanged++
		}
	}
	return c
}

// containsAll reports whether every one of want is in have.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return len(want) > 0
}

func joinActions(as []domain.Action) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = string(a)
	}
	return strings.Join(parts, ", ")
}

// describe is the filter in words, for the note of a revert given none.
func (f RevertFilter) describe() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+" "+v)
		}
	}
	add("actor", f.Actor)
	add("principal", f.Principal)
	if len(f.Actions) > 0 {
		add("actions", joinActions(f.Actions))
	}
	if f.Since != nil {
		add("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Until != nil {
		add("until", f.Until.UTC().Format(time.RFC3339))
	}
	if len(f.MemoryIDs) > 0 {
		add("memories", strings.Join(f.MemoryIDs, ", "))
	}
	add("project", f.Project)
	add("correlation id", f.CorrelationID)
	add("nightly run", f.NightlyRun)
	return strings.Join(parts, ", ")
}
