package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
)

// RecordNightly records the summary of a nightly run.
func (l *Ledger) RecordNightly(ctx context.Context, c Caller, run domain.NightlyRan) (Result, error) {
	return l.recordFact(ctx, c, "", "nightly", run)
}
