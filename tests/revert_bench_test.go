package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/jobs"
	commands "github.com/memledger/memledger/handlers/ledger"
	"github.com/stretchr/testify/require"
)

// revertBenchLog writes, through the command layer's Import, a log of 4 events a memory for n
// memories (created, reinforced twice, updated): slice of them updated last by extractor-v2,
// the rest by their writer.
func revertBenchLog(b *testing.B, l *ledger, n, slice int) {
	b.Helper()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]domain.Event, 0, 4*n)
	at := func(i int) domain.Meta {
		return domain.Meta{EventID: commands.NewID(), Actor: "writer", Time: start.Add(time.Duration(i) * time.Millisecond)}
	}
	for i := range n {
		id := commands.NewID()
		evs = append(evs, domain.NewEvent(id, at(4*i), domain.MemoryCreated{MemoryType: domain.TypeKnowledge,
			Content: fmt.Sprintf("fact number %d of the benchmark", i), Status: domain.StatusCandidate, Confidence: 0.5, DomainTags: []string{}}))
		for k := 1; k <= 2; k++ {
			m := at(4*i + k)
			m.Actor = "reinforcer"
			evs = append(evs, domain.NewEvent(id, m, domain.MemoryReinforced{Delta: 0.05}))
		}
		m := at(4*i + 3)
		if i%(n/slice) == 0 && i/(n/slice) < slice {
			m.Actor = "extractor-v2"
		}
		evs = append(evs, domain.NewEvent(id, m, domain.MemoryUpdated{Changed: []string{"content"}, Content: fmt.Sprintf("fact number %d, rewritten", i)}))
	}
	_, err := l.Main.Ledger.Import(context.Background(), commands.Caller{Actor: "bench"}, evs, commands.ImportOptions{})
	require.NoError(b, err)
}

// BenchmarkRevert10kOf100k times a revert of a slice of 10,000 memories (one actor's last
// change of each) in a log of 100,000 events: the dry run, and the apply (each apply reverts
// what the one before wrote, so that every iteration writes 10,000 events); then a shadow
// replay of the log under the live policy and a rebuild of it, as events per second.
// MEMLEDGER_BENCH_REVERT_MEMORIES sets another number of memories (a quarter of the events;
// the slice is two fifths of them).
func BenchmarkRevert10kOf100k(b *testing.B) {
	n := 25_000
	if v, err := strconv.Atoi(os.Getenv("MEMLEDGER_BENCH_REVERT_MEMORIES")); err == nil && v >= 5 {
		n = v
	}
	slice := n * 2 / 5
	l := startLedger(b, withFsync(eventstore.FsyncAlways))
	began := time.Now()
	revertBenchLog(b, l, n, slice)
	b.Logf("wrote %d events in %s", 4*n, time.Since(began).Round(time.Millisecond))
	filter := commands.RevertFilter{Actor: "extractor-v2"}
	admin := commands.Caller{Actor: "bench-admin", Role: domain.RoleAdmin}

	b.Run("dry-run", func(b *testing.B) {
		for b.Loop() {
			plan, err := l.Main.Ledger.Revert(context.Background(), admin, "", filter, commands.RevertOptions{})
			require.NoError(b, err)
			require.Equal(b, slice, plan.Counts.Planned)
		}
		b.ReportMetric(float64(slice), "memories")
	})
	b.Run("apply", func(b *testing.B) {
		f, i := filter, 0
		for b.Loop() {
			c := commands.Caller{Actor: fmt.Sprintf("bench-admin-%d", i), Role: domain.RoleAdmin}
			plan, err := l.Main.Ledger.Revert(context.Background(), c, "", f, commands.RevertOptions{Apply: true})
			require.NoError(b, err)
			require.Equal(b, slice, plan.Counts.Reverted)
			// The next iteration reverts this one's reverts.
			f, i = commands.RevertFilter{Actor: c.Actor, Actions: []domain.Action{domain.ActionReverted}}, i+1
		}
		b.ReportMetric(float64(slice), "memories")
	})
	// The shadow replay of the same log under the live policy, and rebuild's rate on it.
	var events uint64
	b.Run("shadow", func(b *testing.B) {
		var seconds float64
		for b.Loop() {
			rep, err := jobs.Shadow(context.Background(), l.Main.Store, jobs.Policy{Rules: jobs.DefaultRules(), Pipeline: jobs.DefaultPipelineRules()}, jobs.ShadowOptions{})
			require.NoError(b, err)
			require.Empty(b, rep.Differences)
			events, seconds = rep.Events, seconds+rep.Seconds
		}
		b.ReportMetric(float64(events)*float64(b.N)/seconds, "events/s")
	})
	b.Run("rebuild", func(b *testing.B) {
		l.stop()
		var seconds float64
		for b.Loop() {
			began := time.Now()
			code, out, errOut := runAppB(b, "rebuild", "--data", l.cfg.Data)
			require.Equal(b, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			seconds += time.Since(began).Seconds()
		}
		b.ReportMetric(float64(events)*float64(b.N)/seconds, "events/s")
	})
}

// runAppB runs memledger with args in-process and returns its exit status and output.
func runAppB(b *testing.B, args ...string) (int, string, string) {
	b.Helper()
	var out, errOut bytes.Buffer
	code := app.Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}
