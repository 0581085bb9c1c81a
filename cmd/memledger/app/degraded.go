package app

import (
	"context"
	"fmt"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// actorHealth is the actor of the alerts the service raises about itself.
const actorHealth = "memledger-health"

// degradedTick is how often the service looks at whether its writes failed.
const degradedTick = 250 * time.Millisecond

// refuseWrites is the ledger's Refuse: while the projections cannot be written, every write is
// refused before it is appended (it would only wait for them).
func (m *Main) refuseWrites() error {
	if err := m.damage.Err(); err != nil {
		return err
	}
	err, since := m.Runner.Failure()
	if err == nil {
		return nil
	}
	return fmt.Errorf("the projections cannot be written since %s, at log position %d (%w)", since.UTC().Format(time.RFC3339), m.Runner.Applied(), err)
}

// writeFailures is one source of write failures: how many times they began, the first error
// and the start of the last time.
type writeFailures struct {
	what  string
	count func() (uint64, error, time.Time)
	// alerted is the count the last alert covered.
	alerted uint64
}

// watchWrites raises a critical alert each time the writes began to fail (a full disk under
// the log or the projections), as soon as the log takes it: at once when only the projections
// fail, once space allows when the log fails too. Each try the log refuses is one more probe
// of whether it takes appends again. A failure is never missed, however short: the runner and
// the store count them.
func (m *Main) watchWrites(ctx context.Context) {
	sources := []*writeFailures{
		{what: "the projections cannot be written", count: m.Runner.Failures},
		{what: "the log refuses appends", count: m.Store.AppendFailures},
	}
	t := time.NewTicker(degradedTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, src := range sources {
			n, first, since := src.count()
			if n == src.alerted {
				continue
			}
			cause := fmt.Sprintf("%s: %v", src.what, first)
			a, err := m.Ledger.RaiseDegraded(ctx, ledger.Caller{Actor: actorHealth}, domain.RaiseAlert{
				Severity: string(domain.SeverityCritical), Title: "Writes failed: the service is degraded",
				Message: fmt.Sprintf("Since %s writes are refused (507 or 503) while reads are served: %s. The service resumes by itself once the cause is gone (free disk space); see /health.",
					since.UTC().Format(time.RFC3339), cause),
				Context: map[string]any{"cause": cause, "since": since.UTC().Format(time.RFC3339), "times": n - src.alerted},
			})
			if err != nil {
				continue // the log does not take it yet: tried again at the next tick
			}
			src.alerted = n
			m.Logger.Error("writes failed: the service is degraded; critical alert raised", "cause", cause, "since", since, "alert_seq", a.Seq)
		}
	}
}
