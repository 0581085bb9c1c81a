package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers"
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
	now := time.Now().UTC()
	if m.Now != nil {
		now = m.Now().UTC()
	}
	accepted := domain.NewEvent(logAggregate, domain.Meta{EventID: handlers.NewID(), Actor: actorLogCheck, Time: now,
		Note: "the operator started serve with --accept-log-loss"},
		domain.LogLossAccepted{Missing: loss.Missing, LogLastSeq: loss.State.LastSeq, ProjectionsAt: loss.ProjectionsAt, SetAsideAt: aside})
	if _, err := m.Store.Append(ctx, eventstore.Unchecked, accepted); err != nil {
		return fmt.Errorf("record the accepted log loss: %w", err)
	}
	m.Store.Lost = append(m.Store.Lost, lostFor(loss.Missing, loss.State.LastSeq)...)
	alertContext := map[string]any{"missing": domain.FormatRanges(loss.Missing), "log_last_seq": loss.State.LastSeq,
		"projections_at": loss.ProjectionsAt}
	if aside != "" {
		alertContext["projections_set_aside_at"] = aside
	}
	alert, err := domain.DecideAlert(domain.RaiseAlert{Severity: string(domain.SeverityCritical),
		Title: fmt.Sprintf("%d acknowledged events were lost from the log", loss.Count()),
		Message: fmt.Sprintf("positions %s are missing from the log; the operator accepted the loss and the service serves what the log holds",
			domain.FormatRanges(loss.Missing)),
		Context: alertContext},
		domain.Meta{EventID: handlers.NewID(), Actor: actorLogCheck, Time: now})
	if err != nil {
		return err
	}
	if _, err := m.Store.Append(ctx, eventstore.Unchecked, alert); err != nil {
		return fmt.Errorf("raise the log loss alert: %w", err)
	}
	return nil
}
