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
	// that ends when the lease is lost (its cause says why, and is what the run answers), and
	// the function that releases it.
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
// event. A run whose context ends (its lease lost) starts no further step: it records the
// steps that ended (the one cut short as failed) and answers the context's cause.
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
			return run, fmt.Errorf("%w: nightly %s: the nightly pipeline's lease was not taken, no step ran: %w", domain.ErrUnavailable, night, err)
		}
		defer release()
		ctx = leased
	}
	// What another instance ran for this night is in the log (it recorded its run before it
	// let the lease go): the projections apply it before a step is found done or not.
	if err := n.Ledger.CaughtUp(ctx); err != nil {
		if ctx.Err() != nil {
			return run, fmt.Errorf("nightly %s: stopped before its first step: %w", night, context.Cause(ctx))
		}
		return run, fmt.Errorf("nightly: the projections have not caught up with the log: %w", err)
	}
	for _, step := range n.Steps {
		if only != "" && step.Name != only {
			continue
		}
		if ctx.Err() != nil {
			// The lease was lost (or the caller went): another instance may run the night
			// now, so this run starts no further step.
			return run, n.stopped(ctx, run, "before step "+step.Name)
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
		switch {
		case err != nil && ctx.Err() != nil:
			// Cut short by the lease's loss: failed, to be run again by whoever runs the night.
			res.Status, res.Error = domain.StepFailed, fmt.Sprintf("stopped: %v (%v)", context.Cause(ctx), err)
		case err != nil:
			res.Status, res.Error = domain.StepFailed, err.Error()
			n.Logger.Error("nightly step failed", "night", night, "step", step.Name, "err", err)
			n.Ledger.RaiseFailOpen(ctx, ledger.Caller{Actor: ActorNightly}, domain.RaiseAlert{
				Severity: string(domain.SeverityWarning),
				Title:    "Nightly step failed: " + step.Name,
				Message:  err.Error(),
				Context:  map[string]any{"night": night, "step": step.Name},
			})
		default:
			res.Status = domain.StepOK
		}
		run.Steps = append(run.Steps, res)
	}
	if ctx.Err() != nil {
		return run, n.stopped(ctx, run, "after its last step")
	}
	_, err := n.Ledger.RecordNightly(ctx, ledger.Caller{Actor: ActorNightly}, run)
	return run, err
}

// recordStoppedTimeout bounds the recording of a stopped run: a lease lost is given up a third
// of its TTL before the server lets another instance take it, and the run's record should
// be in the log by then, for that instance to find the steps done.
const recordStoppedTimeout = 5 * time.Second

// stopped records run, stopped when (say "before step x") because ctx ended, outside ctx (it
// has ended, the steps' work has not), and returns the error the run answers: ctx's cause,
// which says why (a lease lost: domain.ErrUnavailable).
func (n *Nightly) stopped(ctx context.Context, run domain.NightlyRan, when string) error {
	cause := context.Cause(ctx)
	n.Logger.Warn("nightly run stopped", "night", run.Night, "when", when, "err", cause)
	var ended []string
	for _, s := range run.Steps {
		ended = append(ended, s.Name+" "+string(s.Status))
	}
	if len(ended) == 0 {
		return fmt.Errorf("nightly %s: stopped %s, no step ended: %w", run.Night, when, cause)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordStoppedTimeout)
	defer cancel()
	if _, err := n.Ledger.RecordNightly(rctx, ledger.Caller{Actor: ActorNightly}, run); err != nil {
		n.Logger.Error("recording a stopped nightly run failed", "night", run.Night, "err", err)
		return fmt.Errorf("nightly %s: stopped %s; the steps that ended (%s) could not be recorded (%v): %w",
			run.Night, when, strings.Join(ended, ", "), err, cause)
	}
	return fmt.Errorf("nightly %s: stopped %s; the steps that ended are recorded (%s): %w",
		run.Night, when, strings.Join(ended, ", "), cause)
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
