package ledger

import (
	"context"
	"fmt"

	"github.com/memledger/memledger/domain"
)

// IntegrityRun is a recorded integrity run: the report, where it was recorded, and the alert
// it raised (nil for a clean ledger).
type IntegrityRun struct {
	domain.IntegrityReport
	RecordedSeq uint64        `json:"recorded_seq"`
	Alert       *domain.Alert `json:"alert"`
}

// RunIntegrity records the live integrity findings, once the projections have caught up with
// the log, as an event (bounded: see domain.IntegrityReport.Recorded; the answer has them all) (served as the state atocore/status/integrity_check_result) and raises
// one warning alert when there is any finding.
func (l *Ledger) RunIntegrity(ctx context.Context, c Caller) (IntegrityRun, error) {
	var run IntegrityRun
	meta, err := l.meta(c, "", "")
	if err != nil {
		return run, err
	}
	if err := l.CaughtUp(ctx); err != nil {
		return run, err
	}
	if run.IntegrityReport, err = l.DB.IntegrityReport(); err != nil {
		return run, err
	}
	res, err := l.appendFact(ctx, domain.NewEvent("integrity", meta, domain.IntegrityChecked{IntegrityReport: run.IntegrityReport.Recorded()}))
	if err != nil {
		return run, err
	}
	run.RecordedSeq = res.Seq
	if run.Total > 0 {
		counts := map[string]any{"at_seq": run.AtSeq, "total": run.Total}
		for k, v := range run.Counts {
			counts[k] = v
		}
		findings := "findings"
		if run.Total == 1 {
			findings = "finding"
		}
		if a, ok := l.RaiseFailOpen(ctx, c, domain.RaiseAlert{
			Severity: string(domain.SeverityWarning),
			Title:    "Integrity check found problems",
			Message:  fmt.Sprintf("%d integrity %s at log position %d; see GET /admin/integrity.", run.Total, findings, run.AtSeq),
			Context:  counts,
		}); ok {
			run.Alert = &a
			res.Seq = a.Seq
		}
	}
	return run, l.Wait(ctx, res.Seq)
}
