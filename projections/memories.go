package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the memories projection.
var (
	bucketMemories   = []byte("memories")      // id → memory JSON; createdKey(id) → log position of its creation
	bucketMemCreated = []byte("memory_seq")    // before version 5: id → log position of its creation
	bucketMemIndex   = []byte("memory_idx")    // index\x00value\x00creation seq → id
	bucketMemCounts  = []byte("memory_counts") // index\x00value → count; "reinforced" → count
	bucketAudit      = []byte("audit")         // seq → audit entry: its head and the change of the snapshot (see audit_store.go)
	bucketAuditIndex = []byte("audit_idx")     // index\x00value\x00seq → nil; event\x00id → seq
	nullJSON         = json.RawMessage("null")
	indexAll         = "all"
	indexStatus      = "status"
	indexType        = "type"
	indexProject     = "project"
	// The compound indexes, so that a list with several filters walks only what it returns:
	// their values are the fields joined by indexJoin, in the order of their names.
	indexStatusType        = "status+type"
	indexStatusProject     = "status+project"
	indexTypeProject       = "type+project"
	indexStatusTypeProject = "status+type+project"
	// indexJoin separates the fields of a compound index's value; no status, type or project
	// holds it.
	indexJoin        = "\x01"
	indexAuditMemory = "memory"
	indexAuditAction = "action"
	indexAuditActor  = "actor"
	// indexAuditActionActor holds the entries by action and actor together (action, indexJoin,
	// actor), for the recent audit filtered by both.
	indexAuditActionActor = "action+actor"
	indexAuditEvent       = "event"
	// indexAuditCorrelation holds the entries of events recorded with a correlation id.
	indexAuditCorrelation = "correlation"
)

// AuditEntry is one mutation of a memory, with the memory before and after it.
type AuditEntry struct {
	Seq      uint64        `json:"seq"`
	EventID  string        `json:"event_id"`
	MemoryID string        `json:"memory_id"`
	Action   domain.Action `json:"action"`
	Actor    string        `json:"actor"`
	// Principal is the token the change came through (empty for changes before the ledger
	// authenticated, with auth off, or by the service's own jobs).
	Principal string          `json:"principal"`
	Note      string          `json:"note"`
	Timestamp time.Time       `json:"timestamp"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	// CorrelationID is the correlation id the event was recorded with, if any.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Undoes, on a reverted entry, are the ids of the events the revert undid.
	Undoes []string `json:"undoes,omitempty"`
}

// Memories is the projection of memory events: the current memories with indexes by status,
// type and project, and the audit of every mutation with indexes by memory, action, actor and
// event id. The zero value works; NewMemories adds a cache of decoded memories.
type Memories struct {
	cache *stateCache
	// held, in a rebuild, holds back the writes that land all over the views (see Rebuilding).
	held *heldWrites
}

// heldWrites are the writes a rebuilding Memories holds across batches (see heldBuckets): the
// state of every memory changed since the last flush, the memory index's changes and the audit
// index's entries.
type heldWrites struct {
	states  map[string]*memoryState
	buckets *heldBuckets
	// audit are the audit index's entries: only ever added, never read in a build but for
	// the keys by memory, whose last one a memory's held state stands for.
	audit []auditIndexEntry
	// bytes is about how much memory the states and the audit index entries take.
	bytes int
	// budget is the build's budget, shared with the other projections.
	budget *HeldBudget
}

// size is about how much memory the held writes take.
func (h *heldWrites) size() int { return h.bytes + h.buckets.bytes }

// full reports whether the held writes alone have reached the whole budget (the runner writes
// every projection's once they together have).
func (h *heldWrites) full() bool { return int64(h.size()) >= h.budget.Max }

// Rebuilding implements Rebuilder: the projection for a build from the log's start, which holds
// back its scattered writes until the runner flushes it.
func (p Memories) Rebuilding(budget *HeldBudget) Projection {
	p.held = &heldWrites{states: map[string]*memoryState{}, buckets: newHeldBuckets(), budget: budget}
	budget.register(p.held.size)
	return p
}

var _ Deferrer = Memories{}

// Flush implements Deferrer: it writes what a rebuilding Memories holds, sorted (all of it:
// none of its buckets is scattered).
func (p Memories) Flush(tx *bolt.Tx, _ bool) error {
	if p.held == nil {
		return nil
	}
	// The held index's keys are sorted while the states and the audit index entries are
	// written.
	held := p.held.buckets.startFlush(0)
	defer held.wait()
	if err := p.putStates(tx, p.held.states); err != nil {
		return err
	}
	clear(p.held.states)
	audit := appendBucket(tx, bucketAuditIndex)
	// A key held twice (by event id, for two events of one event id) keeps its later value,
	// the later log position, as the live file does: values break the ties.
	slices.SortFunc(p.held.audit, func(a, b auditIndexEntry) int {
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return bytes.Compare(a.v, b.v)
	})
	for _, e := range p.held.audit {
		if err := audit.Put(e.k, e.v); err != nil {
			return err
		}
	}
	clear(p.held.audit)
	p.held.audit, p.held.bytes = p.held.audit[:0], 0
	return held.write(tx)
}

// NewMemories returns the projection with a cache of decoded memories that holds at most
// cacheBytes (about: see stateSize), so that a memory changed again is not decoded again; 0
// for no cache.
func NewMemories(cacheBytes int64) Memories {
	if cacheBytes <= 0 {
		return Memories{}
	}
	return Memories{cache: newStateCache(cacheBytes)}
}

// DefaultStateCacheBytes is the byte budget of the decoded-state cache: 64 MiB, some 60,000
// memories at the default content limit, a few hundred at the largest.
const DefaultStateCacheBytes = 64 << 20

// stateCache keeps decoded memories between batches, within a byte budget. An entry is used
// only when its JSON is byte for byte what the views hold, so a batch that was rolled back
// never leaks into it.
type stateCache struct {
	mu      sync.Mutex
	max     int64
	bytes   int64
	entries map[string]*cachedState
}

type cachedState struct {
	st   memoryState
	size int64
}

func newStateCache(max int64) *stateCache {
	return &stateCache{max: max, entries: map[string]*cachedState{}}
}

// stateEntryBytes is what an entry costs beyond its strings and JSON: the map slot, the
// entry, the memory's fixed fields.
const stateEntryBytes = 512

// stateSize is about how many bytes a cached state of memory id holds: its JSON, the strings
// of the decoded memory, the fixed parts.
func stateSize(id string, st *memoryState) int64 {
	m := &st.m
	n := len(id) + cap(st.json) + len(st.createdSeq) + len(m.ID) + len(m.Content) + len(m.Project) +
		len(m.SourceChunkID) + len(m.SupersededBy) + stateEntryBytes
	for _, tag := range m.DomainTags {
		n += len(tag) + 16
	}
	return int64(n)
}

// Bytes is the cache's accounted size; it stays within the budget.
func (c *stateCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *stateCache) get(id string, stored []byte) (*memoryState, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !bytes.Equal(e.st.json, stored) {
		return nil, false
	}
	copied := e.st
	return &copied, true
}

func (c *stateCache) put(id string, st *memoryState) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[id]; ok {
		delete(c.entries, id)
		c.bytes -= old.size
	}
	size := stateSize(id, st)
	if size > c.max {
		return // larger than the whole budget: not kept
	}
	for k, e := range c.entries { // evict arbitrary entries until it fits
		if c.bytes+size <= c.max {
			break
		}
		delete(c.entries, k)
		c.bytes -= e.size
	}
	e := &cachedState{st: *st, size: size}
	e.st.dirty, e.st.heldBytes = false, 0
	c.entries[id] = e
	c.bytes += size
}

// CacheBytes is the accounted size of the projection's decoded-state cache (0 without one).
func (p Memories) CacheBytes() int64 {
	if p.cache == nil {
		return 0
	}
	return p.cache.Bytes()
}

// Name implements Projection.
func (Memories) Name() string { return "memories" }

// Init implements Projection.
func (p Memories) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()[1:]...) }

// Version implements Versioned. (2: audit entries carry the correlation id, indexed, and a
// revert's undone events; 3: the compound indexes of memories by status, type and project, and
// of audit entries by action and actor; the count of memories reinforced drops when a revert
// brings a reference count back to zero; 4: an audit entry stores the change of the memory's
// snapshot, not the snapshots before and after it, see appendAuditRecord; 5: a memory's
// creation position is stored next to its JSON in the memories bucket, under createdKey, and
// no longer in a bucket of its own, so that a create writes one leaf and its path fewer.)
func (Memories) Version() int { return 5 }

// Buckets implements Versioned: the first, no longer written, is there for a migration to drop.
func (Memories) Buckets() [][]byte {
	return [][]byte{bucketMemCreated, bucketMemories, bucketMemIndex, bucketMemCounts, bucketAudit, bucketAuditIndex}
}

// createdKey is the key of memory id's creation position in the memories bucket: the id and a
// zero byte, which sorts it right after the memory's JSON, on the same leaf.
func createdKey(id string) []byte { return append([]byte(id), 0) }

// isCreatedKey tells a creation position's key in the memories bucket from a memory's id.
func isCreatedKey(k []byte) bool { return len(k) > 0 && k[len(k)-1] == 0 }

// Apply implements Projection.
func (p Memories) Apply(tx *bolt.Tx, ev domain.Event) error {
	return p.ApplyBatch(tx, []domain.Event{ev})
}

// memoryState is a memory as a batch left it: decoded once, written once at the batch's end.
type memoryState struct {
	m          domain.Memory
	json       []byte
	createdSeq []byte
	// auditN is the index its next audit entry has among its entries (see appendAuditRecord).
	auditN uint64
	dirty  bool
	// heldBytes is what a rebuild counts the state as holding.
	heldBytes int
}

// ApplyBatch implements BatchApplier: a memory changed several times in a batch is read and
// decoded once and written once.
func (p Memories) ApplyBatch(tx *bolt.Tx, evs []domain.Event) error {
	states := map[string]*memoryState{}
	if p.held != nil {
		states = p.held.states
	}
	for _, ev := range evs {
		if ev.Kind() != domain.KindMemory || ev.Data == nil {
			continue
		}
		if err := p.applyEvent(tx, states, ev); err != nil {
			return err
		}
		if p.held != nil && p.held.full() {
			if err := p.Flush(tx, false); err != nil {
				return err
			}
			states = p.held.states
		}
	}
	if p.held != nil {
		return nil
	}
	return p.putStates(tx, states)
}

// putStates writes the memories states changed.
func (p Memories) putStates(tx *bolt.Tx, states map[string]*memoryState) error {
	mems := appendBucket(tx, bucketMemories)
	for _, id := range slices.Sorted(maps.Keys(states)) {
		if st := states[id]; st.dirty {
			if err := mems.Put([]byte(id), st.json); err != nil {
				return err
			}
			p.cache.put(id, st)
		}
	}
	return nil
}

// load returns the batch's state of memory id, read from the views (or the cache) the first
// time.
func (p Memories) load(tx *bolt.Tx, states map[string]*memoryState, id string) (*memoryState, error) {
	if st, ok := states[id]; ok {
		return st, nil
	}
	data := tx.Bucket(bucketMemories).Get([]byte(id))
	if st, ok := p.cache.get(id, data); ok && data != nil {
		states[id] = st
		return st, nil
	}
	st := &memoryState{}
	if data != nil {
		st.json = bytes.Clone(data)
		if err := json.Unmarshal(st.json, &st.m); err != nil {
			return nil, fmt.Errorf("memory %s: %w", id, err)
		}
		st.createdSeq = bytes.Clone(tx.Bucket(bucketMemories).Get(createdKey(id)))
		n, ok, err := lastAuditIndex(tx, id)
		if err != nil {
			return nil, err
		}
		if ok {
			st.auditN = n + 1
		}
	}
	states[id] = st
	return st, nil
}

func (p Memories) applyEvent(tx *bolt.Tx, states map[string]*memoryState, ev domain.Event) error {
	st, err := p.load(tx, states, ev.AggregateID)
	if err != nil {
		return err
	}
	before, beforeJSON := st.m, st.json
	_, isCreate := ev.Data.(domain.MemoryCreated)
	if before.Exists() == isCreate {
		// A create of an existing memory or a change of a missing one: the append's expected
		// sequence rules both out, so only a foreign writer could have put it in the log.
		return nil
	}
	after := domain.ApplyMemory(before, ev)
	afterJSON, err := after.AppendJSON(make([]byte, 0, 512+len(after.Content)))
	if err != nil {
		return err
	}
	if isCreate {
		st.createdSeq = encodeSeq(ev.Seq)
		if err := appendBucket(tx, bucketMemories).Put(createdKey(ev.AggregateID), st.createdSeq); err != nil {
			return err
		}
	}
	var counts kv = tx.Bucket(bucketMemCounts)
	var idx kv = appendBucket(tx, bucketMemIndex)
	if p.held != nil {
		// A few keys each changed by most events: held, each is written once a flush.
		counts = p.held.buckets.bucket(tx, bucketMemCounts)
		idx = p.held.buckets.bucket(tx, bucketMemIndex)
	}
	if err := reindexMemory(idx, counts, before, after, st.createdSeq); err != nil {
		return err
	}
	// Reinforced counts the memories whose reference count is above zero: a revert of a
	// reinforcement can bring one back to zero.
	if was, is := before.ReferenceCount > 0, after.ReferenceCount > 0; was != is {
		delta := int64(1)
		if was {
			delta = -1
		}
		if err := addCount(counts, []byte(keyReinforced), delta); err != nil {
			return err
		}
	}
	st.m, st.json, st.dirty = after, afterJSON, true
	if p.held != nil {
		size := cap(afterJSON) + len(after.Content) + 512 // and the struct, its strings, the map slot
		p.held.bytes += size - st.heldBytes
		st.heldBytes = size
	}
	if beforeJSON == nil {
		beforeJSON = nullJSON
	}
	e := AuditEntry{
		Seq: ev.Seq, EventID: ev.ID, MemoryID: ev.AggregateID,
		Action: domain.AuditAction(before, ev), Actor: ev.Actor, Principal: ev.Principal, Note: ev.Note,
		Timestamp: ev.Time, Before: beforeJSON, After: afterJSON, CorrelationID: ev.CorrelationID,
	}
	if r, ok := ev.Data.(domain.MemoryReverted); ok {
		e.Undoes = r.Undoes
	}
	n := st.auditN
	st.auditN++
	return putAudit(tx, p.held, e, n)
}

func memoryIndexKeys(m domain.Memory) [][2]string {
	s, t, p := string(m.Status), string(m.MemoryType), m.Project
	return [][2]string{
		{indexAll, ""},
		{indexStatus, s},
		{indexType, t},
		{indexProject, p},
		{indexStatusType, s + indexJoin + t},
		{indexStatusProject, s + indexJoin + p},
		{indexTypeProject, t + indexJoin + p},
		{indexStatusTypeProject, s + indexJoin + t + indexJoin + p},
	}
}

// memoryIndex is the index and value that select exactly the memories f selects.
func memoryIndex(f MemoryFilter) (index, value string) {
	s, t, p := string(f.Status), string(f.MemoryType), f.Project
	switch {
	case s != "" && t != "" && p != "":
		return indexStatusTypeProject, s + indexJoin + t + indexJoin + p
	case s != "" && t != "":
		return indexStatusType, s + indexJoin + t
	case s != "" && p != "":
		return indexStatusProject, s + indexJoin + p
	case t != "" && p != "":
		return indexTypeProject, t + indexJoin + p
	case s != "":
		return indexStatus, s
	case t != "":
		return indexType, t
	case p != "":
		return indexProject, p
	}
	return indexAll, ""
}

func indexKey(index, value string, seq []byte) []byte {
	k := make([]byte, 0, len(index)+len(value)+2+len(seq))
	k = append(k, index...)
	k = append(k, 0)
	k = append(k, value...)
	k = append(k, 0)
	return append(k, seq...)
}

// keyReinforced counts the memories reinforced at least once.
const keyReinforced = "reinforced"

// reindexMemory moves a memory's index keys, and the counts by index value, from before to after.
func reindexMemory(idx, counts kv, before, after domain.Memory, createdSeq []byte) error {
	newKeys := memoryIndexKeys(after)
	oldKeys := memoryIndexKeys(before)
	for i, k := range newKeys {
		if before.Exists() && k == oldKeys[i] {
			continue
		}
		if before.Exists() {
			o := oldKeys[i]
			if err := idx.Delete(indexKey(o[0], o[1], createdSeq)); err != nil {
				return err
			}
			if err := addCount(counts, indexKey(o[0], o[1], nil), -1); err != nil {
				return err
			}
		}
		if err := idx.Put(indexKey(k[0], k[1], createdSeq), []byte(after.ID)); err != nil {
			return err
		}
		if err := addCount(counts, indexKey(k[0], k[1], nil), 1); err != nil {
			return err
		}
	}
	return nil
}

// addCount adds delta to the count under key, removing the key when it reaches zero.
func addCount(b kv, key []byte, delta int64) error {
	n := int64(decodeSeq(b.Get(key))) + delta
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, encodeSeq(uint64(n)))
}

// appendAuditEntry appends e's JSON, as encoding/json writes an AuditEntry, to b. The snapshots
// are spliced in as they are: marshalling them as json.RawMessage would validate and copy them
// again.
func appendAuditEntry(b []byte, e AuditEntry) ([]byte, error) {
	b, split, err := appendAuditHead(b, e)
	if err != nil {
		return nil, err
	}
	tail := append([]byte(nil), b[split:]...) // correlation id, undoes, the closing brace
	b = append(append(b[:split], `,"before":`...), e.Before...)
	b = append(append(b, `,"after":`...), e.After...)
	return append(b, tail...), nil
}

// putAudit writes e, the n-th entry of its memory, and its index keys; with held, the keys are
// held back: written straight to the file, they grow the nodes a batch lands in, which bbolt
// splits only at its commit, and each insert shifts what follows it in its node.
func putAudit(tx *bolt.Tx, held *heldWrites, e AuditEntry, n uint64) error {
	data, err := appendAuditRecord(make([]byte, 0, 256+len(e.Note)+len(e.CorrelationID)+40*len(e.Undoes)+len(e.After)/2), e, n)
	if err != nil {
		return err
	}
	seq := encodeSeq(e.Seq)
	audit := tx.Bucket(bucketAudit)
	audit.FillPercent = 1 // keys only ever grow
	if err := audit.Put(seq, data); err != nil {
		return err
	}
	idx := appendBucket(tx, bucketAuditIndex)
	put := func(k, v []byte) error {
		if held == nil {
			return idx.Put(k, v)
		}
		held.audit = append(held.audit, auditIndexEntry{k, v})
		held.bytes += len(k) + len(v) + heldEntryBytes
		return nil
	}
	if err := put(indexKey(indexAuditMemory, e.MemoryID, seq), nil); err != nil {
		return err
	}
	for _, k := range [][2]string{
		{indexAuditAction, string(e.Action)},
		{indexAuditActor, e.Actor},
		{indexAuditActionActor, string(e.Action) + indexJoin + e.Actor},
	} {
		if err := put(indexKey(k[0], k[1], seq), nil); err != nil {
			return err
		}
	}
	if e.CorrelationID != "" {
		if err := put(indexKey(indexAuditCorrelation, e.CorrelationID, seq), nil); err != nil {
			return err
		}
	}
	return put(indexKey(indexAuditEvent, e.EventID, nil), seq)
}

// auditIndexEntry is an audit index entry a build holds.
type auditIndexEntry struct{ k, v []byte }
