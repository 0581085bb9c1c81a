package projections_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// fixture is a log, a projection file and a live runner of the memories projection.
type fixture struct {
	*ledgerLog
	dir    string
	db     *projections.DB
	runner *projections.Runner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	f := &fixture{ledgerLog: newLedgerLog(t, store), dir: dir}
	f.db = openDB(t, filepath.Join(dir, "projections.db"))
	f.runner = newRunner(f.db, store, projections.Memories{})
	startRunner(t, f.runner)
	return f
}

// sync waits until the runner has applied every event appended.
func (f *fixture) sync() {
	f.tb.Helper()
	waitFor(f.tb, f.runner, f.last())
}

// want is the ids of the model's memories that f selects, newest first.
func (f *fixture) want(filter projections.MemoryFilter) []string {
	out := []string{}
	for _, id := range slices.Backward(f.ids) {
		m := f.mems[id]
		if (filter.Status == "" || m.Status == filter.Status) &&
			(filter.MemoryType == "" || m.MemoryType == filter.MemoryType) &&
			(filter.Project == "" || m.Project == filter.Project) {
			out = append(out, id)
		}
	}
	return out
}

// listAll reads every page of filter (with its Limit as the page size) and returns the ids
// in the order read and the number of pages.
func listAll(tb testing.TB, db *projections.DB, filter projections.MemoryFilter) ([]string, int) {
	tb.Helper()
	ids := []string{}
	pages := 0
	for {
		mems, next, err := db.ListMemories(filter)
		require.NoError(tb, err)
		pages++
		require.LessOrEqual(tb, len(mems), filter.Limit)
		ids = append(ids, memoryIDs(tb, mems)...)
		if next == 0 {
			return ids, pages
		}
		require.Len(tb, mems, filter.Limit, "a page before the last is full")
		require.Less(tb, pages, 10_000, "pagination does not end")
		if filter.Before > 0 {
			require.Less(tb, next, filter.Before, "the cursor moves back")
		}
		filter.Before = next
	}
}

func memoryIDs(tb testing.TB, mems []json.RawMessage) []string {
	tb.Helper()
	ids := []string{}
	for _, data := range mems {
		var m domain.Memory
		require.NoError(tb, json.Unmarshal(data, &m))
		ids = append(ids, m.ID)
	}
	return ids
}

// requireListsMatch checks ListMemories for every status, type and project, and a few
// combinations, against the model.
func (f *fixture) requireListsMatch() {
	t := f.tb
	t.Helper()
	var filters []projections.MemoryFilter
	filters = append(filters, projections.MemoryFilter{})
	for _, s := range domain.Statuses {
		filters = append(filters, projections.MemoryFilter{Status: s})
		filters = append(filters, projections.MemoryFilter{Status: s, Project: "alpha"})
		filters = append(filters, projections.MemoryFilter{Status: s, MemoryType: domain.TypeKnowledge})
	}
	for _, mt := range domain.MemoryTypes {
		filters = append(filters, projections.MemoryFilter{MemoryType: mt})
		filters = append(filters, projections.MemoryFilter{MemoryType: mt, Project: "beta"})
	}
	for _, p := range []string{"alpha", "beta", "gamma", "nowhere"} {
		filters = append(filters, projections.MemoryFilter{Project: p})
	}
	for _, filter := range filters {
		filter.Limit = 1000
		got, _ := listAll(t, f.db, filter)
		require.Equal(t, f.want(filter), got, "filter %+v", filter)
	}
	// Each memory is listed under exactly one status: its current one.
	seen := map[string]domain.Status{}
	for _, s := range domain.Statuses {
		got, _ := listAll(t, f.db, projections.MemoryFilter{Status: s, Limit: 1000})
		for _, id := range got {
			prev, dup := seen[id]
			require.False(t, dup, "memory %s listed as %s and as %s", id, prev, s)
			seen[id] = s
			require.Equal(t, f.mems[id].Status, s)
		}
	}
	require.Len(t, seen, len(f.ids))
	f.requireIndexExact()
}

// requireIndexExact checks that the memory index holds exactly one key per memory for each
// index (all, status, type, project) with the memory's current values: a change removes the
// old key rather than leaving it for reads to filter out.
func (f *fixture) requireIndexExact() {
	t := f.tb
	t.Helper()
	created := map[string]uint64{}
	for _, ev := range f.events {
		if _, ok := ev.Data.(domain.MemoryCreated); ok {
			created[ev.AggregateID] = ev.Seq
		}
	}
	want := map[string]string{}
	for id, m := range f.mems {
		seq := string(binary.BigEndian.AppendUint64(nil, created[id]))
		st, ty, pr := string(m.Status), string(m.MemoryType), m.Project
		for _, k := range [][2]string{{"all", ""}, {"status", st}, {"type", ty}, {"project", pr},
			{"status+type", st + "\x01" + ty}, {"status+project", st + "\x01" + pr},
			{"type+project", ty + "\x01" + pr}, {"status+type+project", st + "\x01" + ty + "\x01" + pr}} {
			want[k[0]+"\x00"+k[1]+"\x00"+seq] = id
		}
	}
	got := map[string]string{}
	require.NoError(t, f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("memory_idx")).ForEach(func(k, v []byte) error {
			got[string(k)] = string(v)
			return nil
		})
	}))
	require.Equal(t, want, got)
}

func TestMemoriesIndexesFollowChanges(t *testing.T) {
	f := newFixture(t)
	cand := f.create(domain.StatusCandidate, domain.TypeKnowledge, "alpha")
	act := f.create(domain.StatusActive, domain.TypePreference, "alpha")
	other := f.create(domain.StatusActive, domain.TypeKnowledge, "beta")
	global := f.create(domain.StatusCandidate, domain.TypeEpisodic, "")
	rejected := f.create(domain.StatusCandidate, domain.TypeProject, "beta")
	expired := f.create(domain.StatusCandidate, domain.TypeIdentity, "gamma")
	f.sync()
	f.requireListsMatch()

	// Every way a status changes moves the memory from the old status's index to the new one.
	f.append(cand, domain.MemoryPromoted{})
	f.append(act, domain.MemorySuperseded{SupersededBy: cand})
	f.append(other, domain.MemoryInvalidated{})
	f.append(global, domain.MemoryUpdated{Changed: []string{"status"}, Status: domain.StatusActive})
	f.append(rejected, domain.MemoryRejected{})
	f.append(expired, domain.MemoryExpired{})
	f.sync()
	f.requireListsMatch()
	for id, s := range map[string]domain.Status{cand: domain.StatusActive, act: domain.StatusSuperseded,
		other: domain.StatusInvalid, global: domain.StatusActive, rejected: domain.StatusInvalid, expired: domain.StatusInvalid} {
		require.Equal(t, s, f.mems[id].Status)
	}

	// A change of type moves the memory between the type indexes; other changes keep it where
	// it was.
	f.append(cand, domain.MemoryUpdated{Changed: []string{"memory_type", "content"}, MemoryType: domain.TypeAdaptation, Content: "now an adaptation"})
	f.append(global, domain.MemoryReinforced{Delta: 0.3})
	f.append(global, domain.MemoryUpdated{Changed: []string{"confidence"}, Confidence: 0.2})
	f.sync()
	f.requireListsMatch()
	got, _, err := f.db.ListMemories(projections.MemoryFilter{MemoryType: domain.TypeKnowledge, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{other}, memoryIDs(t, got))
	got, _, err = f.db.ListMemories(projections.MemoryFilter{MemoryType: domain.TypeAdaptation, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{cand}, memoryIDs(t, got))

	// A bigger mixed log.
	writeMixedLog(f.ledgerLog, 30)
	f.sync()
	f.requireListsMatch()
	requireViewsMatch(t, f.db, f.ledgerLog)
}

// auditEntries decodes entries.
func auditEntries(tb testing.TB, raw []json.RawMessage) []projections.AuditEntry {
	tb.Helper()
	out := make([]projections.AuditEntry, len(raw))
	for i, data := range raw {
		require.NoError(tb, json.Unmarshal(data, &out[i]))
	}
	return out
}

func entrySeqs(entries []projections.AuditEntry) []uint64 {
	out := make([]uint64, len(entries))
	for i, e := range entries {
		out[i] = e.Seq
	}
	return out
}

// wantAudit is the positions of the model's events that keep selects, newest first, at most
// limit of them.
func (f *fixture) wantAudit(limit int, keep func(ev domain.Event, action domain.Action) bool) []uint64 {
	out := []uint64{}
	actions := f.actions()
	for i, ev := range slices.Backward(f.events) {
		if len(out) < limit && keep(ev, actions[i]) {
			out = append(out, ev.Seq)
		}
	}
	return out
}

func TestMemoriesAudit(t *testing.T) {
	f := newFixture(t)
	f.Actor = "alice"
	a := f.create(domain.StatusCandidate, domain.TypeKnowledge, "alpha")
	f.Actor = "bob"
	b := f.create(domain.StatusActive, domain.TypePreference, "beta")
	f.append(a, domain.MemoryUpdated{Changed: []string{"content"}, Content: "edited by bob"})
	f.Actor = "alice"
	f.append(a, domain.MemoryPromoted{})
	f.Actor = "carol"
	f.append(a, domain.MemoryReinforced{Delta: 0.1})
	f.append(b, domain.MemoryReinforced{Delta: 0.2})
	f.Actor = "alice"
	f.append(a, domain.MemoryReinforced{Delta: 0.1})
	f.Actor = "bob"
	f.append(a, domain.MemorySuperseded{SupersededBy: b})
	f.Actor = "carol"
	f.append(b, domain.MemoryInvalidated{})
	f.sync()

	t.Run("MemoryAudit is oldest first and chains before and after", func(t *testing.T) {
		raw, err := f.db.MemoryAudit(a)
		require.NoError(t, err)
		entries := auditEntries(t, raw)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionUpdated, domain.ActionPromoted,
			domain.ActionReinforced, domain.ActionReinforced, domain.ActionSuperseded},
			func() []domain.Action {
				var out []domain.Action
				for _, e := range entries {
					out = append(out, e.Action)
				}
				return out
			}())
		require.True(t, slices.IsSorted(entrySeqs(entries)))
		require.Equal(t, []string{"alice", "bob", "alice", "carol", "alice", "bob"},
			func() []string {
				var out []string
				for _, e := range entries {
					out = append(out, e.Actor)
				}
				return out
			}())
		require.JSONEq(t, "null", string(entries[0].Before))
		for i := 1; i < len(entries); i++ {
			require.JSONEq(t, string(entries[i-1].After), string(entries[i].Before), "entry %d", i)
		}
		current, err := f.db.GetMemory(a)
		require.NoError(t, err)
		require.JSONEq(t, string(current), string(entries[len(entries)-1].After))
		for _, e := range entries {
			require.Equal(t, a, e.MemoryID)
			var after domain.Memory
			require.NoError(t, json.Unmarshal(e.After, &after))
			require.Equal(t, e.Seq, after.Seq, "the entry's after is the memory at its position")
			require.Equal(t, e.Timestamp, after.UpdatedAt)
		}
		require.Equal(t, "event 3", entries[1].Note)

		none, err := f.db.MemoryAudit("no-such-memory")
		require.NoError(t, err)
		require.Empty(t, none)
		// A memory id that is a prefix of another's must not see the other's entries.
		prefix, err := f.db.MemoryAudit(a[:8])
		require.NoError(t, err)
		require.Empty(t, prefix)
	})

	t.Run("RecentAudit is newest first and filters", func(t *testing.T) {
		all := func(domain.Event, domain.Action) bool { return true }
		since := t0.Add(5 * time.Second) // the fifth event's time
		for name, c := range map[string]struct {
			filter projections.AuditFilter
			keep   func(domain.Event, domain.Action) bool
		}{
			"all":          {projections.AuditFilter{Limit: 100}, all},
			"limit":        {projections.AuditFilter{Limit: 3}, all},
			"action":       {projections.AuditFilter{Action: domain.ActionReinforced, Limit: 100}, func(_ domain.Event, a domain.Action) bool { return a == domain.ActionReinforced }},
			"action limit": {projections.AuditFilter{Action: domain.ActionReinforced, Limit: 2}, func(_ domain.Event, a domain.Action) bool { return a == domain.ActionReinforced }},
			"actor":        {projections.AuditFilter{Actor: "alice", Limit: 100}, func(ev domain.Event, _ domain.Action) bool { return ev.Actor == "alice" }},
			"action actor": {projections.AuditFilter{Action: domain.ActionReinforced, Actor: "alice", Limit: 100}, func(ev domain.Event, a domain.Action) bool {
				return a == domain.ActionReinforced && ev.Actor == "alice"
			}},
			"since":         {projections.AuditFilter{Since: since, Limit: 100}, func(ev domain.Event, _ domain.Action) bool { return !ev.Time.Before(since) }},
			"since actor":   {projections.AuditFilter{Since: since, Actor: "bob", Limit: 100}, func(ev domain.Event, _ domain.Action) bool { return !ev.Time.Before(since) && ev.Actor == "bob" }},
			"since action":  {projections.AuditFilter{Since: since, Action: domain.ActionCreated, Limit: 100}, func(domain.Event, domain.Action) bool { return false }},
			"unknown actor": {projections.AuditFilter{Actor: "nobody", Limit: 100}, func(domain.Event, domain.Action) bool { return false }},
		} {
			t.Run(name, func(t *testing.T) {
				raw, err := f.db.RecentAudit(c.filter)
				require.NoError(t, err)
				entries := auditEntries(t, raw)
				require.Equal(t, f.wantAudit(c.filter.Limit, c.keep), entrySeqs(entries))
				for _, e := range entries {
					if c.filter.Action != "" {
						require.Equal(t, c.filter.Action, e.Action)
					}
					if c.filter.Actor != "" {
						require.Equal(t, c.filter.Actor, e.Actor)
					}
					require.False(t, e.Timestamp.Before(c.filter.Since))
				}
			})
		}
	})

	t.Run("AuditByEventID", func(t *testing.T) {
		for _, ev := range f.events {
			data, err := f.db.AuditByEventID(ev.ID)
			require.NoError(t, err)
			require.NotNil(t, data, "event %s", ev.ID)
			var e projections.AuditEntry
			require.NoError(t, json.Unmarshal(data, &e))
			require.Equal(t, ev.ID, e.EventID)
			require.Equal(t, ev.Seq, e.Seq)
			require.Equal(t, ev.AggregateID, e.MemoryID)
			require.Equal(t, ev.Actor, e.Actor)
			require.True(t, ev.Time.Equal(e.Timestamp))
		}
		data, err := f.db.AuditByEventID("no-such-event")
		require.NoError(t, err)
		require.Nil(t, data)
	})
}

func TestBuildEqualsLiveAndDiffNamesCorruption(t *testing.T) {
	f := newFixture(t)
	writeMixedLog(f.ledgerLog, 40)
	f.sync()

	var progress []uint64
	rebuilt, err := projections.Build(context.Background(), filepath.Join(f.dir, "rebuilt.db"), f.store,
		[]projections.Projection{projections.Memories{}}, f.last(), func(applied uint64) { progress = append(progress, applied) })
	require.NoError(t, err)
	cleanupDB(t, rebuilt)
	require.Equal(t, f.last(), progress[len(progress)-1])
	cps, err := rebuilt.Checkpoints()
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"memories": f.last()}, cps)

	diffs, err := projections.Diff(f.db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
	requireViewsMatch(t, rebuilt, f.ledgerLog)

	// However it batches and flushes what it holds, a build is the live file.
	requireBuildsLikeLive(t, f.db, f.store, func() []projections.Projection {
		return []projections.Projection{projections.NewMemories(projections.DefaultStateCacheBytes)}
	}, f.last())

	// Corrupt one key of the live file: Diff names the bucket and the key.
	victim := f.ids[3]
	require.NoError(t, f.db.Bolt().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("memories")).Put([]byte(victim), []byte(`{"id":"tampered"}`))
	}))
	diffs, err = projections.Diff(f.db, rebuilt, 10)
	require.NoError(t, err)
	require.Len(t, diffs, 1, "diffs: %q", diffs)
	require.Contains(t, diffs[0], "memories ")
	require.Contains(t, diffs[0], strconv.Quote(victim))
	require.Contains(t, diffs[0], "tampered")

	// A key only one side has.
	require.NoError(t, rebuilt.Bolt().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("memory_counts")).Put([]byte("ghost"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	}))
	diffs, err = projections.Diff(f.db, rebuilt, 10)
	require.NoError(t, err)
	require.Len(t, diffs, 2, "diffs: %q", diffs)
	require.Contains(t, diffs[1], `memory_counts "ghost": missing in the live projections`)

	// At most max differences, and a line that says there are more.
	diffs, err = projections.Diff(f.db, rebuilt, 1)
	require.NoError(t, err)
	require.Len(t, diffs, 2)
	require.Contains(t, diffs[1], "more differences")
}

// A log that ends short of the position a build was asked for (its last event removed, say)
// gives no batch that reaches it: the build still writes what the projections hold.
func TestBuildFlushesWhenTheLogEndsShort(t *testing.T) {
	f := newFixture(t)
	writeMixedLog(f.ledgerLog, 10)
	f.sync()
	require.Greater(t, len(f.events), 4)
	// The log without its next-to-last event; the build asks for that event's position.
	k := len(f.events) - 2
	gap := append(slices.Clone(f.events[:k]), f.events[k+1])
	want, err := projections.Build(context.Background(), filepath.Join(f.dir, "want.db"), sliceSource(f.events[:k]),
		[]projections.Projection{projections.Memories{}}, f.events[k-1].Seq, nil)
	require.NoError(t, err)
	cleanupDB(t, want)
	got, err := projections.Build(context.Background(), filepath.Join(f.dir, "got.db"), sliceSource(gap),
		[]projections.Projection{projections.Memories{}}, f.events[k].Seq, nil)
	require.NoError(t, err)
	cleanupDB(t, got)
	mems, _, err := got.ListMemories(projections.MemoryFilter{Limit: 500})
	require.NoError(t, err)
	require.NotEmpty(t, mems, "the memories held are written")
	diffs, err := projections.Diff(want, got, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
}

// Entries are in log order, and their times need not rise with it: since keeps reading past an
// older entry, up to AuditClockSlack before since.
func TestRecentAuditSinceWithTimesOutOfOrder(t *testing.T) {
	f := newFixture(t)
	id := f.create(domain.StatusActive, domain.TypeKnowledge, "p")
	f.sync()
	since := t0.Add(time.Hour)
	// In log order: the first is behind an entry older than since by more than the slack, where
	// the reading stops; the fourth is older than since within the slack, and is skipped.
	var seqs []uint64
	for _, at := range []time.Duration{
		time.Hour + 5*time.Second,
		time.Hour - 10*time.Minute,
		time.Hour + 2*time.Second,
		time.Hour - time.Second,
		time.Hour + time.Second,
	} {
		ev := domain.NewEvent(id, domain.Meta{EventID: uuid.NewString(), Actor: "x", Time: t0.Add(at)},
			domain.MemoryReinforced{Delta: 0.01})
		res, err := f.store.Append(context.Background(), eventstore.Unchecked, ev)
		require.NoError(t, err)
		seqs = append(seqs, res.Seq)
	}
	waitFor(t, f.runner, seqs[len(seqs)-1])
	raw, err := f.db.RecentAudit(projections.AuditFilter{Since: since, Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []uint64{seqs[4], seqs[2]}, entrySeqs(auditEntries(t, raw)))
}

func TestListMemoriesPagination(t *testing.T) {
	f := newFixture(t)
	for i := range 57 {
		status := []domain.Status{domain.StatusActive, domain.StatusCandidate}[i%2]
		id := f.create(status, domain.MemoryTypes[i%len(domain.MemoryTypes)], []string{"alpha", "beta", "gamma"}[i%3])
		if i%3 == 0 {
			f.append(id, domain.MemoryReinforced{Delta: 0.1})
		}
		if i%7 == 0 && status == domain.StatusCandidate {
			f.append(id, domain.MemoryPromoted{})
		}
	}
	f.sync()

	for _, filter := range []projections.MemoryFilter{
		{},
		{Status: domain.StatusActive},
		{Project: "beta"},
		{MemoryType: domain.TypeKnowledge},
		{Status: domain.StatusCandidate, Project: "alpha"},
	} {
		want := f.want(filter)
		for _, limit := range []int{1, 4, 10, len(want), 100} {
			if limit == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%+v limit %d", filter, limit), func(t *testing.T) {
				filter.Limit = limit
				got, pages := listAll(t, f.db, filter)
				require.Equal(t, want, got, "every memory once, newest first")
				require.Equal(t, max(1, (len(want)+limit-1)/limit), pages)
			})
		}
	}

	// A memory created while a client pages through does not shift the pages after the
	// cursor.
	first, next, err := f.db.ListMemories(projections.MemoryFilter{Limit: 10})
	require.NoError(t, err)
	require.NotZero(t, next)
	f.create(domain.StatusActive, domain.TypeKnowledge, "alpha")
	f.sync()
	rest, _ := listAll(t, f.db, projections.MemoryFilter{Limit: 10, Before: next})
	require.Equal(t, f.want(projections.MemoryFilter{})[1:], append(memoryIDs(t, first), rest...))
}
