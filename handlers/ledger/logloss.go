package ledger

import (
	"context"
	"fmt"

	"github.com/memledger/memledger/domain"
)

// AcceptLogLoss records an operator's decision to serve a log that lost acknowledged events,
// and raises the critical alert every sink delivers. It does not wait for the projections:
// it runs at start, before they follow the log.
func (l *Ledger) AcceptLogLoss(ctx context.Context, c Caller, a domain.LogLossAccepted) (Result, error) {
	meta, err := l.meta(c, "the operator started serve with --accept-log-loss", "")
	if err != nil {
		return Result{}, err
	}
	if _, err := l.appendFact(ctx, domain.NewEvent(LogAggregate, meta, a)); err != nil {
		return Result{}, fmt.Errorf("record the accepted log loss: %w", err)
	}
	var lost uint64
	for _, r := range a.Missing {
		lost += r.Len()
	}
	ctxFields := map[string]any{"missing": domain.FormatRanges(a.Missing), "log_last_seq": a.LogLastSeq,
		"projections_at": a.ProjectionsAt}
	if a.SetAsideAt != "" {
		ctxFields["projections_set_aside_at"] = a.SetAsideAt
	}
	alertMeta, err := l.meta(c, "", "")
	if err != nil {
		return Result{}, err
	}
	ev, err := domain.DecideAlert(domain.RaiseAlert{Severity: string(domain.SeverityCritical),
		Title: fmt.Sprintf("%d acknowledged events were lost from the log", lost),
		Message: fmt.Sprintf("positions %s are missing from the log; the operator accepted the loss and the service serves what the log holds",
			domain.FormatRanges(a.Missing)),
		Context: ctxFields}, alertMeta)
	if err != nil {
		return Result{}, err
	}
	res, err := l.appendFact(ctx, ev)
	if err != nil {
		return Result{}, fmt.Errorf("raise the log loss alert: %w", err)
	}
	return res, nil
}

// LogAggregate is the aggregate id of the log's own events (subject ledger.system.log).
const LogAggregate = "log"
