package handlers

import (
	"context"
	"errors"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// decideOnView runs a command whose rules span several aggregates (project aliases, chunk
// ids): it waits until the projections have applied the last event on filter, lets decide read
// them, and appends what decide returns only if no event on filter came in meanwhile. A
// command that meets such an event is decided again, up to maxViewRetries times.
func (s *Server) decideOnView(ctx context.Context, filter string, decide func() ([]domain.Event, error)) (eventstore.Appended, error) {
	const maxViewRetries = 3
	for attempt := 0; ; attempt++ {
		last, err := s.Store.LastSeqOf(ctx, filter)
		if err != nil {
			return eventstore.Appended{}, err
		}
		if err := s.waitApplied(ctx, last); err != nil {
			return eventstore.Appended{}, err
		}
		evs, err := decide()
		if err != nil || len(evs) == 0 {
			return eventstore.Appended{Seq: last}, err
		}
		res, err := s.Store.AppendFor(ctx, filter, last, evs...)
		if errors.Is(err, domain.ErrConflict) && attempt < maxViewRetries {
			continue
		}
		if err != nil {
			return res, err
		}
		return res, s.waitApplied(ctx, res.Seq)
	}
}
