package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// The names of the nightly pipeline's steps.
const (
	StepAutoPromote = "auto-promote"
	StepExpire      = "expire-candidates"
	StepPipeline    = "pipeline-rules"
	StepIntegrity   = "integrity"
)

// Step is one step of the nightly pipeline.
type Step struct {
	Name  string
	Actor string
	// Run does the step for night and says what it did.
	Run func(ctx context.Context, night string) (map[string]any, error)
}

// Nightly is the nightly pipeline: its steps, run in order, one failing step never stopping
// the next, and the scheduler that runs it every day at a set UTC time.
type Nightly struct {
	Ledger *ledger.Ledger
	// Rules and Pipeline are the thresholds of the jobs and of the pipeline rules.
	Rules    Rules
	Pipeline PipelineRules
	Steps    []Step
	// Now is the clock of the schedule and of the steps' start times.
	Now    func() time.Time
	Logger *slog.Logger
	// Lease, when set, is taken before a run and held through it, so that of all the
	// instances sharing a log one runs the pipeline at a time (see Run). It returns a context
	// that ends when the lease is lost, and the function that releases it.
	Lease func(ctx context.Context) (context.Context, func(), error)
	mu    sync.Mutex
}

// NewNightly returns the pipeline the README describes (Nightly pipeline) on l, with the
// thresholds rules and pipeline: auto-promote reinforced candidates, expire stale candidates,
// the pipeline alert rules, the integrity run.
func NewNightly(l *ledger.Ledger, rules Rules, pipeline PipelineRules, now func() time.Time, logger *slog.Logger) *Nightly {
	n := &Nightly{Ledger: l, Rules: rules, Pipeline: pipeline, Now: now, Logger: logger}
	n.Steps = []Step{
		{Name: StepAutoPromote, Actor: ActorAutoPromote, Run: func(ctx context.Context, night string) (map[string]any, error) {
			cmd := domain.AutoPromoteMemory{MinReferenceCount: n.Rules.AutoPromoteRefs, MinConfidence: n.Rules.AutoPromoteConfidence}
			ids, err := n.Ledger.AutoPromote(ctx, ledger.Caller{Actor: ActorAutoPromote},
				fmt.Sprintf("nightly %s: reference_count >= %d and confidence >= %v", night, cmd.MinReferenceCount, cmd.MinConfidence), cmd)
			return map[string]any{"promoted": ids}, err
		}},
		{Name: StepExpire, Actor: ActorExpiry, Run: func(ctx context.Context, night string) (map[string]any, error) {
			ids, err := n.Ledger.ExpireCandidates(ctx, ledger.Caller{Actor: ActorExpiry},
				fmt.Sprintf("nightly %s: candidate never reinforced, older than %v days", night, n.Rules.CandidateMaxAge.Hours()/24),
				domain.ExpireMemory{MaxAge: n.Rules.CandidateMaxAge})
			return map[string]any{"expired": ids}, err
		}},
		{Name: StepPipeline, Actor: ActorPipelineRules, Run: func(ctx context.Context, night string) (map[string]any, error) {
			res, err := CheckPipeline(ctx, n.Ledger, n.Pipeline)
			return map[string]any{"alerts": len(res.Alerts), "pass_rate": res.PassRate, "candidates": res.Candidates}, err
		}},
		{Name: StepIntegrity, Actor: ActorIntegrity, Run: func(ctx context.Context, night string) (map[string]any, error) {
			run, err := n.Ledger.RunIntegrity(ctx, ledger.Caller{Actor: ActorIntegrity})
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
// running a night twice changes nothing the second time, on this instance or on another that
// shares the log: a run holds the Lease, when set, and first waits until the projections have
// applied the whole log. A failing step is logged and raises
// a warning alert, and the next step runs all the same. The run's summary is recorded as an
// event.
func (n *Nightly) Run(ctx context.Context, night, only string, force bool) (domain.NightlyRan, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	run := domain.NightlyRan{Night: night, Steps: []domain.StepResult{}}
	if _, err := time.Parse(time.DateOnly, night); err != nil {
		return run, domain.Invalid("night", "%q is not a date like 2026-11-28", night)
	}
	if only != "" && !slices.Contains(n.StepNames(), only) {
		return run, domain.Invalid("step", "unknown step %q; the steps are %s", only, strings.Join(n.StepNames(), ", "))
	}
	if n.Lease != nil {
		leased, release, err := n.Lease(ctx)
		if err != nil {
			return run, fmt.Errorf("nightly: take the lease of the nightly pipeline: %w", err)
		}
		defer release()
		ctx = leased
	}
	// What another instance ran for this night is in the log (it recorded its run before it
	// let the lease go): the projections apply it before a step is found done or not.
	if err := n.Ledger.CaughtUp(ctx); err != nil {
		return run, fmt.Errorf("nightly: the projections have not caught up with the log: %w", err)
	}
	for _, step := range n.Steps {
		if only != "" && step.Name != only {
			continue
		}
		if err := ctx.Err(); err != nil {
			// The lease was lost (or the caller went): another instance may run the night
			// now, so this run starts no further step.
			return run, fmt.Errorf("nightly: stopped before step %s: %w", step.Name, context.Cause(ctx))
		}
		res := domain.StepResult{Name: step.Name, Actor: step.Actor, StartedAt: n.Now().UTC()}
		done, err := n.Ledger.DB.NightlyStepDone(night, step.Name)
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
			n.Ledger.RaiseFailOpen(ctx, ledger.Caller{Actor: ActorNightly}, domain.RaiseAlert{
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
	_, err := n.Ledger.RecordNightly(ctx, ledger.Caller{Actor: ActorNightly}, run)
	return run, err
}

// runStep runs one step, turning a panic into its error.
func runStep(ctx context.Context, step Step, night string) (summary map[string]any, err error) {
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
		now := n.Now().UTC()
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
