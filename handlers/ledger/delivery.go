package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
)

// RecordDeliveryFailure records that sink f.Sink gave up delivering an alert. The event is
// not an alert, so no sink hears of it. It does not wait for the projections: a sink records
// it from its own consumer, with nobody to answer.
func (l *Ledger) RecordDeliveryFailure(ctx context.Context, c Caller, f domain.DeliveryFailed) (Result, error) {
	meta, err := l.meta(c, "", "")
	if err != nil {
		return Result{}, err
	}
	return l.appendFact(ctx, domain.NewEvent(f.Sink, meta, f))
}
