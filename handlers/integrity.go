package handlers

import (
	"context"
	"fmt"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// ActorIntegrity is the actor of recorded integrity runs and of their alerts.
const ActorIntegrity = "integrity-check"

func (s *Server) getIntegrity(w http.ResponseWriter, r *http.Request) {
	report, err := s.DB.IntegrityReport()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

// IntegrityRun is a recorded integrity run: the report, where it was recorded, and the alert
// it raised (nil for a clean ledger).
type IntegrityRun struct {
	domain.IntegrityReport
	RecordedSeq uint64        `json:"recorded_seq"`
	Alert       *domain.Alert `json:"alert"`
}

func (s *Server) postIntegrityRun(w http.ResponseWriter, r *http.Request) {
	actor := r.Header.Get("X-Actor")
	if actor == "" {
		actor = ActorIntegrity
	}
	if err := domain.CheckActor(actor); err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.RunIntegrity(r.Context(), actor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// RunIntegrity records the live integrity findings, once the projections have caught up with
// the log, as an event (served as the state atocore/status/integrity_check_result) and raises
// one warning alert when there is any finding.
func (s *Server) RunIntegrity(ctx context.Context, actor string) (IntegrityRun, error) {
	var run IntegrityRun
	last, err := s.Store.LastSeq(ctx)
	if err != nil {
		return run, err
	}
	if err := s.waitApplied(ctx, last); err != nil {
		return run, err
	}
	if run.IntegrityReport, err = s.DB.IntegrityReport(); err != nil {
		return run, err
	}
	ev := domain.NewEvent("integrity", domain.Meta{EventID: NewID(), Actor: actor, Time: s.Now().UTC()},
		domain.IntegrityChecked{IntegrityReport: run.IntegrityReport})
	res, err := s.Store.Append(ctx, eventstore.Unchecked, ev)
	if err != nil {
		return run, err
	}
	run.RecordedSeq = res.Seq
	if run.Total > 0 {
		counts := map[string]any{"at_seq": run.AtSeq, "total": run.Total}
		for k, v := range run.Counts {
			counts[k] = v
		}
		if a, ok := s.raiseFailOpen(ctx, domain.RaiseAlert{
			Severity: string(domain.SeverityWarning),
			Title:    "Integrity check found problems",
			Message:  fmt.Sprintf("%d integrity %s at log position %d; see GET /admin/integrity.", run.Total, plural(run.Total, "finding", "findings"), run.AtSeq),
			Context:  counts,
		}, actor); ok {
			run.Alert = &a
			res.Seq = a.Seq
		}
	}
	return run, s.waitApplied(ctx, res.Seq)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
