package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// everyFilter is every combination of a status, a type and a project (each possibly unset).
func everyFilter(projects []string) []projections.MemoryFilter {
	statuses := append([]domain.Status{""}, domain.Statuses...)
	types := append([]domain.MemoryType{""}, domain.MemoryTypes...)
	var out []projections.MemoryFilter
	for _, s := range statuses {
		for _, mt := range types {
			for _, p := range append([]string{""}, projects...) {
				out = append(out, projections.MemoryFilter{Status: s, MemoryType: mt, Project: p})
			}
		}
	}
	return out
}

// randomMutations appends n random events to l: creations and every kind of change, by a
// few actors, over a few projects (and global memories).
func randomMutations(l *ledgerLog, rng *rand.Rand, n int, projects []string) {
	actors := []string{"alice", "bob", "carol"}
	for range n {
		l.Actor = actors[rng.IntN(len(actors))]
		live := []string{}
		for _, id := range l.ids {
			if l.mems[id].Status == domain.StatusCandidate || l.mems[id].Status == domain.StatusActive {
				live = append(live, id)
			}
		}
		if len(live) == 0 || rng.IntN(3) == 0 {
			status := []domain.Status{domain.StatusCandidate, domain.StatusActive}[rng.IntN(2)]
			l.create(status, domain.MemoryTypes[rng.IntN(len(domain.MemoryTypes))], projects[rng.IntN(len(projects))])
			continue
		}
		id := live[rng.IntN(len(live))]
		m := l.mems[id]
		switch k := rng.IntN(7); {
		case k == 0 && m.Status == domain.StatusCandidate:
			l.append(id, domain.MemoryPromoted{})
		case k == 1 && m.Status == domain.StatusCandidate:
			l.append(id, domain.MemoryRejected{})
		case k == 2:
			l.append(id, domain.MemoryInvalidated{})
		case k == 3:
			l.append(id, domain.MemoryUpdated{Changed: []string{"memory_type"}, MemoryType: domain.MemoryTypes[rng.IntN(len(domain.MemoryTypes))]})
		case k == 4 && m.Status == domain.StatusActive:
			l.append(id, domain.MemoryUpdated{Changed: []string{"status"}, Status: domain.StatusCandidate})
		case k == 5 && len(live) > 1 && live[0] != id:
			l.append(id, domain.MemorySuperseded{SupersededBy: live[0]})
		default:
			l.append(id, domain.MemoryReinforced{Delta: 0.1})
		}
	}
}

// TestIndexesAndCountsAfterRandomMutations holds every list filter combination, the oldest-first
// reads, the recent audit by action and actor and the kept counts to a model of the log, after
// each of several rounds of random mutations, and to a rebuild at the end.
func TestIndexesAndCountsAfterRandomMutations(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(14, 1))
	projects := []string{"alpha", "beta", ""}
	filters := everyFilter([]string{"alpha", "beta", "nowhere"})
	for round := range 4 {
		randomMutations(f.ledgerLog, rng, 60, projects)
		f.sync()
		for _, filter := range filters {
			want := f.want(filter)
			filter.Limit = 7
			got, _ := listAll(t, f.db, filter)
			require.Equal(t, want, got, "round %d, filter %+v", round, filter)

			filter.Limit = 3
			first, err := f.db.FirstMemories(filter)
			require.NoError(t, err)
			oldest := slices.Clone(want)
			slices.Reverse(oldest)
			require.Equal(t, oldest[:min(3, len(oldest))], idsOf(first), "round %d, first of %+v", round, filter)
			all, err := f.db.MemoriesOldestFirst(filter)
			require.NoError(t, err)
			require.Equal(t, oldest, idsOf(all), "round %d, oldest first of %+v", round, filter)
		}
		f.requireIndexExact()

		counts, err := f.db.MemoryCounts()
		require.NoError(t, err)
		require.Equal(t, modelCounts(f.ledgerLog), counts, "round %d", round)
		miscounts, err := f.db.CheckCounts(10)
		require.NoError(t, err)
		require.Empty(t, miscounts)

		for _, action := range []domain.Action{"", domain.ActionCreated, domain.ActionUpdated, domain.ActionPromoted, domain.ActionRejected, domain.ActionInvalidated, domain.ActionSuperseded, domain.ActionReinforced} {
			for _, actor := range []string{"", "alice", "bob", "carol", "nobody"} {
				got, err := f.db.RecentAudit(projections.AuditFilter{Action: action, Actor: actor, Limit: 5})
				require.NoError(t, err)
				want := f.wantAudit(5, func(ev domain.Event, a domain.Action) bool {
					return (action == "" || a == action) && (actor == "" || ev.Actor == actor)
				})
				require.Equal(t, want, entrySeqs(auditEntries(t, got)), "round %d, action %q, actor %q", round, action, actor)
			}
		}
	}
	requireViewsMatch(t, f.db, f.ledgerLog)
}

func idsOf(ms []domain.Memory) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// modelCounts counts the model's memories as MemoryCounts reports them.
func modelCounts(l *ledgerLog) projections.MemoryCounts {
	c := projections.MemoryCounts{ByStatus: map[string]int{}, ByType: map[string]int{}, ByProject: map[string]int{}}
	for _, s := range domain.Statuses {
		c.ByStatus[string(s)] = 0
	}
	for _, mt := range domain.MemoryTypes {
		c.ByType[string(mt)] = 0
	}
	for _, m := range l.mems {
		c.Total++
		c.ByStatus[string(m.Status)]++
		c.ByType[string(m.MemoryType)]++
		c.ByProject[m.Project]++
		if m.ReferenceCount > 0 {
			c.Reinforced++
		}
	}
	return c
}

// TestStateCountsAfterRandomChanges holds the project-state counts the projection keeps to a
// recount of its entries and to a model, after random sets and invalidations.
func TestStateCountsAfterRandomChanges(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	r := newRunner(db, store, projections.State{})
	startRunner(t, r)
	rng := rand.New(rand.NewPCG(14, 2))
	type key struct{ project, category, key string }
	active := map[key]bool{}
	var last uint64
	for round := range 3 {
		for i := range 80 {
			k := key{[]string{"alpha", "beta", "gamma"}[rng.IntN(3)], []string{"status", "decision", "fact"}[rng.IntN(3)], fmt.Sprintf("k%d", rng.IntN(8))}
			var p domain.Payload = domain.StateSet{Category: k.category, Key: k.key, Value: fmt.Sprintf("v%d-%d", round, i), Source: "test", Confidence: 1}
			_, known := active[k]
			if known && rng.IntN(3) == 0 {
				p = domain.StateInvalidated{Category: k.category, Key: k.key}
				active[k] = false
			} else {
				active[k] = true
			}
			ev := domain.NewEvent(k.project, domain.Meta{EventID: uuid.NewString(), Actor: "tester", Time: t0.Add(time.Duration(i) * time.Second)}, p)
			res, err := store.Append(context.Background(), eventstore.Unchecked, ev)
			require.NoError(t, err)
			last = res.Seq
		}
		waitFor(t, r, last)
		want := projections.StateCounts{ByProject: map[string]int{}, ByCategory: map[string]int{}}
		for k, on := range active {
			if !on {
				want.Invalid++
				continue
			}
			want.Total++
			want.ByProject[k.project]++
			want.ByCategory[k.category]++
		}
		kept, err := db.StateCounts()
		require.NoError(t, err)
		require.Equal(t, want, kept, "round %d", round)
		recount, err := db.RecountState()
		require.NoError(t, err)
		require.Equal(t, recount, kept)
		miscounts, err := db.CheckCounts(10)
		require.NoError(t, err)
		require.Empty(t, miscounts)
	}
}
