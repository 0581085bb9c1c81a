package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// Actors of the nightly pipeline.
const (
	ActorNightly = "nightly"
	// The step names.
	StepAutoPromote = "auto-promote"
	StepExpire      = "expire-candidates"
	StepPipeline    = "pipeline-rules"
	StepIntegrity   = "integrity"
)

// NightlyStep is one step of the nightly pipeline.
type NightlyStep struct {
	Name  string
	Actor string
	// Run does the step for night and says what it did.
	Run func(ctx context.Context, night string) (map[string]any, error)
}

// Nightly is the nightly pipeline: its steps, run in order, one failing step never stopping
// the next, and the scheduler that runs it every day at a set UTC time.
type Nightly struct {
	Server *Server
	Steps  []NightlyStep
	Logger *slog.Logger
	mu     sync.Mutex
}

// NewNightly returns the pipeline the README describes (Nightly pipeline) on s: auto-promote reinforced candidates,
// expire stale candidates, the pipeline alert rules, the integrity run.
func NewNightly(s *Server) *Nightly {
	n := &Nightly{Server: s, Logger: s.Logger}
	n.Steps = []NightlyStep{
		{Name: StepAutoPromote, Actor: ActorAutoPromote, Run: func(ctx context.Context, night string) (map[string]any, error) {
			cmd := domain.AutoPromoteMemory{MinReferenceCount: s.Jobs.AutoPromoteRefs, MinConfidence: s.Jobs.AutoPromoteConfidence}
			ids, err := s.Ledger.AutoPromote(ctx, ledger.Caller{Actor: ActorAutoPromote},
				fmt.Sprintf("nightly %s: reference_count >= %d and confidence >= %v", night, cmd.MinReferenceCount, cmd.MinConfidence), cmd)
			return map[string]any{"promoted": ids}, err
		}},
		{Name: StepExpire, Actor: ActorExpiry, Run: func(ctx context.Context, night string) (map[string]any, error) {
			ids, err := s.Ledger.ExpireCandidates(ctx, ledger.Caller{Actor: ActorExpiry},
				fmt.Sprintf("nightly %s: candidate never reinforced, older than %v days", night, s.Jobs.CandidateMaxAge.Hours()/24),
				domain.ExpireMemory{MaxAge: s.Jobs.CandidateMaxAge})
			return map[string]any{"expired": ids}, err
		}},
		{Name: StepPipeline, Actor: ActorPipelineRules, Run: func(ctx context.Context, night string) (map[string]any, error) {
			res, err := s.CheckPipeline(ctx, s.Pipeline)
			return map[string]any{"alerts": len(res.Alerts), "pass_rate": res.PassRate, "candidates": res.Candidates}, err
		}},
		{Name: StepIntegrity, Actor: ActorIntegrity, Run: func(ctx context.Context, night string) (map[string]any, error) {
			run, err := s.Ledger.RunIntegrity(ctx, ledger.Caller{Actor: ActorIntegrity})
			return map[string]any{"total": run.Total, "counts": run.Counts, "at_seq": run.AtSeq}, err
		}},
	}
	return n
}

// StepNames are the names of the pipeline's steps, in order.
func (n *Nightly) StepNames() []string {
	names := make([]string, len(n.Steps))
	for i, s := range n.Steps {
		names[i] = s.Name
	}
	return names
}

// Run runs the pipeline for night (a date, YYYY-MM-DD), only the step named only when it is
// not empty. A step that already succeeded for that night is skipped unless force is set, so
// running a night twice changes nothing the second time. A failing step is logged and raises
// a warning alert, and the next step runs all the same. The run's summary is recorded as an
// event.
func (n *Nightly) Run(ctx context.Context, night, only string, force bool) (domain.NightlyRan, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.Server
	run := domain.NightlyRan{Night: night, Steps: []domain.StepResult{}}
	if _, err := time.Parse(time.DateOnly, night); err != nil {
		return run, domain.Invalid("night", "%q is not a date like 2026-11-28", night)
	}
	if only != "" && !slices.Contains(n.StepNames(), only) {
		return run, domain.Invalid("step", "unknown step %q; the steps are %s", only, strings.Join(n.StepNames(), ", "))
	}
	for _, step := range n.Steps {
		if only != "" && step.Name != only {
			continue
		}
		res := domain.StepResult{Name: step.Name, Actor: step.Actor, StartedAt: s.Now().UTC()}
		done, err := s.DB.NightlyStepDone(night, step.Name)
		if err != nil {
			return run, err
		}
		if done && !force {
			res.Status, res.Summary = domain.StepSkipped, map[string]any{"reason": "already done for " + night}
			run.Steps = append(run.Steps, res)
			continue
		}
		start := time.Now()
		summary, err := runStep(ctx, step, night)
		res.DurationMS, res.Summary = time.Since(start).Milliseconds(), summary
		if err != nil {
			res.Status, res.Error = domain.StepFailed, err.Error()
			n.Logger.Error("nightly step failed", "night", night, "step", step.Name, "err", err)
			s.Ledger.RaiseFailOpen(ctx, ledger.Caller{Actor: ActorNightly}, domain.RaiseAlert{
				Severity: string(domain.SeverityWarning),
				Title:    "Nightly step failed: " + step.Name,
				Message:  err.Error(),
				Context:  map[string]any{"night": night, "step": step.Name},
			})
		} else {
			res.Status = domain.StepOK
		}
		run.Steps = append(run.Steps, res)
	}
	_, err := s.Ledger.RecordNightly(ctx, ledger.Caller{Actor: ActorNightly}, run)
	return run, err
}

// runStep runs one step, turning a panic into its error.
func runStep(ctx context.Context, step NightlyStep, night string) (summary map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("step %s panicked: %v", step.Name, p)
		}
	}()
	return step.Run(ctx, night)
}

// Schedule runs the pipeline every day at at ("HH:MM", UTC) until ctx is done.
func (n *Nightly) Schedule(ctx context.Context, at string) error {
	hm, err := time.Parse("15:04", at)
	if err != nil {
		return fmt.Errorf("nightly-at %q is not a time like 03:00", at)
	}
	for {
		now := n.Server.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day(), hm.Hour(), hm.Minute(), 0, 0, time.UTC)
		if !next.After(now) {
			next = next.AddDate(0, 0, 1)
		}
		n.Logger.Info("nightly pipeline scheduled", "at", next)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next.Sub(now)):
		}
		if _, err := n.Run(ctx, next.Format(time.DateOnly), "", false); err != nil && ctx.Err() == nil {
			n.Logger.Error("nightly run failed", "err", err)
		}
	}
}

// ParseNightlyAt checks a --nightly-at value ("" disables the scheduler).
func ParseNightlyAt(at string) error {
	if at == "" {
		return nil
	}
	if _, err := time.Parse("15:04", at); err != nil {
		return fmt.Errorf("nightly-at %q is not a UTC time like 03:00 (or empty to disable)", at)
	}
	return nil
}

// nightlyTimeout bounds a nightly run started over HTTP.
const nightlyTimeout = 30 * time.Minute

type nightlyRunRequest struct {
	Night string `json:"night"`
	Step  string `json:"step"`
	Force bool   `json:"force"`
}

func (s *Server) postNightlyRun(w http.ResponseWriter, r *http.Request) {
	var q nightlyRunRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Night == "" {
		q.Night = s.Now().UTC().Format(time.DateOnly)
	}
	// A client that goes away does not stop the run half-way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), nightlyTimeout)
	defer cancel()
	run, err := s.Nightly.Run(ctx, q.Night, q.Step, q.Force)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) listNightly(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := s.DB.NightlyRuns(limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]json.RawMessage{"runs": runs})
}
