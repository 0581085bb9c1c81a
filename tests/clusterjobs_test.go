package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

func TestNightlyRunsOncePerCluster(t *testing.T) {
	url := eventstoretest.StartServer(t)
	instances := []*ledger{startLedger(t, withConfig(func(c *app.Config) { c.NatsURL = url }))}
	for range 2 {
		// The tokens are in the shared log: the other instances take the first one's admin token.
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.token"), []byte(adminToken(t, instances[0].cfg.Data)+"\n"), 0o600))
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
