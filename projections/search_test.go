package projections_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// searchLog is a log of memories and projects for the search tests.
type searchLog struct {
	*ledgerLog
}

// memory appends the creation of an active memory and returns its id.
func (l searchLog) memory(content string, mod func(*domain.MemoryCreated)) string {
	l.tb.Helper()
	id := uuid.NewString()
	c := domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: content, Status: domain.StatusActive,
		Confidence: 1, DomainTags: []string{}}
	if mod != nil {
		mod(&c)
	}
	l.append(id, c)
	l.ids = append(l.ids, id)
	return id
}

// project appends a project's registration (or update, when it exists) with its aliases.
func (l searchLog) project(id string, update bool, aliases ...string) {
	l.tb.Helper()
	var p domain.Payload = domain.ProjectRegistered{Aliases: aliases}
	if update {
		p = domain.ProjectUpdated{Aliases: aliases}
	}
	ev := domain.NewEvent(id, domain.Meta{EventID: uuid.NewString(), Actor: "tester", Time: t0}, p)
	res, err := l.store.Append(context.Background(), eventstore.Unchecked, ev)
	require.NoError(l.tb, err)
	ev.Seq = res.Seq
	l.events = append(l.events, ev)
}

func openSearch(tb testing.TB, path string) *projections.Search {
	tb.Helper()
	s, err := projections.OpenSearch(path, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// indexTo runs the search index over src until it has applied position until.
func indexTo(tb testing.TB, s *projections.Search, src projections.Source, until uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(tb, s.Run(ctx, src, until, nil))
	require.Equal(tb, until, s.Applied())
}

// hitIDs runs q and returns the ids of the hits, in order.
func hitIDs(tb testing.TB, s *projections.Search, q projections.SearchQuery) []string {
	tb.Helper()
	res, err := s.Search(context.Background(), q)
	require.NoError(tb, err)
	ids := []string{}
	for _, h := range res.Hits {
		var m domain.Memory
		require.NoError(tb, json.Unmarshal(h.Memory, &m))
		ids = append(ids, m.ID)
	}
	return ids
}

func TestSearchRanksFiltersAndPages(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, filepath.Join(dir, "nats"), "interval")
	l := searchLog{newLedgerLog(t, store)}
	now := t0.Add(48 * time.Hour)

	l.project("p-laser", false, "cutter")
	best := l.memory("The laser cutter needs its laser lens cleaned: laser alignment drifts weekly", nil)
	weak := l.memory("Bought a new chair for the office; the laser printer is beside it, and many other things are in this long sentence", nil)
	tagged := l.memory("Calibration notes for the machine", func(c *domain.MemoryCreated) { c.DomainTags = []string{"laser"} })
	unrelated := l.memory("Prefers green tea to coffee", nil)
	candidate := l.memory("A candidate about the laser", func(c *domain.MemoryCreated) { c.Status = domain.StatusCandidate })
	inProject := l.memory("Project laser note", func(c *domain.MemoryCreated) { c.Project = "p-laser"; c.MemoryType = domain.TypeProject })
	underAlias := l.memory("Laser note recorded under the alias", func(c *domain.MemoryCreated) { c.Project = "cutter" })
	past := now.Add(-time.Hour)
	expired := l.memory("An expired laser fact", func(c *domain.MemoryCreated) { c.ValidUntil = &past })
	future := now.Add(time.Hour)
	valid := l.memory("A laser fact still valid", func(c *domain.MemoryCreated) { c.ValidUntil = &future })
	superseded := l.memory("A laser fact that was replaced", nil)
	l.append(superseded, domain.MemorySuperseded{SupersededBy: best})
	invalidated := l.memory("A laser fact that was wrong", nil)
	l.append(invalidated, domain.MemoryInvalidated{})
	retagged := l.memory("Tags change on this one", func(c *domain.MemoryCreated) { c.DomainTags = []string{"old"} })
	l.append(retagged, domain.MemoryUpdated{Changed: []string{"domain_tags", "content"}, DomainTags: []string{"optics", "laser"}, Content: "Tags changed on this <one> laser"})

	s := openSearch(t, filepath.Join(dir, "search.bleve"))
	indexTo(t, s, store, l.last())
	q := func(text string, mod func(*projections.SearchQuery)) []string {
		sq := projections.SearchQuery{Text: text, Now: now, Limit: 50}
		if mod != nil {
			mod(&sq)
		}
		return hitIDs(t, s, sq)
	}

	t.Run("ranking", func(t *testing.T) {
		ids := q("laser lens", nil)
		require.Equal(t, best, ids[0], "the memory matching both words ranks first")
		ids = q("laser", nil)
		require.Less(t, indexOf(ids, best), indexOf(ids, weak), "three mentions in a short content rank above one in a long one")
		require.Equal(t, retagged, ids[0], "a match in both the content and the tags ranks first")
		require.Contains(t, ids, tagged, "tags are searched")
		require.NotContains(t, ids, unrelated)
	})
	t.Run("default status is active; superseded and invalidated leave the results", func(t *testing.T) {
		ids := q("laser", nil)
		require.NotContains(t, ids, candidate)
		require.NotContains(t, ids, superseded)
		require.NotContains(t, ids, invalidated)
		require.Equal(t, []string{candidate}, q("laser", func(sq *projections.SearchQuery) { sq.Status = domain.StatusCandidate }))
		require.Equal(t, []string{superseded}, q("laser", func(sq *projections.SearchQuery) { sq.Status = domain.StatusSuperseded }))
		require.Equal(t, []string{invalidated}, q("laser", func(sq *projections.SearchQuery) { sq.Status = domain.StatusInvalid }))
		all := q("laser", func(sq *projections.SearchQuery) { sq.Status = projections.StatusAll })
		require.Contains(t, all, candidate)
		require.Contains(t, all, superseded)
	})
	t.Run("memory type", func(t *testing.T) {
		require.Equal(t, []string{inProject}, q("laser", func(sq *projections.SearchQuery) { sq.MemoryType = domain.TypeProject }))
	})
	t.Run("project, by id or alias", func(t *testing.T) {
		want := []string{inProject, underAlias}
		for _, name := range []string{"p-laser", "cutter"} {
			require.ElementsMatch(t, want, q("laser", func(sq *projections.SearchQuery) { sq.Project = name }), name)
		}
		require.Empty(t, q("laser", func(sq *projections.SearchQuery) { sq.Project = "other" }))
	})
	t.Run("tags", func(t *testing.T) {
		require.ElementsMatch(t, []string{tagged, retagged}, q("laser", func(sq *projections.SearchQuery) { sq.Tags = []string{"laser"} }))
		require.Equal(t, []string{retagged}, q("laser", func(sq *projections.SearchQuery) { sq.Tags = []string{"laser", "optics"} }))
		require.Empty(t, q("tags", func(sq *projections.SearchQuery) { sq.Tags = []string{"old"} }), "an update replaced the tags")
	})
	t.Run("expiry", func(t *testing.T) {
		ids := q("laser", nil)
		require.NotContains(t, ids, expired)
		require.Contains(t, ids, valid)
		require.Contains(t, q("laser", func(sq *projections.SearchQuery) { sq.IncludeExpired = true }), expired)
		require.NotContains(t, q("laser", func(sq *projections.SearchQuery) { sq.Now = future }), valid, "at its valid_until a memory is expired")
	})
	t.Run("phrase, prefix, required and excluded", func(t *testing.T) {
		require.Equal(t, []string{best}, q(`"laser lens"`, nil))
		require.Empty(t, q(`"lens laser"`, nil))
		require.Contains(t, q("calibra*", nil), tagged)
		require.NotContains(t, q("laser -cutter", nil), best)
		require.Equal(t, []string{best}, q("laser +alignment", nil))
		require.Equal(t, []string{unrelated}, q("what about tea?", nil), "punctuation is text, not syntax")
	})
	t.Run("snippets", func(t *testing.T) {
		res, err := s.Search(context.Background(), projections.SearchQuery{Text: "changed", Now: now})
		require.NoError(t, err)
		require.Len(t, res.Hits, 1)
		require.Equal(t, "Tags <mark>changed</mark> on this &lt;one&gt; laser", res.Hits[0].Snippet, "matches marked, the rest escaped")
		res, err = s.Search(context.Background(), projections.SearchQuery{Text: "calibration", Now: now})
		require.NoError(t, err)
		require.Contains(t, res.Hits[0].Snippet, "<mark>Calibration</mark>")
		require.Equal(t, l.last(), res.IndexedSeq)
	})
	t.Run("paging", func(t *testing.T) {
		all := q("laser", nil)
		require.Greater(t, len(all), 4)
		var paged []string
		offset := 0
		for {
			res, err := s.Search(context.Background(), projections.SearchQuery{Text: "laser", Now: now, Limit: 2, Offset: offset})
			require.NoError(t, err)
			require.Equal(t, uint64(len(all)), res.Total)
			for _, h := range res.Hits {
				var m domain.Memory
				require.NoError(t, json.Unmarshal(h.Memory, &m))
				paged = append(paged, m.ID)
			}
			if res.NextOffset == 0 {
				break
			}
			offset = res.NextOffset
		}
		require.Equal(t, all, paged)
	})
	t.Run("the hit is the memory as folded from its events", func(t *testing.T) {
		res, err := s.Search(context.Background(), projections.SearchQuery{Text: "optics", Now: now})
		require.NoError(t, err)
		require.Len(t, res.Hits, 1)
		want, err := l.mems[retagged].AppendJSON(nil)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(res.Hits[0].Memory))
	})
	t.Run("bad queries name the field", func(t *testing.T) {
		for _, bad := range []projections.SearchQuery{
			{Text: "  "}, {Text: "-laser"}, {Text: `"open phrase`}, {Text: "l*"},
			{Text: strings.Repeat("x", projections.MaxSearchQuery+1)},
			{Text: "laser", Limit: projections.MaxSearchLimit + 1}, {Text: "laser", Status: "nope"},
			{Text: "laser", MemoryType: "nope"}, {Text: "laser", Offset: -1},
		} {
			_, err := s.Search(context.Background(), bad)
			require.ErrorIs(t, err, domain.ErrInvalid, "%+v", bad)
		}
	})
	t.Run("an alias added later finds the memories under it", func(t *testing.T) {
		l.project("p-laser", true, "cutter", "beam")
		indexTo(t, s, store, l.last())
		require.ElementsMatch(t, []string{inProject, underAlias}, q("laser", func(sq *projections.SearchQuery) { sq.Project = "beam" }))
	})
	t.Run("a rebuild equals the live index", func(t *testing.T) {
		rebuilt, err := projections.BuildSearch(context.Background(), filepath.Join(dir, "rebuilt.bleve"), store, l.last(), nil)
		require.NoError(t, err)
		defer rebuilt.Close()
		diffs, err := projections.DiffSearch(s, rebuilt, 10)
		require.NoError(t, err)
		require.Empty(t, diffs)
		require.Equal(t, q("laser", nil), hitIDs(t, rebuilt, projections.SearchQuery{Text: "laser", Now: now, Limit: 50}))
	})
}

func indexOf(ids []string, id string) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

// TestSearchResumesFromItsCheckpoint closes the index halfway and reopens it: it goes on from
// its checkpoint, and ends equal to an index built in one go, which DiffSearch tells apart
// from one that missed an event.
func TestSearchResumesFromItsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, filepath.Join(dir, "nats"), "interval")
	l := searchLog{newLedgerLog(t, store)}
	a := l.memory("first memory about rivers", nil)
	l.append(a, domain.MemoryReinforced{Delta: 0.1})
	path := filepath.Join(dir, "search.bleve")
	s, err := projections.OpenSearch(path, nil)
	require.NoError(t, err)
	indexTo(t, s, store, l.last())
	require.NoError(t, s.Close())

	b := l.memory("second memory about lakes", nil)
	l.append(a, domain.MemoryUpdated{Changed: []string{"content"}, Content: "first memory about streams"})
	s = openSearch(t, path)
	require.Equal(t, uint64(2), s.Applied(), "the checkpoint was persisted with the index")
	indexTo(t, s, store, l.last())
	require.Equal(t, []string{a}, hitIDs(t, s, projections.SearchQuery{Text: "streams", Now: t0}))
	require.Empty(t, hitIDs(t, s, projections.SearchQuery{Text: "rivers", Now: t0}))
	require.Equal(t, []string{b}, hitIDs(t, s, projections.SearchQuery{Text: "lakes", Now: t0}))

	rebuilt, err := projections.BuildSearch(context.Background(), filepath.Join(dir, "rebuilt.bleve"), store, l.last(), nil)
	require.NoError(t, err)
	defer rebuilt.Close()
	diffs, err := projections.DiffSearch(s, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)

	// An index that stopped one event short differs from the rebuild, memory by memory.
	short, err := projections.BuildSearch(context.Background(), filepath.Join(dir, "short.bleve"), store, l.last()-1, nil)
	require.NoError(t, err)
	defer short.Close()
	diffs, err = projections.DiffSearch(short, rebuilt, 10)
	require.NoError(t, err)
	require.Len(t, diffs, 1)
	require.Contains(t, diffs[0], a)
}

// TestSearchIndexOfAnotherShapeIsBuiltAgain opens a directory that is not a search index of
// this version: it is set aside and a new, empty index starts from the log's start.
func TestSearchIndexOfAnotherShapeIsBuiltAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "search.bleve")
	require.NoError(t, os.MkdirAll(path, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(path, "index_meta.json"), []byte("{not json"), 0o644))
	s := openSearch(t, path)
	require.Equal(t, uint64(0), s.Applied())
	aside, err := filepath.Glob(path + ".aside-*")
	require.NoError(t, err)
	require.Len(t, aside, 1)
}
