package app

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/memledger/memledger/domain"
)

// logCheckedEvery is how often serve records in the projection file how far the log has been
// read back whole (eventstore.Store.Checked), so that the next start reads only past it.
const logCheckedEvery = 2 * time.Second

// logDamage is the damage the log check in the background found, shared by the refusals.
type logDamage struct{ loss atomic.Pointer[LogLoss] }

// Err is the damage found, as the error every refused request and /health give; nil while
// none was found.
func (d *logDamage) Err() error {
	if l := d.loss.Load(); l != nil {
		return l
	}
	return nil
}

// checkLogAtStart checks the log before serve uses it. The stream's counts and the tail are
// checked whole; the messages are read back only past the position an earlier run recorded as
// read whole (projections.LogCheck), or all of them when there is none or when a check in the
// background found damage. It returns the loss found (nil for a whole log) and the position
// from which the messages were read (1: all of them). A loss accepted by --accept-log-loss
// clears the damage a background check recorded.
func (m *Main) checkLogAtStart(ctx context.Context) (*LogLoss, uint64, error) {
	rec, err := m.DB.LogCheck()
	if err != nil {
		return nil, 0, fmt.Errorf("check the log: %w", err)
	}
	from, checked := uint64(1), uint64(0)
	if rec.Damage == "" && rec.Checked > 0 {
		from, checked = rec.Checked+1, rec.Checked
	} else if rec.Damage != "" {
		m.Logger.Warn("a check of the log found damage in the last run; checking the whole log before serving", "damage", rec.Damage)
	}
	loss, st, err := checkLogFrom(ctx, m.Store, m.DB, from, checked)
	if err != nil {
		return nil, 0, err
	}
	m.checkedAtStart = st
	return loss, from, nil
}

// logCheckedAtStart records what the start's check read: every position up to the stream's
// last one then. Follows raise it from there (eventstore.Store.Checked).
func (m *Main) logCheckedAtStart() error {
	m.Store.SetChecked(m.checkedAtStart.LastSeq)
	if err := m.DB.SetLogDamage(""); err != nil {
		return fmt.Errorf("record the log check: %w", err)
	}
	return m.DB.SetLogChecked(m.checkedAtStart.LastSeq)
}

// checkOldLog reads back, in the background, the messages the start's check did not (positions
// before from), as the start-up check reads them, trying again with a growing pause while it
// cannot. When some are not delivered (and were not
// accepted as lost), the service goes degraded as a start on that log would refuse to serve:
// every request but /health, /metrics and /openapi.json is refused with the report (503), the
// damage is recorded in the projection file so that the next start checks the whole log and
// refuses it, and the error is logged.
func (m *Main) checkOldLog(ctx context.Context, from uint64) {
	wait := 5 * time.Second
	for {
		err := m.checkOldLogOnce(ctx, from)
		if err == nil || ctx.Err() != nil {
			return
		}
		m.Logger.Error("the log check in the background failed; trying again (memledger verify checks the whole log)", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// checkOldLogOnce is one try of checkOldLog; it returns why the check could not be made.
func (m *Main) checkOldLogOnce(ctx context.Context, from uint64) error {
	st := m.checkedAtStart
	if from <= 1 || st.Msgs == 0 {
		return nil
	}
	t0 := time.Now()
	unreadable, err := m.Store.UnreadableRange(ctx, max(st.FirstSeq, 1), min(from-1, st.LastSeq))
	if err != nil {
		return err
	}
	var missing []domain.SeqRange
	for _, seq := range unreadable {
		missing = append(missing, domain.SeqRange{From: seq, To: seq})
	}
	// A scan cut short by a stall (a loaded machine, a slow disk) reports what it did not
	// reach as unreadable: what a running service is refused for must be unreadable again
	// when read once more on its own.
	for try := 0; try < 2 && len(missing) > 0; try++ {
		if missing, err = m.unreadableAgain(ctx, mergeRanges(missing)); err != nil {
			return err
		}
	}
	loss := &LogLoss{State: st}
	if cps, err := m.DB.Checkpoints(); err == nil {
		for name, cp := range cps {
			if cp > loss.ProjectionsAt {
				loss.ProjectionsAt, loss.Projection = cp, name
			}
		}
	}
	// The start's check (from > 1) set the store's accepted losses; the follows read them.
	loss, err = lossAccepted(ctx, m.Store, loss, missing, false, false)
	if err != nil {
		return err
	}
	if loss == nil {
		m.Logger.Info("log check in the background: the log is whole", "from", max(st.FirstSeq, 1), "to", from-1, "took", time.Since(t0).String())
		return nil
	}
	m.damage.loss.Store(loss)
	if err := m.DB.SetLogDamage(loss.Error()); err != nil {
		m.Logger.Error("record the damage the log check found", "err", err)
	}
	m.Logger.Error("the log check in the background found damage: the service is degraded and refuses every request until it is restarted (the start then refuses the log, see --accept-log-loss)",
		"missing", domain.FormatRanges(loss.Missing), "err", loss)
	return nil
}

// unreadableAgain reads the ranges rs back once more and returns the positions in them that
// are still not delivered.
func (m *Main) unreadableAgain(ctx context.Context, rs []domain.SeqRange) ([]domain.SeqRange, error) {
	var still []domain.SeqRange
	for _, r := range rs {
		seqs, err := m.Store.UnreadableRange(ctx, r.From, r.To)
		if err != nil {
			return nil, err
		}
		for _, seq := range seqs {
			still = append(still, domain.SeqRange{From: seq, To: seq})
		}
	}
	return still, nil
}

// keepLogChecked records, every logCheckedEvery and once more when ctx ends, how far the log
// has been read back whole.
func (m *Main) keepLogChecked(ctx context.Context) {
	recorded := m.Store.Checked()
	t := time.NewTicker(logCheckedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c := m.Store.Checked(); c > recorded {
			if err := m.DB.SetLogChecked(c); err != nil {
				m.Logger.Warn("record how far the log was checked", "err", err)
				continue
			}
			recorded = c
		}
	}
}
