package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// pfNight is the night the nightly tests run for, and pfNightAt the time they run at.
const pfNight = "2026-06-15"

var pfNightAt = time.Date(2026, 6, 15, 3, 0, 0, 0, time.UTC)

var pfStepNames = []string{jobs.StepAutoPromote, jobs.StepExpire, jobs.StepPipeline, jobs.StepIntegrity}

// pfRunNightly runs the pipeline over HTTP and returns the run.
func pfRunNightly(t *testing.T, l *ledger, body map[string]any) domain.NightlyRan {
	t.Helper()
	var run domain.NightlyRan
	pfExpect(t, l, http.StatusOK, "POST", "/admin/nightly/run", body).Decode(t, &run)
	return run
}

// pfNightlyRuns returns GET /admin/nightly, newest first.
func pfNightlyRuns(t *testing.T, l *ledger) []projections.NightlyRun {
	t.Helper()
	var v struct {
		Runs []projections.NightlyRun `json:"runs"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/admin/nightly", nil).Decode(t, &v)
	return v.Runs
}

func pfStepStatuses(steps []domain.StepResult) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name + ":" + s.Status
	}
	return out
}

func pfAllSteps(status string) []string {
	out := make([]string, len(pfStepNames))
	for i, n := range pfStepNames {
		out[i] = n + ":" + status
	}
	return out
}

// pfSummaryIDs reads a list of ids from a step's summary.
func pfSummaryIDs(t *testing.T, s domain.StepResult, key string) []string {
	t.Helper()
	raw, ok := s.Summary[key].([]any)
	require.True(t, ok, "summary of %s: %v", s.Name, s.Summary)
	out := []string{}
	for _, v := range raw {
		out = append(out, v.(string))
	}
	return out
}

// pfRecentByActor returns the memory audit entries of actor, newest first.
func pfRecentByActor(t *testing.T, l *ledger, actor string) []projections.AuditEntry {
	t.Helper()
	var v struct {
		Entries []projections.AuditEntry `json:"entries"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/admin/audit/recent?limit=500&actor="+actor, nil).Decode(t, &v)
	return v.Entries
}

// pfReinforce reinforces memory id n times with the default delta.
func pfReinforce(t *testing.T, l *ledger, id string, n int) domain.Memory {
	t.Helper()
	var m domain.Memory
	for range n {
		pfExpect(t, l, http.StatusOK, "POST", "/memory/"+id+"/reinforce", nil, "X-Actor", "reinforcement").Decode(t, &m)
	}
	return m
}

func TestNightlyPromotesAndExpiresThenChangesNothing(t *testing.T) {
	clk := &clock{}
	clk.Set(pfNightAt.AddDate(0, 0, -20))
	l := startLedger(t, withClock(clk.Now))
	cand := func(content string, conf float64) domain.Memory {
		t.Helper()
		return pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": content, "status": "candidate", "confidence": conf})
	}
	// 20 days ago.
	promoteOld := cand("reinforced three times, confident", 0.6)
	require.InDelta(t, 0.75, pfReinforce(t, l, promoteOld.ID, 3).Confidence, 1e-9)
	lowConf := cand("reinforced three times, not confident", 0.5)
	require.InDelta(t, 0.65, pfReinforce(t, l, lowConf.ID, 3).Confidence, 1e-9)
	once := cand("reinforced once", 0.9)
	pfReinforce(t, l, once.ID, 1)
	stale := cand("never reinforced", 0.9)
	stale2 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "never reinforced either", "project": "p", "status": "candidate"})
	oldActive := pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "active, never reinforced"})
	rejected := cand("rejected", 0.9)
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+rejected.ID+"/reject", nil)
	// 14 days less an hour ago: not old enough.
	clk.Set(pfNightAt.Add(-14*24*time.Hour + time.Hour))
	almost := cand("almost stale", 0.9)
	// 2 days ago.
	clk.Set(pfNightAt.AddDate(0, 0, -2))
	recent := cand("recent, never reinforced", 0.9)
	recentReinforced := cand("recent, reinforced three times", 0.7)
	pfReinforce(t, l, recentReinforced.ID, 3)
	// One integrity finding, so that the integrity step raises its alert.
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k", "value": "v"})

	clk.Set(pfNightAt)
	run := pfRunNightly(t, l, map[string]any{"night": pfNight})
	require.Equal(t, pfNight, run.Night)
	require.Equal(t, pfAllSteps(domain.StepOK), pfStepStatuses(run.Steps))
	actors := []string{jobs.ActorAutoPromote, jobs.ActorExpiry, jobs.ActorPipelineRules, jobs.ActorIntegrity}
	for i, s := range run.Steps {
		require.Equal(t, actors[i], s.Actor)
		require.Empty(t, s.Error)
		require.Equal(t, pfNightAt, s.StartedAt.UTC())
		require.GreaterOrEqual(t, s.DurationMS, int64(0))
	}
	require.Equal(t, []string{promoteOld.ID, recentReinforced.ID}, pfSummaryIDs(t, run.Steps[0], "promoted"))
	require.Equal(t, []string{stale.ID, stale2.ID}, pfSummaryIDs(t, run.Steps[1], "expired"))
	require.EqualValues(t, 4, run.Steps[2].Summary["candidates"])
	require.EqualValues(t, 0, run.Steps[2].Summary["alerts"])
	require.EqualValues(t, 1, run.Steps[3].Summary["total"])

	status := map[string]domain.Status{
		promoteOld.ID: domain.StatusActive, recentReinforced.ID: domain.StatusActive,
		stale.ID: domain.StatusInvalid, stale2.ID: domain.StatusInvalid,
		lowConf.ID: domain.StatusCandidate, once.ID: domain.StatusCandidate, almost.ID: domain.StatusCandidate,
		recent.ID: domain.StatusCandidate, oldActive.ID: domain.StatusActive, rejected.ID: domain.StatusInvalid,
	}
	requireStatuses := func() {
		t.Helper()
		for id, want := range status {
			var m domain.Memory
			pfExpect(t, l, http.StatusOK, "GET", "/memory/"+id, nil).Decode(t, &m)
			require.Equal(t, want, m.Status, "memory %q", m.Content)
		}
	}
	requireStatuses()

	// The audit names the job that did each change.
	for _, id := range []string{promoteOld.ID, recentReinforced.ID} {
		audit := pfMemoryAudit(t, l, id)
		last := audit[len(audit)-1]
		require.Equal(t, domain.ActionPromoted, last.Action)
		require.Equal(t, jobs.ActorAutoPromote, last.Actor)
		require.Contains(t, last.Note, "nightly "+pfNight)
		require.Equal(t, pfNightAt, last.Timestamp.UTC())
		require.Equal(t, domain.StatusCandidate, pfMemoryFrom(t, last.Before).Status)
		require.Equal(t, domain.StatusActive, pfMemoryFrom(t, last.After).Status)
	}
	for _, id := range []string{stale.ID, stale2.ID} {
		audit := pfMemoryAudit(t, l, id)
		require.Len(t, audit, 2)
		last := audit[1]
		require.Equal(t, domain.ActionExpired, last.Action)
		require.Equal(t, jobs.ActorExpiry, last.Actor)
		require.Contains(t, last.Note, "nightly "+pfNight)
		require.Equal(t, domain.StatusInvalid, pfMemoryFrom(t, last.After).Status)
	}
	promoted := pfRecentByActor(t, l, jobs.ActorAutoPromote)
	expired := pfRecentByActor(t, l, jobs.ActorExpiry)
	require.Len(t, promoted, 2)
	require.Len(t, expired, 2)
	for _, id := range []string{lowConf.ID, once.ID, almost.ID, recent.ID, oldActive.ID, rejected.ID} {
		for _, e := range pfMemoryAudit(t, l, id) {
			require.NotContains(t, []string{jobs.ActorAutoPromote, jobs.ActorExpiry}, e.Actor, "memory %s", id)
		}
	}
	alerts := pfAlerts(t, l, "")
	require.Len(t, alerts, 1, "the integrity finding's warning, nothing else")
	require.Equal(t, domain.SeverityWarning, alerts[0].Severity)
	require.Equal(t, jobs.ActorIntegrity, alerts[0].Actor)

	// The same night again changes nothing: every step is skipped, and the log only grows by
	// the run's own summary.
	before := pfLastSeq(t, l)
	again := pfRunNightly(t, l, map[string]any{"night": pfNight})
	require.Equal(t, pfAllSteps(domain.StepSkipped), pfStepStatuses(again.Steps))
	require.Equal(t, before+1, pfLastSeq(t, l))
	requireStatuses()
	require.Equal(t, promoted, pfRecentByActor(t, l, jobs.ActorAutoPromote))
	require.Equal(t, expired, pfRecentByActor(t, l, jobs.ActorExpiry))
	require.Equal(t, alerts, pfAlerts(t, l, ""), "nothing alerted again")

	// GET /admin/nightly shows both runs, newest first, with their steps and durations.
	runs := pfNightlyRuns(t, l)
	require.Len(t, runs, 2)
	require.Equal(t, pfAllSteps(domain.StepSkipped), pfStepStatuses(runs[0].Steps))
	require.Equal(t, again.Steps, runs[0].Steps)
	require.Equal(t, run.Steps, runs[1].Steps)
	require.Equal(t, before+1, runs[0].Seq)
	for _, r := range runs {
		require.Equal(t, pfNight, r.Night)
		require.Equal(t, jobs.ActorNightly, r.Actor)
		require.Equal(t, pfNightAt, r.Timestamp.UTC())
	}

	// The record of what ran survives a restart: the night stays done.
	l.restart()
	before = pfLastSeq(t, l)
	require.Equal(t, pfAllSteps(domain.StepSkipped), pfStepStatuses(pfRunNightly(t, l, map[string]any{"night": pfNight}).Steps))
	require.Equal(t, before+1, pfLastSeq(t, l))

	// Forced, the steps run again and find nothing left to promote or expire.
	forced := pfRunNightly(t, l, map[string]any{"night": pfNight, "force": true})
	require.Equal(t, pfAllSteps(domain.StepOK), pfStepStatuses(forced.Steps))
	require.Empty(t, pfSummaryIDs(t, forced.Steps[0], "promoted"))
	require.Empty(t, pfSummaryIDs(t, forced.Steps[1], "expired"))
	requireStatuses()
}

func pfMemoryFrom(t *testing.T, raw json.RawMessage) domain.Memory {
	t.Helper()
	var m domain.Memory
	require.NoError(t, json.Unmarshal(raw, &m), "snapshot: %s", raw)
	return m
}

// pfAsServed is run as the API serves it: through JSON.
func pfAsServed(t *testing.T, run domain.NightlyRan) domain.NightlyRan {
	t.Helper()
	data, err := json.Marshal(run)
	require.NoError(t, err)
	var out domain.NightlyRan
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

func TestNightlyFailingStepDoesNotStopTheOthers(t *testing.T) {
	l := startLedger(t)
	old := pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "candidate", "status": "candidate", "confidence": 0.9})
	pfReinforce(t, l, old.ID, 3)
	pfMessy(t, l) // integrity findings

	n := l.Main.Nightly
	require.Equal(t, pfStepNames, n.StepNames())
	saved := make([]jobs.Step, len(n.Steps))
	copy(saved, n.Steps)
	n.Steps[1].Run = func(ctx context.Context, night string) (map[string]any, error) {
		time.Sleep(30 * time.Millisecond)
		return nil, errors.New("candidate store unreachable")
	}
	n.Steps[2].Run = func(ctx context.Context, night string) (map[string]any, error) {
		panic("rules exploded")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := n.Run(ctx, pfNight, "", false)
	require.NoError(t, err)
	run = pfAsServed(t, run)
	require.Equal(t, []string{
		jobs.StepAutoPromote + ":ok", jobs.StepExpire + ":failed",
		jobs.StepPipeline + ":failed", jobs.StepIntegrity + ":ok",
	}, pfStepStatuses(run.Steps), "a failing step never stops the next")
	require.Equal(t, "candidate store unreachable", run.Steps[1].Error)
	require.GreaterOrEqual(t, run.Steps[1].DurationMS, int64(30), "the duration of the failed step is measured")
	require.Contains(t, run.Steps[2].Error, "rules exploded", "a panicking step fails like any other")
	require.Equal(t, []string{old.ID}, pfSummaryIDs(t, run.Steps[0], "promoted"))
	require.EqualValues(t, 4, run.Steps[3].Summary["total"])

	// Each failure raised a warning; the integrity step raised its own.
	warnings := pfAlerts(t, l, "severity=warning")
	titles := []string{}
	for _, a := range warnings {
		titles = append(titles, a.Title)
	}
	require.ElementsMatch(t, []string{"Nightly step failed: " + jobs.StepExpire, "Nightly step failed: " + jobs.StepPipeline,
		"Integrity check found problems"}, titles)
	for _, a := range warnings {
		if strings.HasPrefix(a.Title, "Nightly step failed: ") {
			require.Equal(t, jobs.ActorNightly, a.Actor)
			require.Equal(t, pfNight, a.Context["night"])
			require.Equal(t, strings.TrimPrefix(a.Title, "Nightly step failed: "), a.Context["step"])
		}
		if a.Title == "Nightly step failed: "+jobs.StepExpire {
			require.Equal(t, "candidate store unreachable", a.Message)
		}
	}
	runs := pfNightlyRuns(t, l)
	require.Len(t, runs, 1)
	require.Equal(t, run.Steps, runs[0].Steps, "the failures are recorded")

	// The night again: the failed steps run again, the ones done are skipped.
	copy(n.Steps, saved)
	again, err := n.Run(ctx, pfNight, "", false)
	require.NoError(t, err)
	require.Equal(t, []string{
		jobs.StepAutoPromote + ":skipped", jobs.StepExpire + ":ok",
		jobs.StepPipeline + ":ok", jobs.StepIntegrity + ":skipped",
	}, pfStepStatuses(again.Steps))
	require.Len(t, pfAlerts(t, l, "severity=warning"), 3, "nothing failed, nothing alerted")
}

func TestNightlyOneStepAndRefusals(t *testing.T) {
	clk := &clock{}
	clk.Set(pfNightAt)
	l := startLedger(t, withClock(clk.Now))
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k", "value": "v"})
	before := pfLastSeq(t, l)

	requireProblem(t, l.do("POST", "/admin/nightly/run", map[string]any{"night": pfNight, "step": "vacuum"}), http.StatusBadRequest, "step")
	requireProblem(t, l.do("POST", "/admin/nightly/run", map[string]any{"night": "yesterday"}), http.StatusBadRequest, "night")
	requireProblem(t, l.do("POST", "/admin/nightly/run", map[string]any{"night": "2026-02-30"}), http.StatusBadRequest, "night")
	requireProblem(t, l.do("POST", "/admin/nightly/run", map[string]any{"nite": pfNight}), http.StatusBadRequest, "nite")
	requireProblem(t, l.do("GET", "/admin/nightly?limit=0", nil), http.StatusBadRequest, "limit")
	require.Equal(t, before, pfLastSeq(t, l), "refused runs record nothing")
	require.Empty(t, pfNightlyRuns(t, l))

	// One step only.
	run := pfRunNightly(t, l, map[string]any{"night": pfNight, "step": jobs.StepIntegrity})
	require.Equal(t, []string{jobs.StepIntegrity + ":ok"}, pfStepStatuses(run.Steps))
	require.Len(t, pfAlerts(t, l, "severity=warning"), 1)
	runs := pfNightlyRuns(t, l)
	require.Len(t, runs, 1)
	require.Equal(t, []string{jobs.StepIntegrity + ":ok"}, pfStepStatuses(runs[0].Steps), "the record holds the one step")

	// The full run of that night then skips it.
	run = pfRunNightly(t, l, map[string]any{"night": pfNight})
	require.Equal(t, []string{
		jobs.StepAutoPromote + ":ok", jobs.StepExpire + ":ok",
		jobs.StepPipeline + ":ok", jobs.StepIntegrity + ":skipped",
	}, pfStepStatuses(run.Steps))
	require.Len(t, pfAlerts(t, l, "severity=warning"), 1)

	// Without a night, the run is for today (by the ledger's clock).
	clk.Set(pfNightAt.AddDate(0, 0, 1))
	run = pfRunNightly(t, l, nil)
	require.Equal(t, "2026-06-16", run.Night)
	require.Equal(t, pfAllSteps(domain.StepOK), pfStepStatuses(run.Steps))
	require.Len(t, pfNightlyRuns(t, l), 3)
}

func TestNightlyCLI(t *testing.T) {
	l := startLedger(t)
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k", "value": "v"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := app.Run(ctx, append([]string{"nightly"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := cli("--step", jobs.StepPipeline, "--night", pfNight, "--addr", l.Main.Addr())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, "--step runs one step only: %s", out)
	require.Regexp(t, `^`+pfNight+`\s+`+jobs.StepPipeline+`\s+ok\s+\d+ms `, lines[0])
	runs := pfNightlyRuns(t, l)
	require.Len(t, runs, 1)
	require.Equal(t, []string{jobs.StepPipeline + ":ok"}, pfStepStatuses(runs[0].Steps))
	require.Empty(t, pfAlerts(t, l, ""), "only the pipeline rules ran: no integrity alert")

	code, out, errOut = cli("--night", pfNight, "--addr", l.URL)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	for i, name := range pfStepNames {
		status := "ok"
		if name == jobs.StepPipeline {
			status = "skipped"
		}
		require.Regexp(t, `^`+pfNight+`\s+`+name+`\s+`+status+`\s`, lines[i])
	}
	require.Contains(t, lines[3], `"total":1`)
	require.Len(t, pfAlerts(t, l, "severity=warning"), 1)

	before := pfLastSeq(t, l)
	code, _, errOut = cli("--step", "vacuum", "--night", pfNight, "--addr", l.Main.Addr())
	require.NotEqual(t, 0, code)
	require.Contains(t, errOut, "unknown step")
	require.Equal(t, before, pfLastSeq(t, l))
}
