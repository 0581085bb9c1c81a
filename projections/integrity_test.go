package projections_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// integLog is a real embedded log with a live runner of the integrity projection alone.
type integLog struct {
	t      *testing.T
	dir    string
	store  *eventstore.Store
	db     *projections.DB
	runner *projections.Runner
	last   uint64
	n      int
}

func newIntegLog(t *testing.T) *integLog {
	t.Helper()
	dir := t.TempDir()
	store := eventstore.New(dir)
	store.Fsync = eventstore.FsyncInterval
	store.Logger = slog.New(slog.DiscardHandler)
	require.NoError(t, store.Open(context.Background()))
	t.Cleanup(func() { store.Close() })
	l := &integLog{t: t, dir: dir, store: store}
	l.db, l.runner = integRunner(t, store, filepath.Join(dir, "live.db"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the runner did not stop")
		}
	})
	return l
}

// integRunner opens a projection file at path with a runner of the integrity projection.
func integRunner(t *testing.T, src projections.Source, path string) (*projections.DB, *projections.Runner) {
	t.Helper()
	db, err := projections.Open(path, true)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	r := &projections.Runner{DB: db, Source: src, Projections: []projections.Projection{projections.Integrity{}},
		Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, r.Init())
	return db, r
}

// add appends an event of aggregate id, as an import would (no expected position), and waits
// until the projection has applied it.
func (l *integLog) add(id string, p domain.Payload) {
	l.t.Helper()
	l.n++
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := domain.NewEvent(id, domain.Meta{EventID: uuid.NewString(), Actor: "import",
		Time: time.Date(2026, 4, 1, 0, 0, l.n, 0, time.UTC)}, p)
	res, err := l.store.Append(ctx, eventstore.Unchecked, ev)
	require.NoError(l.t, err)
	l.last = res.Seq
	require.NoError(l.t, l.runner.WaitFor(ctx, res.Seq))
}

// report is the live report, checked to be at the last event and consistent with itself.
func (l *integLog) report() domain.IntegrityReport {
	l.t.Helper()
	r := integReport(l.t, l.db)
	require.Equal(l.t, l.last, r.AtSeq)
	return r
}

func integReport(t *testing.T, db *projections.DB) domain.IntegrityReport {
	t.Helper()
	r, err := db.IntegrityReport()
	require.NoError(t, err)
	require.Len(t, r.Counts, len(domain.IntegrityChecks))
	total := 0
	for _, c := range domain.IntegrityChecks {
		total += r.Counts[c]
	}
	require.Equal(t, total, r.Total)
	require.Len(t, r.Findings, total)
	for _, f := range r.Findings {
		sort.Strings(f.MemoryIDs)
	}
	return r
}

func integOf(r domain.IntegrityReport, check string) []domain.Finding {
	out := []domain.Finding{}
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func integCreated(typ domain.MemoryType, project, content string, status domain.Status, chunk string) domain.MemoryCreated {
	return domain.MemoryCreated{MemoryType: typ, Project: project, Content: content, Status: status, Confidence: 1, SourceChunkID: chunk}
}

func integSorted(ids ...string) []string {
	sort.Strings(ids)
	return ids
}

func TestIntegrityProjectionMissingAndOrphanedChunks(t *testing.T) {
	l := newIntegLog(t)
	require.Empty(t, l.report().Findings)

	// A memory cites a chunk that does not exist.
	l.add("m1", integCreated(domain.TypeKnowledge, "", "cites c1", domain.StatusActive, "c1"))
	require.Equal(t, []domain.Finding{{Check: domain.CheckMissingChunk, MemoryID: "m1", ChunkID: "c1"}}, l.report().Findings)

	// The chunk arrives before its document: it exists (no longer missing) but is orphaned.
	l.add("d1", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c1", DocumentID: "d1", Content: "x"}, {ID: "c2", DocumentID: "d1", ChunkIndex: 1, Content: "y"}}})
	require.Equal(t, []domain.Finding{
		{Check: domain.CheckOrphanedChunk, ChunkID: "c1", DocumentID: "d1"},
		{Check: domain.CheckOrphanedChunk, ChunkID: "c2", DocumentID: "d1"},
	}, l.report().Findings)

	// Its document is recorded: nothing wrong.
	l.add("d1", domain.DocumentRecorded{FilePath: "a.md"})
	require.Empty(t, l.report().Findings)
	// Chunks added to an existing document are not orphans.
	l.add("d1", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c3", DocumentID: "d1", ChunkIndex: 2, Content: "z"}}})
	require.Empty(t, l.report().Findings)

	// A second memory cites c3; deleting the document makes both memories findings.
	l.add("m2", integCreated(domain.TypeKnowledge, "", "cites c3", domain.StatusCandidate, "c3"))
	l.add("m3", integCreated(domain.TypeKnowledge, "", "no source", domain.StatusActive, ""))
	require.Empty(t, l.report().Findings)
	l.add("d1", domain.DocumentDeleted{})
	require.Equal(t, []domain.Finding{
		{Check: domain.CheckMissingChunk, MemoryID: "m1", ChunkID: "c1"},
		{Check: domain.CheckMissingChunk, MemoryID: "m2", ChunkID: "c3"},
	}, l.report().Findings)

	// Recording c3 in another document clears m2 only.
	l.add("d2", domain.DocumentRecorded{FilePath: "b.md", Chunks: []domain.Chunk{{ID: "c3", DocumentID: "d2", Content: "z"}}})
	require.Equal(t, []domain.Finding{{Check: domain.CheckMissingChunk, MemoryID: "m1", ChunkID: "c1"}}, l.report().Findings)

	// Deleting a document whose chunks are orphans clears them.
	l.add("d3", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c9", DocumentID: "d3", Content: "x"}}})
	require.Len(t, integOf(l.report(), domain.CheckOrphanedChunk), 1)
	l.add("d3", domain.DocumentDeleted{})
	require.Empty(t, integOf(l.report(), domain.CheckOrphanedChunk))

	// A later change of a memory leaves its chunk finding alone.
	l.add("m1", domain.MemoryInvalidated{})
	require.Equal(t, []domain.Finding{{Check: domain.CheckMissingChunk, MemoryID: "m1", ChunkID: "c1"}}, l.report().Findings)

	integRequireRebuildEqual(t, l)
}

func TestIntegrityProjectionDuplicates(t *testing.T) {
	l := newIntegLog(t)
	l.add("a", integCreated(domain.TypePreference, "p", "Uses  Python", domain.StatusActive, ""))
	l.add("b", integCreated(domain.TypePreference, "p", "uses python", domain.StatusActive, ""))
	want := domain.Finding{Check: domain.CheckDuplicateMemory, MemoryType: "preference", Project: "p", Content: "uses python",
		MemoryIDs: []string{"a", "b"}}
	require.Equal(t, []domain.Finding{want}, l.report().Findings)

	// Not duplicates: a candidate, another type, another project, a global memory.
	l.add("c", integCreated(domain.TypePreference, "p", "USES PYTHON", domain.StatusCandidate, ""))
	l.add("d", integCreated(domain.TypeKnowledge, "p", "uses python", domain.StatusActive, ""))
	l.add("e", integCreated(domain.TypePreference, "q", "uses python", domain.StatusActive, ""))
	l.add("f", integCreated(domain.TypePreference, "", "uses python", domain.StatusActive, ""))
	require.Equal(t, []domain.Finding{want}, l.report().Findings)

	// A repeated creation event of an existing memory changes nothing; nor does an event of a
	// memory that does not exist.
	l.add("a", integCreated(domain.TypePreference, "p", "something else", domain.StatusActive, ""))
	l.add("ghost", domain.MemoryPromoted{})
	require.Equal(t, []domain.Finding{want}, l.report().Findings)

	// The candidate promoted joins the group; a memory whose type changes into it too.
	l.add("c", domain.MemoryPromoted{})
	l.add("d", domain.MemoryUpdated{Changed: []string{"memory_type"}, MemoryType: domain.TypePreference})
	want.MemoryIDs = []string{"a", "b", "c", "d"}
	require.Equal(t, []domain.Finding{want}, l.report().Findings)

	// Leaving the group, one by one: invalidated, superseded, content changed, expired.
	l.add("a", domain.MemoryInvalidated{})
	l.add("b", domain.MemorySuperseded{SupersededBy: "c"})
	want.MemoryIDs = []string{"c", "d"}
	require.Equal(t, []domain.Finding{want}, l.report().Findings)
	l.add("d", domain.MemoryUpdated{Changed: []string{"content"}, Content: "uses go"})
	require.Empty(t, l.report().Findings, "a group of one is no finding")

	// Reinforcing changes nothing of the group.
	l.add("g", integCreated(domain.TypePreference, "p", "uses go", domain.StatusActive, ""))
	l.add("g", domain.MemoryReinforced{Delta: 0.05})
	require.Equal(t, []domain.Finding{{Check: domain.CheckDuplicateMemory, MemoryType: "preference", Project: "p", Content: "uses go",
		MemoryIDs: []string{"d", "g"}}}, l.report().Findings)

	integRequireRebuildEqual(t, l)
}

func TestIntegrityProjectionStateOfUnknownProjects(t *testing.T) {
	l := newIntegLog(t)
	l.add("atocore", domain.StateSet{Category: "fact", Key: "k", Value: "v"})
	l.add("warning", domain.AlertRaised{Severity: domain.SeverityWarning, Title: "t", Message: "m"})
	require.Empty(t, l.report().Findings, "the system project needs no registration")

	l.add("ghost", domain.StateSet{Category: "fact", Key: "k", Value: "v"})
	l.add("ghost", domain.StateSet{Category: "fact", Key: "k", Value: "v2"})
	l.add("ghost", domain.StateSet{Category: "decision", Key: "k", Value: "v"})
	l.add("ghost-2", domain.StateSet{Category: "fact", Key: "k", Value: "v"})
	require.Equal(t, []domain.Finding{
		{Check: domain.CheckUnknownProject, Project: "ghost", Category: "decision", Key: "k"},
		{Check: domain.CheckUnknownProject, Project: "ghost", Category: "fact", Key: "k"},
		{Check: domain.CheckUnknownProject, Project: "ghost-2", Category: "fact", Key: "k"},
	}, l.report().Findings)

	// Registering ghost clears its entries, not those of ghost-2 (whose id it prefixes).
	l.add("ghost", domain.ProjectRegistered{Aliases: []string{}})
	require.Equal(t, []domain.Finding{{Check: domain.CheckUnknownProject, Project: "ghost-2", Category: "fact", Key: "k"}}, l.report().Findings)
	// Later entries of a registered project are fine.
	l.add("ghost", domain.StateSet{Category: "fact", Key: "k2", Value: "v"})
	require.Len(t, l.report().Findings, 1)

	// Invalidating clears; setting again brings it back.
	l.add("ghost-2", domain.StateInvalidated{Category: "fact", Key: "k"})
	require.Empty(t, l.report().Findings)
	l.add("ghost-2", domain.StateSet{Category: "fact", Key: "k", Value: "again"})
	require.Len(t, l.report().Findings, 1)
	// Invalidating an entry that was never set is harmless.
	l.add("ghost-3", domain.StateInvalidated{Category: "fact", Key: "k"})
	require.Len(t, l.report().Findings, 1)

	integRequireRebuildEqual(t, l)
}

// integRequireRebuildEqual builds a fresh projection file from the whole log and requires the
// same report as the live one.
func integRequireRebuildEqual(t *testing.T, l *integLog) {
	t.Helper()
	live := l.report()
	db, r := integRunner(t, l.store, filepath.Join(l.dir, "rebuilt.db"))
	r.Until = l.last
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.Run(ctx))
	require.Equal(t, live, integReport(t, db))

	// A rebuild holds the writes of memory events and writes them at flushes: at the end, when
	// it holds too many, before a document event. However it batches and flushes, the file
	// holds what the live one does, byte for byte.
	requireBuildsLikeLive(t, l.db, l.store, func() []projections.Projection {
		return []projections.Projection{projections.Integrity{}}
	}, l.last)
}

// The projection driven directly by bbolt transactions: each event applied in its own, then
// every event in one, give the same findings.
func TestIntegrityProjectionApplyInTransactions(t *testing.T) {
	evs := []domain.Event{}
	add := func(id string, p domain.Payload) {
		ev := domain.NewEvent(id, domain.Meta{EventID: uuid.NewString(), Actor: "t", Time: time.Unix(int64(len(evs)), 0)}, p)
		ev.Seq = uint64(len(evs) + 1)
		evs = append(evs, ev)
	}
	add("m1", integCreated(domain.TypeKnowledge, "", "x", domain.StatusActive, "c1"))
	add("m2", integCreated(domain.TypeKnowledge, "", "X", domain.StatusActive, "c2"))
	add("d1", domain.DocumentRecorded{FilePath: "a.md", Chunks: []domain.Chunk{{ID: "c1", DocumentID: "d1", Content: "x"}}})
	add("d2", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c5", DocumentID: "d2", Content: "x"}}})
	add("p", domain.StateSet{Category: "fact", Key: "k", Value: "v"})
	want := []domain.Finding{
		{Check: domain.CheckMissingChunk, MemoryID: "m2", ChunkID: "c2"},
		{Check: domain.CheckDuplicateMemory, MemoryType: "knowledge", Content: "x", MemoryIDs: []string{"m1", "m2"}},
		{Check: domain.CheckUnknownProject, Project: "p", Category: "fact", Key: "k"},
		{Check: domain.CheckOrphanedChunk, ChunkID: "c5", DocumentID: "d2"},
	}

	p := projections.Integrity{}
	for _, perTx := range []bool{true, false} {
		db, err := projections.Open(filepath.Join(t.TempDir(), "p.db"), true)
		require.NoError(t, err)
		require.NoError(t, db.Bolt().Update(p.Init))
		if perTx {
			for _, ev := range evs {
				require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error { return p.Apply(tx, ev) }))
			}
		} else {
			require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
				for _, ev := range evs {
					if err := p.Apply(tx, ev); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		r := integReport(t, db)
		require.Equal(t, want, r.Findings, "per transaction: %v", perTx)
		require.Equal(t, map[string]int{domain.CheckMissingChunk: 1, domain.CheckDuplicateMemory: 1,
			domain.CheckUnknownProject: 1, domain.CheckOrphanedChunk: 1}, r.Counts)
		require.NoError(t, db.Close())
	}
}

// A finding's memory_ids are exactly the members of its own group, whatever the content.
func TestIntegrityProjectionDuplicateGroupsDoNotBleed(t *testing.T) {
	l := newIntegLog(t)
	l.add("a1", integCreated(domain.TypeKnowledge, "", "a", domain.StatusActive, ""))
	l.add("a2", integCreated(domain.TypeKnowledge, "", "A", domain.StatusActive, ""))
	l.add("b1", integCreated(domain.TypeKnowledge, "", "a\x00b", domain.StatusActive, ""))
	l.add("b2", integCreated(domain.TypeKnowledge, "", "A\x00B", domain.StatusActive, ""))
	groups := map[string][]string{}
	for _, f := range integOf(l.report(), domain.CheckDuplicateMemory) {
		groups[f.Content] = f.MemoryIDs
	}
	require.Equal(t, map[string][]string{"a": integSorted("a1", "a2"), "a\x00b": integSorted("b1", "b2")}, groups)
}

// Deleting a chunk makes findings of the memories that cite that chunk, and of no other.
func TestIntegrityProjectionChunkRefsDoNotBleed(t *testing.T) {
	l := newIntegLog(t)
	l.add("d1", domain.DocumentRecorded{FilePath: "a.md", Chunks: []domain.Chunk{{ID: "c", DocumentID: "d1", Content: "x"}}})
	l.add("d2", domain.DocumentRecorded{FilePath: "b.md", Chunks: []domain.Chunk{{ID: "c\x00x", DocumentID: "d2", Content: "y"}}})
	l.add("m1", integCreated(domain.TypeKnowledge, "", "cites c", domain.StatusActive, "c"))
	l.add("m2", integCreated(domain.TypeKnowledge, "", "cites c-nul-x", domain.StatusActive, "c\x00x"))
	require.Empty(t, l.report().Findings)
	l.add("d1", domain.DocumentDeleted{})
	require.Equal(t, []domain.Finding{{Check: domain.CheckMissingChunk, MemoryID: "m1", ChunkID: "c"}}, l.report().Findings)
}

// Two active memories of the same content longer than bbolt's largest key (32 KiB) are a
// duplicate finding like any other: the finding is keyed by a digest of the content, not by
// the content, which once failed the projections' commit and stopped them.
func TestIntegrityProjectionDuplicatesOfLongContent(t *testing.T) {
	l := newIntegLog(t)
	long := strings.Repeat("a long memory ", 8000) // 112,000 bytes
	l.add("a", integCreated(domain.TypeKnowledge, "p", long, domain.StatusActive, ""))
	l.add("b", integCreated(domain.TypeKnowledge, "p", long, domain.StatusActive, ""))
	f := l.report().Findings
	require.Len(t, f, 1)
	require.Equal(t, []string{"a", "b"}, f[0].MemoryIDs)
	require.Equal(t, strings.TrimSpace(long), f[0].Content)
	l.add("b", domain.MemoryInvalidated{})
	require.Empty(t, l.report().Findings)
	integRequireRebuildEqual(t, l)
}

// A duplicate group's count is kept among its members, under the group's prefix, and no
// longer in a bucket of its own; a file of the layout before (version 4) loses that bucket
// and is built again to the same findings.
func TestIntegrityProjectionGroupCountAmongMembers(t *testing.T) {
	l := newIntegLog(t)
	l.add("a", integCreated(domain.TypeKnowledge, "p", "the laser is HeNe", domain.StatusActive, ""))
	l.add("b", integCreated(domain.TypeKnowledge, "p", "The laser is HeNe", domain.StatusActive, ""))
	l.add("c", integCreated(domain.TypeKnowledge, "p", "the laser is HeNe ", domain.StatusActive, ""))
	l.add("d", integCreated(domain.TypeKnowledge, "p", "a memory of its own", domain.StatusActive, ""))
	// counts are the group counts stored in the members' bucket, the memory ids its members.
	counts := func(db *projections.DB) (counts []uint64, members []string) {
		t.Helper()
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			require.Nil(t, tx.Bucket([]byte("int_dup_count")), "no bucket of its own")
			return tx.Bucket([]byte("int_dup_members")).ForEach(func(k, v []byte) error {
				if int(k[0]) == len(k)-1 { // a group's prefix alone: its length, then the group
					counts = append(counts, binary.BigEndian.Uint64(v))
				} else {
					members = append(members, string(k[1+k[0]:]))
				}
				return nil
			})
		}))
		sort.Slice(counts, func(i, j int) bool { return counts[i] < counts[j] })
		sort.Strings(members)
		return counts, members
	}
	got, members := counts(l.db)
	require.Equal(t, []uint64{1, 3}, got)
	require.Equal(t, []string{"a", "b", "c", "d"}, members)
	require.Equal(t, []string{"a", "b", "c"}, l.report().Findings[0].MemoryIDs, "the count is no member")

	l.add("b", domain.MemoryInvalidated{})
	got, _ = counts(l.db)
	require.Equal(t, []uint64{1, 2}, got)
	require.Len(t, l.report().Findings, 1)
	l.add("c", domain.MemoryUpdated{Changed: []string{"content"}, Content: "another laser"})
	got, members = counts(l.db)
	require.Equal(t, []uint64{1, 1, 1}, got)
	require.Equal(t, []string{"a", "c", "d"}, members)
	require.Empty(t, l.report().Findings, "a group of one is no finding")
	l.add("d", domain.MemoryInvalidated{})
	got, members = counts(l.db)
	require.Equal(t, []uint64{1, 1}, got, "an empty group leaves nothing")
	require.Equal(t, []string{"a", "c"}, members)
	l.add("e", integCreated(domain.TypeKnowledge, "p", "THE LASER IS HENE", domain.StatusActive, ""))
	require.Equal(t, []string{"a", "e"}, l.report().Findings[0].MemoryIDs)
	// Enough groups that a build holding a few thousand bytes flushes several times while it
	// keeps the groups' writes (integRequireRebuildEqual builds with such budgets).
	for i := range 60 {
		id := fmt.Sprintf("m%02d", i)
		l.add(id, integCreated(domain.TypeKnowledge, "p", fmt.Sprintf("fact %d", i%20), domain.StatusActive, ""))
		if i%7 == 0 {
			l.add(id, domain.MemoryInvalidated{})
		}
	}
	live := l.report()
	require.Len(t, live.Findings, 21)
	integRequireRebuildEqual(t, l)

	// The layout before: a file at version 4, its counts in a bucket of their own.
	db, r := integRunner(t, l.store, filepath.Join(l.dir, "v4.db"))
	r.Until = l.last
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.Run(ctx))
	require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket([]byte("int_dup_count"))
		require.NoError(t, err)
		require.NoError(t, old.Put([]byte("a group"), binary.BigEndian.AppendUint64(nil, 2)))
		return tx.Bucket([]byte("projection_versions")).Put([]byte("integrity"), binary.BigEndian.AppendUint64(nil, 4))
	}))
	r = &projections.Runner{DB: db, Source: l.store, Projections: []projections.Projection{projections.Integrity{}},
		Logger: slog.New(slog.DiscardHandler), Until: l.last}
	require.NoError(t, r.Init())
	require.NoError(t, r.Run(ctx))
	got, members = counts(db) // and the old bucket is gone
	wantCounts, wantMembers := counts(l.db)
	require.Equal(t, wantCounts, got)
	require.Equal(t, wantMembers, members)
	require.Equal(t, live, integReport(t, db))
}

// The creation of a memory without a memory id (a message written by something else than
// memledger) is an error of the projection, live or in a build, not a panic: its duplicate
// group's member key would be the group's count key. Another event of no memory changes
// nothing, as an event of any memory that does not exist.
func TestIntegrityProjectionRefusesTheCreationOfAMemoryWithoutAnID(t *testing.T) {
	noID := func(seq uint64, p domain.Payload) domain.Event {
		ev := domain.NewEvent("", domain.Meta{EventID: uuid.NewString(), Actor: "t", Time: time.Unix(int64(seq), 0)}, p)
		ev.Seq = seq
		return ev
	}
	archived := noID(1, domain.MemoryUpdated{Changed: []string{"status"}, Status: domain.StatusInvalid})
	created := noID(2, integCreated(domain.TypeKnowledge, "p", "a fact", domain.StatusActive, ""))
	db, err := projections.Open(filepath.Join(t.TempDir(), "p.db"), true)
	require.NoError(t, err)
	defer db.Close()
	p := projections.Integrity{}
	require.NoError(t, db.Bolt().Update(p.Init))
	require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error { return p.Apply(tx, archived) }))
	err = db.Bolt().Update(func(tx *bolt.Tx) error { return p.Apply(tx, created) })
	require.ErrorContains(t, err, "the memory event at 2 has no memory id")

	built, err := projections.Build(t.Context(), filepath.Join(t.TempDir(), "skipped.db"), sliceSource([]domain.Event{archived}),
		[]projections.Projection{projections.Integrity{}}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, built.Close())
	_, err = projections.Build(t.Context(), filepath.Join(t.TempDir(), "built.db"), sliceSource([]domain.Event{archived, created}),
		[]projections.Projection{projections.Integrity{}}, 2, nil)
	require.ErrorContains(t, err, "no memory id")
}

// A build forgets the holders it registered with its budget once it ends, so that what its
// projections held can be collected while the budget serves another build (the search index
// after the views, in rebuild --search and verify).
func TestBuildForgetsItsHolders(t *testing.T) {
	evs := sizeLog(50, 2)
	budget := projections.NewHeldBudget(0)
	db, err := projections.BuildHeld(t.Context(), filepath.Join(t.TempDir(), "built.db"), sliceSource(evs),
		[]projections.Projection{projections.Memories{}, projections.Integrity{}}, evs[len(evs)-1].Seq, budget, nil)
	require.NoError(t, err)
	defer db.Close()
	require.Zero(t, projections.Holders(budget))
	require.Zero(t, budget.Used())
}
