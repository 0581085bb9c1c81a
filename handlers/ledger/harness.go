package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
)

// RecordHarness records an evaluation-harness result (its pass rate computed from passed and
// total unless passRateGiven).
func (l *Ledger) RecordHarness(ctx context.Context, c Caller, note string, h domain.HarnessRecorded, passRateGiven bool) (Result, error) {
	h, err := domain.CheckHarness(h, passRateGiven)
	if err != nil {
		return Result{}, err
	}
	return l.recordFact(ctx, c, note, "harness", h)
}
