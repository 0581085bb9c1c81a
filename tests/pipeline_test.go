package tests

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// pipelineResult is the answer of POST /admin/pipeline/check.
type pipelineResult struct {
	PassRate      *float64       `json:"pass_rate"`
	MinPassRate   float64        `json:"min_pass_rate"`
	Candidates    int            `json:"candidates"`
	MaxCandidates int            `json:"max_candidates"`
	Alerts        []domain.Alert `json:"alerts"`
}

func pipelineHarness(t *testing.T, l *ledger, body map[string]any) projections.HarnessResult {
	t.Helper()
	res := l.do("POST", "/admin/harness", body)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var h projections.HarnessResult
	res.Decode(t, &h)
	return h
}

func pipelineCheck(t *testing.T, l *ledger, body any) pipelineResult {
	t.Helper()
	res := l.do("POST", "/admin/pipeline/check", body)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var r pipelineResult
	res.Decode(t, &r)
	require.NotNil(t, r.Alerts, "alerts is [] rather than null")
	return r
}

// pipelineCandidates creates n candidate memories over HTTP, a few at a time.
func pipelineCandidates(t *testing.T, l *ledger, from, n int) {
	t.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := fmt.Sprintf(`{"memory_type":"knowledge","status":"candidate","content":"candidate fact number %d"}`, i)
				req, err := http.NewRequest("POST", l.URL+"/memory", strings.NewReader(body))
				if err != nil {
					errs <- err
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("memory %d: status %d", i, res.StatusCode)
				}
			}
		}()
	}
	for i := from; i < from+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestPipelinePassRateRule(t *testing.T) {
	l := startLedger(t)

	// No harness result yet: nothing to judge.
	r := pipelineCheck(t, l, nil)
	require.Nil(t, r.PassRate)
	require.Empty(t, r.Alerts)
	require.Equal(t, 0.85, r.MinPassRate)
	require.Equal(t, 200, r.MaxCandidates)

	h := pipelineHarness(t, l, map[string]any{"pass_rate": 0.84, "passed": 84, "total": 100, "note": "nightly run"})
	require.Equal(t, 0.84, h.PassRate)
	require.Equal(t, 84, h.Passed)
	require.Equal(t, 100, h.Total)
	require.Equal(t, "nightly run", h.Note)
	r = pipelineCheck(t, l, nil)
	require.NotNil(t, r.PassRate)
	require.Equal(t, 0.84, *r.PassRate)
	require.Len(t, r.Alerts, 1)
	a := r.Alerts[0]
	require.Equal(t, domain.SeverityWarning, a.Severity)
	require.Equal(t, jobs.ActorPipelineRules, a.Actor)
	require.Equal(t, 0.84, a.Context["pass_rate"])
	require.Equal(t, 0.85, a.Context["threshold"])
	require.Equal(t, float64(84), a.Context["passed"])
	require.Equal(t, float64(100), a.Context["total"])
	require.Contains(t, a.Message, "84.0%")
	require.Contains(t, a.Message, "85.0%")
	v := alertList(t, l, "")
	require.Equal(t, []string{a.ID}, alertIDs(v.Alerts), "the warning is recorded")
	require.Equal(t, a.ID, v.Last["warning"].ID)
	lines := alertWaitLines(t, l.cfg.AlertLogPath(), 1)
	require.Contains(t, lines[0], "[WARNING] "+a.Title)
	require.Contains(t, lines[0], `"pass_rate":0.84`)

	// 0.85 is not below 0.85 (pass_rate computed from passed/total when not given).
	h = pipelineHarness(t, l, map[string]any{"passed": 17, "total": 20})
	require.Equal(t, 0.85, h.PassRate)
	r = pipelineCheck(t, l, nil)
	require.Equal(t, 0.85, *r.PassRate)
	require.Empty(t, r.Alerts)

	// A threshold in the body overrides.
	r = pipelineCheck(t, l, map[string]any{"min_pass_rate": 0.9})
	require.Equal(t, 0.9, r.MinPassRate)
	require.Len(t, r.Alerts, 1)
	require.Equal(t, 0.85, r.Alerts[0].Context["pass_rate"])
	require.Equal(t, 0.9, r.Alerts[0].Context["threshold"])
	require.Empty(t, pipelineCheck(t, l, map[string]any{"min_pass_rate": 0.85}).Alerts)
	require.Len(t, alertList(t, l, "").Alerts, 2)

	// Bad thresholds.
	alertRequireProblem(t, l.do("POST", "/admin/pipeline/check", map[string]any{"min_pass_rate": 1.5}), http.StatusBadRequest, "min_pass_rate")
	alertRequireProblem(t, l.do("POST", "/admin/pipeline/check", map[string]any{"max_candidates": -1}), http.StatusBadRequest, "max_candidates")
	alertRequireProblem(t, l.do("POST", "/admin/pipeline/check", map[string]any{"max_candidate": 3}), http.StatusBadRequest, "max_candidate", "unknown field")
	require.Len(t, alertList(t, l, "").Alerts, 2)
}

func TestPipelinePassRateFromConfig(t *testing.T) {
	l := startLedger(t, withConfig(func(c *app.Config) { c.MinPassRate = 0.5 }))
	pipelineHarness(t, l, map[string]any{"pass_rate": 0.84, "passed": 84, "total": 100})
	r := pipelineCheck(t, l, nil)
	require.Equal(t, 0.5, r.MinPassRate)
	require.Empty(t, r.Alerts)
	pipelineHarness(t, l, map[string]any{"pass_rate": 0.49, "passed": 49, "total": 100})
	r = pipelineCheck(t, l, nil)
	require.Len(t, r.Alerts, 1)
	require.Equal(t, 0.5, r.Alerts[0].Context["threshold"])
	require.Equal(t, 0.49, r.Alerts[0].Context["pass_rate"])
}

func TestPipelineCandidateRule(t *testing.T) {
	l := startLedger(t)
	l.create(map[string]any{"memory_type": "knowledge", "content": "an active memory is no candidate"})
	pipelineCandidates(t, l, 0, 200)
	r := pipelineCheck(t, l, nil)
	require.Equal(t, 200, r.Candidates)
	require.Empty(t, r.Alerts, "200 candidates are not more than 200")

	pipelineCandidates(t, l, 200, 1)
	r = pipelineCheck(t, l, nil)
	require.Equal(t, 201, r.Candidates)
	require.Len(t, r.Alerts, 1)
	a := r.Alerts[0]
	require.Equal(t, domain.SeverityWarning, a.Severity)
	require.Equal(t, float64(201), a.Context["candidates"])
	require.Equal(t, float64(200), a.Context["threshold"])
	require.Contains(t, a.Message, "201")
	require.Equal(t, []string{a.ID}, alertIDs(alertList(t, l, "").Alerts))

	// Thresholds from the body override.
	require.Empty(t, pipelineCheck(t, l, map[string]any{"max_candidates": 201}).Alerts)
	r = pipelineCheck(t, l, map[string]any{"max_candidates": 100})
	require.Equal(t, 100, r.MaxCandidates)
	require.Len(t, r.Alerts, 1)
	require.Equal(t, float64(100), r.Alerts[0].Context["threshold"])

	// Both rules at once raise two warnings.
	pipelineHarness(t, l, map[string]any{"pass_rate": 0.5, "passed": 1, "total": 2})
	r = pipelineCheck(t, l, nil)
	require.Len(t, r.Alerts, 2)
	require.Contains(t, r.Alerts[0].Context, "pass_rate")
	require.Contains(t, r.Alerts[1].Context, "candidates")
	require.Len(t, alertList(t, l, "").Alerts, 4)

	// And from the configuration (here through a restart with another MaxCandidates).
	l.cfg.MaxCandidates = 300
	l.cfg.MinPassRate = 0.4
	l.restart()
	r = pipelineCheck(t, l, nil)
	require.Equal(t, 300, r.MaxCandidates)
	require.Equal(t, 201, r.Candidates)
	require.Empty(t, r.Alerts)
}

func TestHarnessValidation(t *testing.T) {
	l := startLedger(t)
	post := func(body any) response { return l.do("POST", "/admin/harness", body) }
	alertRequireProblem(t, post(map[string]any{"passed": 11, "total": 10}), http.StatusBadRequest, "passed", "11", "10")
	alertRequireProblem(t, post(map[string]any{"pass_rate": 1.5, "passed": 1, "total": 1}), http.StatusBadRequest, "pass_rate", "1.5")
	alertRequireProblem(t, post(map[string]any{"pass_rate": 1.5}), http.StatusBadRequest, "pass_rate")
	alertRequireProblem(t, post(map[string]any{"pass_rate": -0.1}), http.StatusBadRequest, "pass_rate")
	alertRequireProblem(t, post(map[string]any{"pass_rate": 0.5, "passed": 9, "total": 10}), http.StatusBadRequest, "pass_rate", "9/10")
	alertRequireProblem(t, post(map[string]any{"passed": -1, "total": 10}), http.StatusBadRequest, "total")
	alertRequireProblem(t, post(map[string]any{"passed": 0, "total": 0}), http.StatusBadRequest, "pass_rate", "required")
	alertRequireProblem(t, post(map[string]any{"pass_rate": 0.9, "score": 1}), http.StatusBadRequest, "score", "unknown field")
	alertRequireProblem(t, post(`{"pass_rate":"high"}`), http.StatusBadRequest, "pass_rate", "number")
	alertRequireProblem(t, post(""), http.StatusBadRequest, "body")

	// Nothing was recorded: the check has no pass rate.
	require.Nil(t, pipelineCheck(t, l, nil).PassRate)

	// A pass rate alone is fine; so are the bounds.
	require.Equal(t, 0.9, pipelineHarness(t, l, map[string]any{"pass_rate": 0.9}).PassRate)
	require.Equal(t, 0.0, pipelineHarness(t, l, map[string]any{"passed": 0, "total": 5}).PassRate)
	h := pipelineHarness(t, l, map[string]any{"pass_rate": 1, "passed": 5, "total": 5})
	require.Equal(t, 1.0, h.PassRate)
	require.Equal(t, principal, h.Actor, "the actor is the token")
	require.Equal(t, 1.0, *pipelineCheck(t, l, nil).PassRate, "the latest result counts")
}
