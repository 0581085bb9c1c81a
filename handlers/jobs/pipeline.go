package jobs

import (
	"context"
	"fmt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// PipelineRules are the thresholds of the pipeline alert rules.
type PipelineRules struct {
	// MinPassRate: a latest harness pass rate below it raises a warning.
	MinPassRate float64
	// MaxCandidates: more candidates than this raise a warning.
	MaxCandidates int
}

// DefaultPipelineRules are the thresholds the README gives (Pipeline rules): a pass rate of
// 0.85, 200 candidates.
func DefaultPipelineRules() PipelineRules {
	return PipelineRules{MinPassRate: 0.85, MaxCandidates: 200}
}

// PipelineCheck is the result of the pipeline alert rules.
type PipelineCheck struct {
	PassRate      *float64       `json:"pass_rate"`
	MinPassRate   float64        `json:"min_pass_rate"`
	Candidates    int            `json:"candidates"`
	MaxCandidates int            `json:"max_candidates"`
	Alerts        []domain.Alert `json:"alerts"`
}

// The titles of the pipeline rules' alerts.
const (
	titlePassRate   = "Harness pass rate below threshold"
	titleCandidates = "Candidate queue too long"
)

// CheckPipeline evaluates the pipeline alert rules on l's views and raises, through l, a warning for each that fails:
// the latest harness pass rate below rules.MinPassRate, more than rules.MaxCandidates
// candidates. Each alert's context carries the figures.
func CheckPipeline(ctx context.Context, l *ledger.Ledger, rules PipelineRules) (PipelineCheck, error) {
	res := PipelineCheck{MinPassRate: rules.MinPassRate, MaxCandidates: rules.MaxCandidates, Alerts: []domain.Alert{}}
	h, err := l.DB.LatestHarness()
	if err != nil {
		return res, err
	}
	if res.Candidates, err = l.DB.CountMemories(domain.StatusCandidate); err != nil {
		return res, err
	}
	var raise []domain.RaiseAlert
	if h != nil {
		res.PassRate = &h.PassRate
		if h.PassRate < rules.MinPassRate {
			raise = append(raise, domain.RaiseAlert{
				Severity: string(domain.SeverityWarning),
				Title:    titlePassRate,
				Message:  fmt.Sprintf("The latest evaluation-harness pass rate is %.1f%% (%d/%d), below %.1f%%.", 100*h.PassRate, h.Passed, h.Total, 100*rules.MinPassRate),
				Context:  map[string]any{"pass_rate": h.PassRate, "threshold": rules.MinPassRate, "passed": h.Passed, "total": h.Total, "harness_seq": h.Seq},
			})
		}
	}
	if res.Candidates > rules.MaxCandidates {
		raise = append(raise, domain.RaiseAlert{
			Severity: string(domain.SeverityWarning),
			Title:    titleCandidates,
			Message:  fmt.Sprintf("%d memories are waiting for review as candidates, more than %d.", res.Candidates, rules.MaxCandidates),
			Context:  map[string]any{"candidates": res.Candidates, "threshold": rules.MaxCandidates},
		})
	}
	for _, c := range raise {
		if a, ok := l.RaiseFailOpen(ctx, ledger.Caller{Actor: ActorPipelineRules}, c); ok {
			res.Alerts = append(res.Alerts, a)
		}
	}
	return res, nil
}
