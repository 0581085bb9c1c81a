package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// actorLogCheck is the actor of the events the log check records.
const actorLogCheck = "memledger-log-check"

// acceptLogLoss carries out the operator's decision to serve a log that lost events: the
// projections, when they hold the lost events' effects, are set aside beside their file and
// built again from the log; the decision is recorded in the log and raises a critical alert.
func (m *Main) acceptLogLoss(ctx context.Context, loss *LogLoss) error {
	m.Logger.Error("serving a log that lost acknowledged events, as --accept-log-loss asks", "missing", domain.FormatRanges(loss.Missing),
		"count", loss.Count(), "log_first_seq", loss.State.FirstSeq, "log_last_seq", loss.State.LastSeq, "projections_at", loss.ProjectionsAt)
	var aside string
	if loss.Held() {
		path := m.DB.Path
		aside = fmt.Sprintf("%s.log-loss-%d", path, time.Now().Unix())
		if err := m.DB.Close(); err != nil {
			return err
		}
		m.DB = nil
		if err := os.Rename(path, aside); err != nil {
			return fmt.Errorf("set the projections aside: %w", err)
		}
		m.Logger.Warn("the projections held the lost events' effects; set aside, building them again from the log", "moved_to", aside)
		var err error
		if m.DB, err = projections.OpenLive(path, m.Config.ProjectionsSync, m.Logger); err != nil {
			return err
		}
		if m.Search != nil {
			if err := m.Search.Reset(); err != nil {
				return err
			}
		}
	}
	// The projections do not follow the log yet: the ledger records without waiting for them.
	l := &ledger.Ledger{Store: m.Store, Rules: domain.DefaultRules(), Now: m.Now, Logger: m.Logger}
	if _, err := l.AcceptLogLoss(ctx, ledger.Caller{Actor: actorLogCheck}, domain.LogLossAccepted{Missing: loss.Missing,
		LogLastSeq: loss.State.LastSeq, ProjectionsAt: loss.ProjectionsAt, SetAsideAt: aside}); err != nil {
		return err
	}
	m.Store.Lost = append(m.Store.Lost, lostFor(loss.Missing, loss.State.LastSeq)...)
	return nil
}
