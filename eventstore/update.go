package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/memledger/memledger/domain"
)

// maxRetries is how often Update re-reads and re-decides an unconditional command whose
// append met a concurrent change.
const maxRetries = 3

// UpdateOptions qualify an Update.
type UpdateOptions struct {
	// IfMatch, when set, is the version (log position) the caller last saw: the command is
	// refused with domain.ErrPrecondition if the memory has moved on, and with
	// domain.ErrConflict if it moves on between the read and the append.
	IfMatch *uint64
	// New skips the read for a memory id that was just generated: it has no events.
	New bool
}

// UpdateMemory is the one path of every memory command: it loads memory id, folds its events,
// lets decide check the command against that state, and appends the events decide returns
// with the fold's position as the expected one. It returns the state after the append (the
// state read when decide returned no event) and the append's result.
func (s *Store) UpdateMemory(ctx context.Context, id string, opts UpdateOptions,
	decide func(domain.Memory) ([]domain.Event, error)) (domain.Memory, Appended, error) {
	for attempt := 0; ; attempt++ {
		var m domain.Memory
		var last uint64
		if !opts.New {
			evs, seq, err := s.Load(ctx, "memory", id)
			if err != nil {
				return m, Appended{}, err
			}
			for _, ev := range evs {
				m = domain.ApplyMemory(m, ev)
			}
			last = seq
		}
		if opts.IfMatch != nil && *opts.IfMatch != last {
			return m, Appended{}, fmt.Errorf("memory %s is at version %d, not %d: %w", id, last, *opts.IfMatch, domain.ErrPrecondition)
		}
		evs, err := decide(m)
		if err != nil {
			return m, Appended{}, err
		}
		if len(evs) == 0 {
			return m, Appended{Seq: last}, nil
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
