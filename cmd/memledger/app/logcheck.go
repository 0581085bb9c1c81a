package app

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// LogLoss is what the log check finds when the log no longer holds events it acknowledged:
// positions missing inside the stream, before its first event, or after its last event up to
// what the projections applied. The stream denies delete and purge, so every one of them is
// an event lost from the disk.
type LogLoss struct {
	// Missing are the lost positions, in order.
	Missing []domain.SeqRange
	// State is what the stream holds.
	State eventstore.State
	// ProjectionsAt is the highest position a projection applied.
	ProjectionsAt uint64
	// Projection is the projection that applied it.
	Projection string
}

// Count is how many positions are missing.
func (l *LogLoss) Count() uint64 {
	var n uint64
	for _, r := range l.Missing {
		n += r.Len()
	}
	return n
}

// Held says whether the projections applied some of the missing events (and so still hold
// their effects).
func (l *LogLoss) Held() bool {
	return len(l.Missing) > 0 && l.Missing[0].From <= l.ProjectionsAt
}

func (l *LogLoss) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the log has lost %d acknowledged events: positions %s are missing", l.Count(), domain.FormatRanges(l.Missing))
	if l.State.Msgs == 0 {
		b.WriteString(" (the stream holds no event at all)")
	} else {
		fmt.Fprintf(&b, " (the stream holds %d events between %d and %d)", l.State.Msgs, l.State.FirstSeq, l.State.LastSeq)
	}
	if l.Held() {
		fmt.Fprintf(&b, "; the projections have applied the log up to %d and still hold the lost events' effects", l.ProjectionsAt)
	}
	b.WriteString(". memledger does not serve a log that lost events. Either restore the data directory from a backup" +
		" (memledger restore --from BACKUP --data NEWDIR, then serve --data NEWDIR), or accept the loss: memledger serve" +
		" --accept-log-loss records the decision in the log, raises a critical alert")
	if l.Held() {
		b.WriteString(", sets the projections aside beside their file and builds them again from what the log holds")
	}
	return b.String()
}

// checkLog compares the stream's positions with what they must be (no gap, nothing deleted:
// the stream denies both) and with the highest position the projections applied, and reads
// every message back. Gaps that an operator accepted earlier (recorded as LogLossAccepted
// events) are not reported again, and the store's Follow passes over them. It returns nil when
// the log is whole.
func checkLog(ctx context.Context, store *eventstore.Store, db *projections.DB) (*LogLoss, error) {
	loss, _, err := checkLogFrom(ctx, store, db, 1, 0)
	return loss, err
}

// checkLogFrom is checkLog reading the messages back only from position from on: those
// before it were read back whole up to checked (the position an earlier run recorded, see
// projections.LogCheck), so a log that now ends before checked lost its tail as surely as one
// that ends before the projections. The stream's own counts (its first position, the positions
// it lists as deleted) are compared for the whole log. It also returns the stream's state.
func checkLogFrom(ctx context.Context, store *eventstore.Store, db *projections.DB, from, checked uint64) (*LogLoss, eventstore.State, error) {
	st, err := store.State(ctx)
	if err != nil {
		return nil, st, fmt.Errorf("check the log: %w", err)
	}
	loss := &LogLoss{State: st}
	if db != nil {
		cps, err := db.Checkpoints()
		if err != nil {
			return nil, st, fmt.Errorf("check the log: %w", err)
		}
		for name, cp := range cps {
			if cp > loss.ProjectionsAt {
				loss.ProjectionsAt, loss.Projection = cp, name
			}
		}
	}
	var missing []domain.SeqRange
	add := func(from, to uint64) {
		if from <= to {
			missing = append(missing, domain.SeqRange{From: from, To: to})
		}
	}
	if st.Msgs == 0 {
		add(1, st.LastSeq)
	} else {
		add(1, st.FirstSeq-1)
		for _, seq := range st.Deleted {
			add(seq, seq)
		}
		// Damaged messages the stream's counts do not show are found by reading every one.
		unreadable, err := store.UnreadableRange(ctx, max(from, st.FirstSeq), st.LastSeq)
		if err != nil {
			return nil, st, fmt.Errorf("check the log: %w", err)
		}
		for _, seq := range unreadable {
			add(seq, seq)
		}
	}
	add(st.LastSeq+1, max(loss.ProjectionsAt, checked))
	// The positions before from were not read: the accepted losses among them are what the
	// store's Follow must pass over.
	loss, err = lossOf(ctx, store, loss, missing, from > 1)
	return loss, st, err
}

// lossOf completes loss with the missing positions, less those an operator accepted earlier
// (which the store's Follow then passes over, and which are read whenever some are missing or
// with always); nil when none is left.
func lossOf(ctx context.Context, store *eventstore.Store, loss *LogLoss, missing []domain.SeqRange, always bool) (*LogLoss, error) {
	return lossAccepted(ctx, store, loss, missing, always, true)
}

// lossAccepted is lossOf; with setLost false it leaves store.Lost as it is (the check in the
// background, while the log is followed: the start's check set it already).
func lossAccepted(ctx context.Context, store *eventstore.Store, loss *LogLoss, missing []domain.SeqRange, always, setLost bool) (*LogLoss, error) {
	missing = mergeRanges(missing)
	if len(missing) > 0 || always {
		accepted, err := acceptedLoss(ctx, store)
		if err != nil {
			return nil, err
		}
		missing = subtractRanges(missing, accepted)
		if setLost {
			store.Lost = accepted
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	loss.Missing = missing
	return loss, nil
}

// acceptedLoss is every range of positions an operator accepted as lost.
func acceptedLoss(ctx context.Context, store *eventstore.Store) ([]domain.SeqRange, error) {
	evs, _, err := store.Load(ctx, "system", ledger.LogAggregate)
	if err != nil {
		return nil, fmt.Errorf("check the log: read accepted losses: %w", err)
	}
	var out []domain.SeqRange
	for _, ev := range evs {
		if p, ok := ev.Data.(domain.LogLossAccepted); ok {
			out = append(out, lostFor(p.Missing, p.LogLastSeq)...)
		}
	}
	return out, nil
}

// lostFor is what stays lost for good of the positions missing from a log that ended at last:
// those it held around. Positions after its end are written again by the events that come next.
func lostFor(missing []domain.SeqRange, last uint64) []domain.SeqRange {
	var out []domain.SeqRange
	for _, r := range missing {
		if r.From <= last {
			out = append(out, domain.SeqRange{From: r.From, To: min(r.To, last)})
		}
	}
	return out
}

// mergeRanges sorts rs and joins the ranges that overlap or touch.
func mergeRanges(rs []domain.SeqRange) []domain.SeqRange {
	slices.SortFunc(rs, func(a, b domain.SeqRange) int { return cmp.Compare(a.From, b.From) })
	var out []domain.SeqRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].To+1 >= r.From {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtractRanges removes the positions of cut from rs (both in order, cut in any order).
func subtractRanges(rs, cut []domain.SeqRange) []domain.SeqRange {
	for _, c := range cut {
		var next []domain.SeqRange
		for _, r := range rs {
			if c.To < r.From || c.From > r.To {
				next = append(next, r)
				continue
			}
			if r.From < c.From {
				next = append(next, domain.SeqRange{From: r.From, To: c.From - 1})
			}
			if r.To > c.To {
				next = append(next, domain.SeqRange{From: c.To + 1, To: r.To})
			}
		}
		rs = next
	}
	return rs
}
