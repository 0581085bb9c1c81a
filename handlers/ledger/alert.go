package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
)

// RaiseAlert records an alert in the log and returns it once the projections have applied
// it. The sinks deliver it on their own, so raising never waits for (nor fails with) a sink.
func (l *Ledger) RaiseAlert(ctx context.Context, c Caller, cmd domain.RaiseAlert) (domain.Alert, error) {
	meta, err := l.meta(c, "", "")
	if err != nil {
		return domain.Alert{}, err
	}
	a, err := l.appendAlert(ctx, meta, cmd)
	if err != nil {
		return domain.Alert{}, err
	}
	return a, l.Wait(ctx, a.Seq)
}

// appendAlert decides an alert and appends it, returning it with its log position.
func (l *Ledger) appendAlert(ctx context.Context, meta domain.Meta, cmd domain.RaiseAlert) (domain.Alert, error) {
	ev, err := domain.DecideAlert(cmd, meta)
	if err != nil {
		return domain.Alert{}, err
	}
	res, err := l.appendFact(ctx, ev)
	if err != nil {
		return domain.Alert{}, err
	}
	a, _ := domain.AlertOf(ev)
	a.Seq = res.Seq
	return a, nil
}

// RaiseFailOpen raises an alert from inside the program: a failure to record it is logged
// and never stops the caller, which learns only whether it was raised.
func (l *Ledger) RaiseFailOpen(ctx context.Context, c Caller, cmd domain.RaiseAlert) (domain.Alert, bool) {
	a, err := l.RaiseAlert(ctx, c, cmd)
	if err != nil {
		l.logger().Error("raising an alert failed", "title", cmd.Title, "err", err)
		return a, false
	}
	return a, true
}
