package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

func TestNightlyRunsOncePerCluster(t *testing.T) {
	url := eventstoretest.StartServer(t)
	instances := []*ledger{startLedger(t, withConfig(func(c *app.Config) { c.NatsURL = url }))}
	for range 2 {
		// The tokens are in the shared log: the other instances take the first one's admin token.
		dir := joinDir(t, instances[0])
		instances = append(instances, startLedger(t, withConfig(func(c *app.Config) { c.NatsURL, c.Data = url, dir })))
	}
	// Something for the steps to do: candidates to promote, written on the first instance.
	for range 3 {
		m := instances[0].mem(map[string]any{"memory_type": "knowledge", "content": "reinforced " + time.Now().String(), "status": "candidate"})
		for range 3 {
			instances[0].act("POST", "/memory/"+m.ID+"/reinforce", map[string]any{"delta": 0.3})
		}
	}

	// Each step counts its runs across the instances, and how many run at once; it takes a
	// while, so that the instances' runs would overlap without the lease.
	var mu sync.Mutex
	runs := map[string]int{}
	var running, most atomic.Int32
	for _, l := range instances {
		for i, step := range l.Main.Nightly.Steps {
			inner := step.Run
			l.Main.Nightly.Steps[i].Run = func(ctx context.Context, night string) (map[string]any, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				mu.Lock()
				runs[step.Name]++
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
				return inner(ctx, night)
			}
		}
	}

	var wg sync.WaitGroup
	results := make([]domain.NightlyRan, len(instances))
	for i, l := range instances {
		wg.Go(func() {
			res := l.expect(http.StatusOK, "POST", "/admin/nightly/run", map[string]any{"night": "2026-12-01"})
			require.NoError(t, json.Unmarshal(res.Body, &results[i]))
		})
	}
	wg.Wait()
	for _, step := range instances[0].Main.Nightly.StepNames() {
		require.Equal(t, 1, runs[step], "step %s ran once in the cluster", step)
	}
	require.Equal(t, int32(1), most.Load(), "steps of two instances ran at once")
	var ok, skipped int
	for _, r := range results {
		for _, s := range r.Steps {
			switch s.Status {
			case domain.StepOK:
				ok++
			case domain.StepSkipped:
				skipped++
			}
		}
	}
	n := len(instances[0].Main.Nightly.Steps)
	require.Equal(t, n, ok)
	require.Equal(t, 2*n, skipped)

	// The candidates were promoted once: every instance serves them active.
	for _, l := range instances {
		var page listPage
		l.expect(http.StatusOK, "GET", "/memory?status=active", nil).Decode(t, &page)
		require.Len(t, page.Memories, 3)
	}

	// With an instance gone (a stop releases its lease; a holder that dies loses it when it
	// expires, see eventstore's TestLeaseExpiresWhenItsHolderDies), the others run the nights.
	instances[0].stop()
	res := instances[1].expect(http.StatusOK, "POST", "/admin/nightly/run", map[string]any{"night": "2026-12-02", "step": "integrity"})
	var r domain.NightlyRan
	require.NoError(t, json.Unmarshal(res.Body, &r))
	require.Equal(t, domain.StepOK, r.Steps[0].Status)
	require.Equal(t, 2, runs["integrity"])
}

// The nightly run's lease is lost while a step is under way (another holder took it over, as
// it may once this one was cut off from the server past its renewals): the run stops, answers
// 503 with Retry-After and a detail that says so, and records the steps that ended (the one
// cut short as failed), so that the next run of the night skips the step done and runs the
// rest.
func TestNightlyLeaseLostMidRun(t *testing.T) {
	url := eventstoretest.StartServer(t)
	l := startLedger(t, withConfig(func(c *app.Config) { c.NatsURL = url }))
	// Renewed every second: the takeover is seen within one.
	l.Main.Store.LeaseTTL = 3 * time.Second
	var candidates []string
	for range 2 {
		m := l.mem(map[string]any{"memory_type": "knowledge", "content": "reinforced " + time.Now().String(), "status": "candidate"})
		for range 3 {
			l.act("POST", "/memory/"+m.ID+"/reinforce", map[string]any{"delta": 0.3})
		}
		candidates = append(candidates, m.ID)
	}

	steps := l.Main.Nightly.StepNames()
	held := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	second := l.Main.Nightly.Steps[1].Run
	l.Main.Nightly.Steps[1].Run = func(ctx context.Context, night string) (map[string]any, error) {
		if holding.Load() {
			close(held)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return second(ctx, night)
	}

	const night = "2026-12-01"
	answer := make(chan response, 1)
	go func() {
		res, err := l.send("POST", "/admin/nightly/run", map[string]any{"night": night})
		if err != nil {
			t.Errorf("nightly run: %v", err)
		}
		answer <- res
	}()
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("the second step did not begin")
	}
	// Another holder writes the lease's key.
	kv, err := l.Main.Store.JetStream().KeyValue(t.Context(), eventstore.LeaseBucket(l.Main.Store.Stream))
	require.NoError(t, err)
	_, err = kv.Put(t.Context(), "nightly", []byte(`{"holder":"another instance"}`))
	require.NoError(t, err)

	var res response
	select {
	case res = <-answer:
	case <-time.After(60 * time.Second):
		t.Fatal("the run goes on without its lease")
	}
	require.Equal(t, http.StatusServiceUnavailable, res.Status, "body: %s", res.Body)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	detail := res.JSON(t)["detail"].(string)
	require.Contains(t, detail, "lost the nightly pipeline's lease")
	require.Contains(t, detail, "the steps that ended are recorded ("+steps[0]+" ok, "+steps[1]+" failed)")
	t.Logf("answer: %s", detail)

	// The run is recorded with the steps that ended.
	var runs struct {
		Runs []struct {
			Night string              `json:"night"`
			Steps []domain.StepResult `json:"steps"`
		} `json:"runs"`
	}
	l.expect(http.StatusOK, "GET", "/admin/nightly", nil).Decode(t, &runs)
	require.Len(t, runs.Runs, 1)
	require.Equal(t, night, runs.Runs[0].Night)
	require.Len(t, runs.Runs[0].Steps, 2)
	require.Equal(t, domain.StepOK, runs.Runs[0].Steps[0].Status)
	require.Equal(t, domain.StepFailed, runs.Runs[0].Steps[1].Status)
	require.Contains(t, runs.Runs[0].Steps[1].Error, "lost the nightly pipeline's lease")

	// The other holder's lease ends (it expires; here it is deleted): the night is run again,
	// and the step done is skipped, the others run.
	require.NoError(t, kv.Delete(t.Context(), "nightly"))
	holding.Store(false)
	var again domain.NightlyRan
	l.expect(http.StatusOK, "POST", "/admin/nightly/run", map[string]any{"night": night}).Decode(t, &again)
	require.Len(t, again.Steps, len(steps))
	require.Equal(t, domain.StepSkipped, again.Steps[0].Status)
	for _, s := range again.Steps[1:] {
		require.Equal(t, domain.StepOK, s.Status, "step %s", s.Name)
	}
	for _, id := range candidates {
		promoted := 0
		for _, e := range l.auditOf(id) {
			if e.Action == domain.ActionPromoted {
				promoted++
			}
		}
		require.Equal(t, 1, promoted, "memory %s promoted once", id)
	}
}
