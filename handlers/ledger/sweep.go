package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// AutoPromote promotes every candidate that cmd's thresholds allow and returns their ids.
func (l *Ledger) AutoPromote(ctx context.Context, c Caller, note string, cmd domain.AutoPromoteMemory) ([]string, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return nil, err
	}
	return l.sweepCandidates(ctx, cmd, meta, func(m domain.Memory) bool {
		return m.ReferenceCount >= cmd.MinReferenceCount && m.Confidence >= cmd.MinConfidence
	})
}

// ExpireCandidates invalidates every stale candidate cmd names and returns their ids. A zero
// cmd.Now is the command's time.
func (l *Ledger) ExpireCandidates(ctx context.Context, c Caller, note string, cmd domain.ExpireMemory) ([]string, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return nil, err
	}
	if cmd.Now.IsZero() {
		cmd.Now = meta.Time
	}
	return l.sweepCandidates(ctx, cmd, meta, func(m domain.Memory) bool {
		return m.ReferenceCount == 0 && !m.CreatedAt.After(cmd.Now.Add(-cmd.MaxAge))
	})
}

// sweepCandidates applies cmd to each candidate that match selects, in creation order, and
// waits for the projections to apply the last. The domain decides again on each memory's
// folded state; one that changed meanwhile and no longer qualifies is left alone.
func (l *Ledger) sweepCandidates(ctx context.Context, cmd domain.Command, meta domain.Meta, match func(domain.Memory) bool) ([]string, error) {
	candidates, err := l.DB.MemoriesOldestFirst(projections.MemoryFilter{Status: domain.StatusCandidate})
	if err != nil {
		return nil, err
	}
	var selected []string
	for _, m := range candidates {
		if match(m) {
			selected = append(selected, m.ID)
		}
	}
	changed := []string{}
	var last uint64
	for _, id := range selected {
		m := meta
		m.EventID = NewID()
		_, res, err := updateMemory(ctx, l.Store, id, updateOptions{},
			func(mem domain.Memory) ([]domain.Event, error) { return l.Rules.Decide(mem, id, cmd, m) })
		if errors.Is(err, domain.ErrConflict) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("%s memory %s: %w", meta.Actor, id, err)
		}
		changed = append(changed, id)
		last = max(last, res.Seq)
	}
	return changed, l.Wait(ctx, last)
}
