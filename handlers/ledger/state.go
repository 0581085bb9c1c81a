package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// SetState sets an entry of a project's state; the result's ID is the project's id.
func (l *Ledger) SetState(ctx context.Context, c Caller, note string, cmd domain.SetState) (Result, error) {
	return l.changeState(ctx, c, note, &cmd.Project, func(st domain.ProjectState, meta domain.Meta) ([]domain.Event, error) {
		return domain.DecideSetState(st, cmd, meta)
	})
}

// InvalidateState invalidates an entry of a project's state; the result's ID is the
// project's id.
func (l *Ledger) InvalidateState(ctx context.Context, c Caller, note string, cmd domain.InvalidateState) (Result, error) {
	return l.changeState(ctx, c, note, &cmd.Project, func(st domain.ProjectState, meta domain.Meta) ([]domain.Event, error) {
		ev, err := domain.DecideInvalidateState(st, cmd, meta)
		return []domain.Event{ev}, err
	})
}

// changeState resolves *project (required) in place and decides on that project's state,
// under its consistency boundary.
func (l *Ledger) changeState(ctx context.Context, c Caller, note string, project *string,
	decide func(domain.ProjectState, domain.Meta) ([]domain.Event, error)) (Result, error) {
	p, err := l.Project(*project)
	if err == nil && p == "" {
		err = domain.Invalid("project", "is required")
	}
	if err != nil {
		return Result{}, err
	}
	*project = p
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	subject, _ := eventstore.AggregateSubject(domain.KindState, p)
	res, err := l.onView(ctx, subject, func() ([]domain.Event, error) {
		st, err := l.DB.ProjectState(p)
		if err != nil {
			return nil, err
		}
		return decide(st, meta)
	})
	res.ID = p
	return res, err
}
