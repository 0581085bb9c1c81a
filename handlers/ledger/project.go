package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// RegisterProject registers a project under the consistency boundary of every project
// (aliases are unique across projects).
func (l *Ledger) RegisterProject(ctx context.Context, c Caller, note string, cmd domain.RegisterProject) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	cmd.ID = strings.TrimSpace(cmd.ID)
	res, err := l.onView(ctx, eventstore.ProjectSubjects, func() ([]domain.Event, error) {
		if err := l.checkAliasesFree(cmd.Aliases); err != nil {
			return nil, err
		}
		reg, err := l.DB.Registry()
		if err != nil {
			return nil, err
		}
		ev, err := domain.DecideRegisterProject(reg, cmd, meta)
		return []domain.Event{ev}, err
	})
	res.ID = cmd.ID
	return res, err
}

// UpdateProject changes the aliases and/or the description of project cmd.ID (an id or an
// alias).
func (l *Ledger) UpdateProject(ctx context.Context, c Caller, note string, cmd domain.UpdateProject) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	if cmd.ID, err = l.DB.ResolveProject(cmd.ID); err != nil {
		return Result{}, err
	}
	res, err := l.onView(ctx, eventstore.ProjectSubjects, func() ([]domain.Event, error) {
		if cmd.Aliases != nil {
			if err := l.checkAliasesFree(*cmd.Aliases); err != nil {
				return nil, err
			}
		}
		reg, err := l.DB.Registry()
		if err != nil {
			return nil, err
		}
		return domain.DecideUpdateProject(reg, cmd, meta)
	})
	res.ID = cmd.ID
	return res, err
}

// checkAliasesFree refuses aliases under which memories or state entries are already recorded:
// they would be hidden behind the project the alias leads to.
func (l *Ledger) checkAliasesFree(aliases []string) error {
	counts, err := l.DB.MemoryCounts()
	if err != nil {
		return err
	}
	for _, a := range aliases {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		state, err := l.DB.ListState(projections.StateFilter{Project: a, All: true})
		if err != nil {
			return err
		}
		if n := counts.ByProject[a]; n > 0 || len(state) > 0 {
			return fmt.Errorf("%d memories and %d state entries are recorded under project %q; register it as a project of its own rather than as an alias: %w",
				n, len(state), a, domain.ErrConflict)
		}
	}
	return nil
}
