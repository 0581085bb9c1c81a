package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// MemoryOptions qualify a memory command.
type MemoryOptions struct {
	// IdempotencyKey, when set, is the id of the command's event: a command whose key is
	// already in the ledger writes nothing and is answered with that event's result.
	IdempotencyKey string
	// IfMatch, when set, is the version (log position) the caller last saw: the command is
	// refused with domain.ErrPrecondition if the memory has moved on, and with
	// domain.ErrConflict if it moves on between the read and the append.
	IfMatch *uint64
}

// MemoryResult is a memory after a command.
type MemoryResult struct {
	Memory domain.Memory
	// JSON is the memory as the API serves it.
	JSON json.RawMessage
	// Seq is the memory's version: the log position of its last event.
	Seq uint64
	// Created is true for a new memory.
	Created bool
	// Replayed is true when the answer is the recorded one of an earlier command with the
	// same idempotency key, and nothing was written.
	Replayed bool
}

// CreateMemory records a new memory, its project normalised and resolved, under a new id.
func (l *Ledger) CreateMemory(ctx context.Context, c Caller, note string, cmd domain.CreateMemory, o MemoryOptions) (MemoryResult, error) {
	meta, err := l.meta(c, note, o.IdempotencyKey)
	if err != nil {
		return MemoryResult{}, err
	}
	if cmd.Project, err = l.Project(cmd.Project); err != nil {
		return MemoryResult{}, err
	}
	return l.memory(ctx, meta, NewID(), cmd, o)
}

// ChangeMemory carries out cmd (an update, promote, reject, invalidate, supersede or
// reinforce) on memory id. An id that no memory can have is domain.ErrNotFound, as an id
// that none has.
func (l *Ledger) ChangeMemory(ctx context.Context, c Caller, note, id string, cmd domain.Command, o MemoryOptions) (MemoryResult, error) {
	meta, err := l.meta(c, note, o.IdempotencyKey)
	if err != nil {
		return MemoryResult{}, err
	}
	if s, ok := cmd.(domain.SupersedeMemory); ok {
		if err := l.checkSuperseding(id, s.SupersededBy); err != nil {
			return MemoryResult{}, err
		}
	}
	return l.memory(ctx, meta, id, cmd, o)
}

// checkSuperseding refuses a supersession of a memory that does not exist, or by one that
// does not.
func (l *Ledger) checkSuperseding(id, by string) error {
	if !domain.IsToken(id) {
		return fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	self, err := l.DB.GetMemory(id)
	if err != nil {
		return err
	}
	if self == nil {
		return fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	if by == "" || by == id {
		return nil
	}
	other, err := l.DB.GetMemory(by)
	if err != nil {
		return err
	}
	if other == nil {
		return domain.Invalid("superseded_by", "memory %q does not exist", by)
	}
	return nil
}

// memory carries out one command on memory id and answers once the projections have applied
// it. A command whose idempotency key names an event already in the ledger gets that event's
// answer and writes nothing.
func (l *Ledger) memory(ctx context.Context, meta domain.Meta, id string, cmd domain.Command, o MemoryOptions) (MemoryResult, error) {
	_, isCreate := cmd.(domain.CreateMemory)
	keyed := o.IdempotencyKey != ""
	if keyed {
		if res, ok, err := l.recorded(meta.EventID, id, cmd); ok || err != nil {
			return res, err
		}
	}
	if !domain.IsToken(id) {
		// No memory can have such an id.
		return MemoryResult{}, fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	m, res, err := updateMemory(ctx, l.Store, id, updateOptions{IfMatch: o.IfMatch, New: isCreate},
		func(m domain.Memory) ([]domain.Event, error) { return l.Rules.Decide(m, id, cmd, meta) })
	if err != nil && keyed && (errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrPrecondition)) {
		// The first try of this command may be in the log but not yet in the projections:
		// once they have caught up, its answer is the answer.
		if l.CaughtUp(ctx) == nil {
			if res, ok, rerr := l.recorded(meta.EventID, id, cmd); ok || rerr != nil {
				return res, rerr
			}
		}
	}
	if err != nil {
		return MemoryResult{}, err
	}
	if err := l.Wait(ctx, res.Seq); err != nil {
		return MemoryResult{}, err
	}
	if res.Duplicate {
		// The key names an event already in the log: this command's first try, or another's.
		out, ok, err := l.recorded(meta.EventID, id, cmd)
		if err == nil && !ok {
			err = fmt.Errorf("Idempotency-Key %q was already used for another request: %w", meta.EventID, domain.ErrConflict)
		}
		return out, err
	}
	data, err := m.AppendJSON(make([]byte, 0, 512+len(m.Content)))
	if err != nil {
		return MemoryResult{}, err
	}
	return MemoryResult{Memory: m, JSON: data, Seq: m.Seq, Created: isCreate}, nil
}

// recorded is the answer of a retried command from the audit entry of its event, when the
// ledger has it (ok). A key used for another command is domain.ErrConflict.
func (l *Ledger) recorded(eventID, id string, cmd domain.Command) (MemoryResult, bool, error) {
	_, isCreate := cmd.(domain.CreateMemory)
	data, err := l.DB.AuditByEventID(eventID)
	if err != nil || data == nil {
		return MemoryResult{}, false, err
	}
	var e projections.AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return MemoryResult{}, false, err
	}
	if !slices.Contains(domain.ActionsOf(cmd), e.Action) || (!isCreate && e.MemoryID != id) {
		return MemoryResult{}, false, fmt.Errorf("Idempotency-Key %q was already used for another request (%s memory %s): %w",
			eventID, e.Action, e.MemoryID, domain.ErrConflict)
	}
	res := MemoryResult{JSON: e.After, Seq: e.Seq, Created: isCreate, Replayed: true}
	if err := json.Unmarshal(e.After, &res.Memory); err != nil {
		return MemoryResult{}, false, err
	}
	return res, true, nil
}

// maxRetries is how often updateMemory re-reads and re-decides an unconditional command
// whose append met a concurrent change.
const maxRetries = 3

// updateOptions qualify an updateMemory.
type updateOptions struct {
	// IfMatch, when set, is the version the caller last saw (see MemoryOptions.IfMatch).
	IfMatch *uint64
	// New skips the read for a memory id that was just generated: it has no events.
	New bool
}

// updateMemory is the one loop of every memory command: it loads memory id, folds its
// events, lets decide check the command against that state, and appends the events decide
// returns with the fold's position as the expected one. It returns the state after the
// append (the state read when decide returned no event) and the append's result.
func updateMemory(ctx context.Context, s *eventstore.Store, id string, opts updateOptions,
	decide func(domain.Memory) ([]domain.Event, error)) (domain.Memory, eventstore.Appended, error) {
	for attempt := 0; ; attempt++ {
		var m domain.Memory
		var last uint64
		if !opts.New {
			evs, seq, err := s.Load(ctx, domain.KindMemory, id)
			if err != nil {
				return m, eventstore.Appended{}, err
			}
			for _, ev := range evs {
				m = domain.ApplyMemory(m, ev)
			}
			last = seq
		}
		if opts.IfMatch != nil && *opts.IfMatch != last {
			return m, eventstore.Appended{}, fmt.Errorf("memory %s is at version %d, not %d: %w", id, last, *opts.IfMatch, domain.ErrPrecondition)
		}
		evs, err := decide(m)
		if err != nil {
			return m, eventstore.Appended{}, err
		}
		if len(evs) == 0 {
			return m, eventstore.Appended{Seq: last}, nil
		}
		res, err := s.Append(ctx, last, evs...)
		if errors.Is(err, domain.ErrConflict) && opts.IfMatch == nil && !opts.New && attempt < maxRetries {
			continue
		}
		if err != nil {
			return m, res, err
		}
		if res.Duplicate {
			// The events were stored by an earlier try; m may already hold them.
			return m, res, nil
		}
		for _, ev := range evs {
			m = domain.ApplyMemory(m, ev)
		}
		return m, res, nil
	}
}
