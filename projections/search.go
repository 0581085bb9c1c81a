package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/mapping"
	bindex "github.com/blevesearch/bleve_index_api"
	"github.com/memledger/memledger/domain"
)

// SearchVersion is the shape of the search index: raised with every change of its mapping or
// of what it stores, so that an index of another shape is built again from the log.
const SearchVersion = 1

// The search index's fields.
const (
	fieldContent = "content"     // analysed text, stored for snippets
	fieldTags    = "tags"        // the tags as analysed text, ranked with the content
	fieldTag     = "tag"         // the tags as keywords, for the tags filter
	fieldStatus  = "status"      // keyword
	fieldType    = "memory_type" // keyword
	fieldProject = "project"     // keyword, the project as the memory names it
	fieldExpires = "expires"     // valid_until in Unix milliseconds; noExpiry without one
	fieldMemory  = "memory"      // the memory's JSON, stored and not indexed
)

// DefaultSearchBatchWait is the default of Search.BatchWait. Each batch is a segment that the
// index's merger rewrites as it merges the small ones: at 100 ms, under a single writer, the
// merges were about a fifth of each write's CPU time, competing for the cores with the writes.
const DefaultSearchBatchWait = 500 * time.Millisecond

// noExpiry is the expires value of a memory without valid_until.
const noExpiry = 1e15

// The search index's internal keys: written in the batch whose documents they describe, so
// that the index, its checkpoint and its project aliases are persisted together.
var (
	internalCheckpoint = []byte("checkpoint")
	internalVersion    = []byte("version")
	internalProjects   = []byte("projects")
)

// Search is the full-text index of memories, a projection of the log like the bbolt views but
// kept in a bleve index of its own (a directory beside the projection file). It follows the
// log on its own, from its own checkpoint, so that indexing never holds back a write's answer:
// a memory written at position n is found by a search once Applied reaches n (WaitFor). It
// reads nothing but the log: it keeps its own copy of each memory (in the index) and of the
// projects' aliases.
type Search struct {
	Path   string
	Logger *slog.Logger
	// BatchWait is how long the index, following the live log, gathers events into one
	// batch after the first (DefaultSearchBatchWait): each batch is a segment of the index
	// written and synced to disk, so a few large batches cost far less than many small ones.
	// A search misses a write for about this long.
	BatchWait time.Duration
	// CatchUpTo, when not zero, is the log position a live index catches up to in bulk (the
	// log's last position when the service starts): until it is indexed, the index folds the
	// log's events into the memories it holds (within Held) and writes each memory once per
	// flush, in large batches whose writing to disk overlaps the next; then it follows the log
	// batch by batch. A build (BuildSearch) is in bulk throughout.
	CatchUpTo uint64
	// Held is the byte budget of the memories the index holds in bulk (shared with the other
	// projections of a build; DefaultHeldBytes when nil).
	Held *HeldBudget

	index bleve.Index
	// held are the memories folded in bulk and not yet written (see CatchUpTo).
	held searchHeld
	// persisted, when not nil, is the last bulk batch's persistence, not yet waited for.
	persisted chan error
	mu        sync.Mutex
	applied   uint64
	changed   chan struct{}
	err       error
	projects  domain.Registry
}

// OpenSearch opens the search index at path, creating it when there is none. An index of
// another shape (SearchVersion) or one that cannot be opened is set aside as
// path.aside-<time> and a new one is created: it is built again from the log.
func OpenSearch(path string, logger *slog.Logger) (*Search, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Search{Path: path, Logger: logger, BatchWait: DefaultSearchBatchWait, changed: make(chan struct{}), projects: domain.Registry{}}
	idx, err := bleve.OpenUsing(path, searchRuntime())
	switch {
	case errors.Is(err, bleve.ErrorIndexPathDoesNotExist):
		idx, err = bleve.NewUsing(path, searchMapping(), bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, searchRuntime())
		if err == nil {
			// bleve writes its meta file for everyone to read; the data directory's files
			// are the owner's alone.
			err = os.Chmod(filepath.Join(path, "index_meta.json"), 0o600)
		}
		if err == nil {
			err = idx.SetInternal(internalVersion, encodeSeq(SearchVersion))
		}
	case err != nil:
		logger.Warn("the search index cannot be opened; setting it aside and building it again from the log", "path", path, "err", err)
		return s.reset(err)
	}
	if err != nil {
		return nil, fmt.Errorf("open search index %s: %w", path, err)
	}
	s.index = idx
	if v, err := idx.GetInternal(internalVersion); err != nil || decodeSeq(v) != SearchVersion {
		logger.Info("search index stored at another version; building it again from the log", "path", path, "stored", decodeSeq(v), "version", SearchVersion)
		idx.Close()
		return s.reset(nil)
	}
	if err := s.load(); err != nil {
		idx.Close()
		return nil, fmt.Errorf("open search index %s: %w", path, err)
	}
	return s, nil
}

// reset moves the index at s.Path aside and opens a new, empty one.
func (s *Search) reset(cause error) (*Search, error) {
	aside := fmt.Sprintf("%s.aside-%d", s.Path, time.Now().UnixNano())
	if err := os.Rename(s.Path, aside); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("set the search index aside (%v): %w", cause, err)
	}
	return OpenSearch(s.Path, s.Logger)
}

// load reads the checkpoint and the project registry from the index.
func (s *Search) load() error {
	cp, err := s.index.GetInternal(internalCheckpoint)
	if err != nil {
		return err
	}
	s.applied = decodeSeq(cp)
	reg, err := s.index.GetInternal(internalProjects)
	if err != nil {
		return err
	}
	if reg != nil {
		if err := json.Unmarshal(reg, &s.projects); err != nil {
			return fmt.Errorf("projects: %w", err)
		}
	}
	return nil
}

// Reset empties the index (it is then built again from the log's start): for an index ahead
// of the log, one written from another log.
func (s *Search) Reset() error {
	if err := s.index.Close(); err != nil {
		return err
	}
	fresh, err := s.reset(errors.New("reset"))
	if err != nil {
		return err
	}
	s.index, s.applied, s.projects = fresh.index, 0, domain.Registry{}
	return nil
}

// searchRuntime is the index's configuration: a batch returns once it is in the index, before
// it is on disk (scorch's unsafe_batch), so that a bulk batch's writing overlaps the next one;
// the index waits for the persistence itself where it must (see write).
func searchRuntime() map[string]interface{} { return map[string]interface{}{"unsafe_batch": true} }

// searchHeld are the memories a bulk index has folded and not yet written.
type searchHeld struct {
	mems map[string]domain.Memory
	// bytes is about how much memory they take.
	bytes int64
	// last is the position of the last event folded; projects, whether the aliases changed.
	last     uint64
	projects bool
}

// searchHeldEntry is about what a held memory costs beyond its content and JSON.
const searchHeldEntry = 640

// searchBulkDocs is the most memories one bulk batch writes: bleve holds a batch's analysis in
// memory until its segment is built.
const searchBulkDocs = 8000

// searchMapping is the index's mapping: BM25 over the content and the tags, keywords for the
// filters, the memory's JSON stored for the answers.
func searchMapping() mapping.IndexMapping {
	text := func(store bool) *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = standard.Name
		f.Store = store
		f.IncludeTermVectors = store
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	kw := func() *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store, f.IncludeTermVectors, f.IncludeInAll, f.DocValues = false, false, false, false
		return f
	}
	expires := bleve.NewNumericFieldMapping()
	expires.Store, expires.IncludeInAll, expires.DocValues = false, false, false
	stored := bleve.NewTextFieldMapping()
	stored.Index, stored.Store, stored.IncludeTermVectors, stored.IncludeInAll, stored.DocValues = false, true, false, false, false

	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fieldContent, text(true))
	doc.AddFieldMappingsAt(fieldTags, text(false))
	doc.AddFieldMappingsAt(fieldTag, kw())
	doc.AddFieldMappingsAt(fieldStatus, kw())
	doc.AddFieldMappingsAt(fieldType, kw())
	doc.AddFieldMappingsAt(fieldProject, kw())
	doc.AddFieldMappingsAt(fieldExpires, expires)
	doc.AddFieldMappingsAt(fieldMemory, stored)

	m := bleve.NewIndexMapping()
	m.DefaultMapping = doc
	m.DefaultAnalyzer = standard.Name
	m.StoreDynamic, m.IndexDynamic, m.DocValuesDynamic = false, false, false
	m.ScoringModel = bindex.BM25Scoring
	return m
}

// searchDoc is what the index holds of memory m.
func searchDoc(m domain.Memory) (map[string]any, error) {
	js, err := m.AppendJSON(nil)
	if err != nil {
		return nil, err
	}
	expires := float64(noExpiry)
	if m.ValidUntil != nil {
		expires = expiresAt(*m.ValidUntil)
	}
	return map[string]any{
		fieldContent: m.Content,
		fieldTags:    slices.Clone(m.DomainTags),
		fieldTag:     slices.Clone(m.DomainTags),
		fieldStatus:  string(m.Status),
		fieldType:    string(m.MemoryType),
		fieldProject: m.Project,
		fieldExpires: expires,
		fieldMemory:  string(js),
	}, nil
}

// memory returns the index's copy of memory id (the zero Memory when it has none).
func (s *Search) memory(id string) (domain.Memory, error) {
	var m domain.Memory
	doc, err := s.index.Document(id)
	if err != nil || doc == nil {
		return m, err
	}
	var data []byte
	doc.VisitFields(func(f bindex.Field) {
		if f.Name() == fieldMemory {
			data = f.Value()
		}
	})
	if data == nil {
		return m, nil
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("search index copy of memory %s: %w", id, err)
	}
	return m, nil
}

// before is the memory id as the event ev finds it: the held copy, none for a creation (which
// replaces it whole), else the index's copy.
func (s *Search) before(id string, ev domain.Event, changed map[string]domain.Memory) (domain.Memory, bool, error) {
	if m, ok := changed[id]; ok {
		return m, true, nil
	}
	if _, ok := ev.Data.(domain.MemoryCreated); ok {
		return domain.Memory{}, false, nil
	}
	m, err := s.memory(id)
	return m, false, err
}

// position is the last position the index has folded: applied, or past it what it holds.
func (s *Search) position() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.applied, s.held.last)
}

// apply indexes one batch of events, with the checkpoint (and the project aliases, when they
// changed) in the same bleve batch: persisted together or not at all. In bulk, it folds them
// into the memories it holds and writes those once they fill the budget.
func (s *Search) apply(evs []domain.Event, bulk bool) error {
	cp := s.position()
	for len(evs) > 0 && evs[0].Seq <= cp {
		evs = evs[1:]
	}
	if len(evs) == 0 {
		return nil
	}
	if !bulk && s.held.mems != nil {
		if err := s.flushHeld(true); err != nil {
			return err
		}
	}
	changed := map[string]domain.Memory{}
	if bulk {
		if s.held.mems == nil {
			s.held.mems = map[string]domain.Memory{}
		}
		changed = s.held.mems
	}
	var order []string
	projects := false
	for _, ev := range evs {
		switch ev.Kind() {
		case domain.KindMemory:
			before, ok, err := s.before(ev.AggregateID, ev, changed)
			if err != nil {
				if bulk {
					// What is held has folded part of this batch: dropped, it is folded again
					// from the written checkpoint, once, when the log is followed again.
					s.dropHeld()
				}
				return err
			}
			if !ok {
				order = append(order, ev.AggregateID)
			}
			after := domain.ApplyMemory(before, ev)
			if bulk {
				s.held.bytes += memoryHeldSize(after) - memoryHeldSize(before)*boolInt(ok)
			}
			changed[ev.AggregateID] = after
		case domain.KindProject:
			domain.ApplyProject(s.projects, ev)
			projects = true
		}
	}
	last := evs[len(evs)-1].Seq
	if bulk {
		s.mu.Lock()
		s.held.last = last
		s.held.projects = s.held.projects || projects
		s.mu.Unlock()
		s.budget().search.Store(s.held.bytes)
		if s.held.bytes >= s.budget().Max || s.budget().full() || len(s.held.mems) >= searchBulkDocs {
			return s.flushHeld(false)
		}
		return nil
	}
	return s.write(order, changed, projects, evs[0].Seq, last, true)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// memoryHeldSize is about what a held memory takes in memory.
func memoryHeldSize(m domain.Memory) int64 {
	return int64(2*len(m.Content) + searchHeldEntry)
}

// budget is the index's held budget.
func (s *Search) budget() *HeldBudget {
	if s.Held == nil {
		s.Held = NewHeldBudget(heldBytesMax)
	}
	return s.Held
}

// flushHeld writes the memories the index holds (at most about searchBulkDocs: apply flushes
// when it holds that many) in one bleve batch with the checkpoint and the aliases, so that
// they are persisted together or not at all; the batch's writing to disk overlaps the next
// batch's making; with wait, it returns once it is on disk.
func (s *Search) flushHeld(wait bool) error {
	held := s.held
	ids := slices.Sorted(maps.Keys(held.mems))
	if err := s.write(ids, held.mems, held.projects, s.Applied()+1, held.last, wait); err != nil {
		return err
	}
	s.dropHeld()
	return nil
}

// dropHeld forgets the memories held in bulk: written, or to be folded again from the
// checkpoint.
func (s *Search) dropHeld() {
	s.mu.Lock()
	s.held = searchHeld{}
	s.mu.Unlock()
	s.budget().search.Store(0)
}

// write writes the memories ids of changed in one bleve batch; with last set, the checkpoint
// last (and the aliases, with projects) too, and the index's position moves to it. It waits
// for the batch before it to be on disk, and with wait for this one too.
func (s *Search) write(ids []string, changed map[string]domain.Memory, projects bool, first, last uint64, wait bool) error {
	b := s.index.NewBatch()
	for _, id := range ids {
		m := changed[id]
		if !m.Exists() {
			continue
		}
		doc, err := searchDoc(m)
		if err != nil {
			return fmt.Errorf("index memory %s: %w", id, err)
		}
		if err := b.Index(id, doc); err != nil {
			return fmt.Errorf("index memory %s: %w", id, err)
		}
	}
	if projects {
		reg, err := json.Marshal(s.projects)
		if err != nil {
			return err
		}
		b.SetInternal(internalProjects, reg)
	}
	if last > 0 {
		b.SetInternal(internalCheckpoint, encodeSeq(last))
	}
	persisted := make(chan error, 1)
	b.SetPersistedCallback(func(err error) { persisted <- err })
	if err := s.index.Batch(b); err != nil {
		return fmt.Errorf("search index: apply %d-%d: %w", first, last, err)
	}
	if s.persisted != nil {
		if err := <-s.persisted; err != nil {
			return fmt.Errorf("search index: persist: %w", err)
		}
	}
	s.persisted = persisted
	if wait {
		s.persisted = nil
		if err := <-persisted; err != nil {
			return fmt.Errorf("search index: persist %d-%d: %w", first, last, err)
		}
	}
	if last == 0 {
		return nil
	}
	s.mu.Lock()
	s.applied = last
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Run follows the log from the index's checkpoint and indexes it until ctx is done or, with
// until set, until that position is indexed. A failed read of the log is retried, and so is a
// failed write of a live index (searches meanwhile answer with what is indexed, and /health
// says why); with until set, a failed write stops Run with its error.
func (s *Search) Run(ctx context.Context, src Source, until uint64, progress func(applied uint64)) error {
	for {
		if until > 0 && s.position() >= until {
			return s.flushBulk()
		}
		err := s.follow(ctx, src, until, progress)
		if errors.Is(err, errDone) {
			return s.flushBulk()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.setErr(err)
		var applyErr applyError
		if errors.As(err, &applyErr) && until > 0 {
			return err
		}
		// A failed write of a live index (a full disk) is retried as a failed read is: the
		// index resumes from its checkpoint once it can write.
		s.Logger.Error("search index: reading the log or writing the index failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followRetry):
		}
	}
}

// flushBulk writes what a build holds and waits until it is on disk.
func (s *Search) flushBulk() error {
	if s.held.mems == nil && s.persisted == nil {
		return nil
	}
	if err := s.flushHeld(true); err != nil {
		return fmt.Errorf("rebuild search index: %w", err)
	}
	return nil
}

func (s *Search) follow(ctx context.Context, src Source, until uint64, progress func(uint64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := DefaultBatchSize
	if until > 0 || s.CatchUpTo > 0 {
		size = max(size, RebuildBatchSize)
	}
	events := make(chan domain.Event, 4*size)
	followErr := make(chan error, 1)
	go func() { followErr <- src.Follow(ctx, s.position()+1, events) }()
	batch := make([]domain.Event, 0, size)
	gather := time.NewTimer(0)
	defer gather.Stop()
	for {
		batch = batch[:0]
		select {
		case ev := <-events:
			batch = append(batch, ev)
		case err := <-followErr:
			return err
		}
		// In bulk: a build, or a live index catching up with the log's past.
		bulk := until > 0 || batch[0].Seq <= s.CatchUpTo
		wait := s.BatchWait
		if bulk && until == 0 {
			wait = catchUpGather
		}
		gather.Reset(wait)
	drain:
		for len(batch) < size {
			if until > 0 && batch[len(batch)-1].Seq < until {
				select {
				case ev := <-events:
					batch = append(batch, ev)
					continue
				case err := <-followErr:
					return err
				}
			}
			select {
			case ev := <-events:
				batch = append(batch, ev)
			case <-gather.C:
				break drain
			case err := <-followErr:
				return err
			}
		}
		past := false
		if until > 0 {
			for len(batch) > 0 && batch[len(batch)-1].Seq > until {
				batch, past = batch[:len(batch)-1], true
			}
			if len(batch) == 0 {
				return errDone
			}
		}
		if err := s.apply(batch, bulk); err != nil {
			return applyError{err}
		}
		if bulk && until == 0 && s.position() >= s.CatchUpTo {
			// Caught up: what is held is written, and the index follows batch by batch.
			if err := s.flushHeld(true); err != nil {
				return applyError{err}
			}
		}
		s.setErr(nil)
		if progress != nil {
			progress(s.position())
		}
		if until > 0 && (s.position() >= until || past) {
			return errDone
		}
	}
}

// Applied is the log position the index has applied.
func (s *Search) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Err is the indexer's last error, nil once it applies again.
func (s *Search) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Search) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// WaitFor returns once the index has applied the event at position seq, or ctx's error.
func (s *Search) WaitFor(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		applied, changed := s.applied, s.changed
		s.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for the search index to apply %d (at %d): %w", seq, applied, ctx.Err())
		}
	}
}

// Close closes the index; what it applied is on disk.
func (s *Search) Close() error { return s.index.Close() }

// DocCount is the number of memories in the index.
func (s *Search) DocCount() (uint64, error) { return s.index.DocCount() }

// BuildSearch indexes the log from its start up to position upTo into a fresh index at path
// (removed first if it exists) and returns it. progress, when set, is called after each batch.
// It holds memories in bulk within DefaultHeldBytes; BuildSearchHeld takes another budget.
func BuildSearch(ctx context.Context, path string, src Source, upTo uint64, progress func(applied uint64)) (*Search, error) {
	return BuildSearchHeld(ctx, path, src, upTo, nil, progress)
}

// BuildSearchHeld is BuildSearch holding memories within held (nil: DefaultHeldBytes).
func BuildSearchHeld(ctx context.Context, path string, src Source, upTo uint64, held *HeldBudget, progress func(applied uint64)) (*Search, error) {
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("rebuild search index: %w", err)
	}
	s, err := OpenSearch(path, nil)
	if err != nil {
		return nil, err
	}
	s.Held = held
	if upTo > 0 {
		if err := s.Run(ctx, src, upTo, progress); err != nil {
			s.Close()
			return nil, fmt.Errorf("rebuild search index: %w", err)
		}
	}
	return s, nil
}

// SwapSearch puts the index built at built in place of the one at live.
func SwapSearch(built, live string) error {
	old := live + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("swap in the search index: %w", err)
	}
	if err := os.Rename(live, old); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("swap in the search index: %w", err)
	}
	if err := os.Rename(built, live); err != nil {
		return fmt.Errorf("swap in the search index: %w", err)
	}
	return os.RemoveAll(old)
}

// DiffSearch compares two search indexes, memory by memory and in their project aliases, and
// returns the differences, at most max of them; nil when they hold the same.
func DiffSearch(live, rebuilt *Search, max int) ([]string, error) {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		} else if len(out) == max {
			out = append(out, "... (more differences not shown)")
		}
	}
	if !projectsEqual(live.projects, rebuilt.projects) {
		a, _ := json.Marshal(live.projects)
		b, _ := json.Marshal(rebuilt.projects)
		add("search projects: live %s; rebuilt %s", a, b)
	}
	lids, err := live.ids()
	if err != nil {
		return nil, err
	}
	rids, err := rebuilt.ids()
	if err != nil {
		return nil, err
	}
	for _, id := range lids {
		if !slices.Contains(rids, id) {
			m, _ := live.memory(id)
			add("search memory %s: in the live index only (seq %d)", id, m.Seq)
		}
	}
	for _, id := range rids {
		if _, found := slices.BinarySearch(lids, id); !found {
			add("search memory %s: missing in the live index", id)
			continue
		}
		lm, err := live.memory(id)
		if err != nil {
			return nil, err
		}
		rm, err := rebuilt.memory(id)
		if err != nil {
			return nil, err
		}
		lj, _ := lm.AppendJSON(nil)
		rj, _ := rm.AppendJSON(nil)
		if string(lj) != string(rj) {
			add("search memory %s: live %s; rebuilt %s", id, lj, rj)
		}
	}
	return out, nil
}

func projectsEqual(a, b domain.Registry) bool {
	if len(a) != len(b) {
		return false
	}
	for id, p := range a {
		q, ok := b[id]
		if !ok || !slices.Equal(p.Aliases, q.Aliases) {
			return false
		}
	}
	return true
}

// ids returns the ids of every memory in the index, sorted.
func (s *Search) ids() ([]string, error) {
	adv, err := s.index.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	all, err := r.DocIDReaderAll()
	if err != nil {
		return nil, err
	}
	defer all.Close()
	var ids []string
	for {
		iid, err := all.Next()
		if err != nil {
			return nil, err
		}
		if iid == nil {
			break
		}
		id, err := r.ExternalID(iid)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// expiresAt is the expires value of time t: Unix milliseconds, exact in a float64.
func expiresAt(t time.Time) float64 { return float64(t.UnixMilli()) }
