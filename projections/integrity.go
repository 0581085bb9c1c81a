package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the integrity projection. It keeps its own small copy of what the checks
// look at, so that it never depends on another projection's progress, and the findings
// themselves, updated by every event that creates or clears one.
var (
	bucketIntMem        = []byte("int_mem")             // memory id → integrityMemory JSON
	bucketIntChunks     = []byte("int_chunks")          // chunk id → document id
	bucketIntDocs       = []byte("int_docs")            // document id → nil
	bucketIntDocChunks  = []byte("int_doc_chunks")      // pair(document id, chunk id) → present
	bucketIntChunkRefs  = []byte("int_chunk_refs")      // pair(chunk id, memory id) → present
	bucketIntDupMembers = []byte("int_dup_members")     // pair(group(duplicate key), memory id) → present; pairPrefix(group) → count (uint64)
	bucketIntDupCount   = []byte("int_dup_count")       // before version 5: group(duplicate key) → count
	bucketIntProjects   = []byte("int_projects")        // registered project id → nil
	bucketIntState      = []byte("int_state")           // project\x00category\x00key → nil (active)
	bucketFindMissing   = []byte("find_missing_chunk")  // memory id → chunk id
	bucketFindDups      = []byte("find_duplicates")     // group(duplicate key) → duplicate key (count >= 2)
	bucketFindState     = []byte("find_state_project")  // project\x00category\x00key → nil
	bucketFindOrphans   = []byte("find_orphaned_chunk") // chunk id → document id
)

// integrityMemory is what the integrity projection keeps of a memory.
type integrityMemory struct {
	MemoryType    domain.MemoryType `json:"t"`
	Project       string            `json:"p"`
	Content       string            `json:"c"`
	Status        domain.Status     `json:"s"`
	SourceChunkID string            `json:"k,omitempty"`
	// dirty marks a copy the batch changed.
	dirty bool
}

// size is about how much memory a held copy takes.
func (im *integrityMemory) size() int {
	return len(im.Content) + len(im.Project) + len(im.SourceChunkID) + 256
}

// readsMemoryWrites reports whether applying ev reads what memory events write (the chunks
// memories cite, the missing-chunk findings).
func readsMemoryWrites(ev domain.Event) bool {
	switch ev.Data.(type) {
	case domain.DocumentRecorded, domain.ChunksAdded, domain.DocumentDeleted:
		return true
	}
	return false
}

// Integrity is the live projection of the four integrity checks. The zero value is the
// projection of a running service.
type Integrity struct {
	// held, in a rebuild, holds the writes of memory events.
	held *integrityHeld
}

// integrityHeld is what a rebuilding Integrity holds (see heldBuckets): its copies of the
// memories changed since the last flush, decoded, and the other writes of memory events.
type integrityHeld struct {
	mems    map[string]*integrityMemory
	buckets *heldBuckets
	// bytes is about how much memory the copies of memories take.
	bytes int
	// budget is the build's budget, shared with the other projections.
	budget *HeldBudget
}

// Rebuilding implements Rebuilder: in a rebuild, the writes of memory events (the bulk of a
// log, landing all over the projection's trees) are held and written sorted, at a flush.
func (p Integrity) Rebuilding(budget *HeldBudget) Projection {
	p.held = &integrityHeld{mems: map[string]*integrityMemory{}, buckets: newHeldBuckets(), budget: budget}
	p.held.buckets.scatter(bucketIntDupMembers) // keyed by digests
	held := p.held
	budget.register(func() int { return held.bytes + held.buckets.bytes })
	return p
}

var _ Deferrer = Integrity{}

// Flush implements Deferrer: unless all is set, the duplicate groups' writes are kept while
// they hold less than half of the budget.
func (p Integrity) Flush(tx *bolt.Tx, all bool) error {
	if p.held == nil {
		return nil
	}
	keep := 0
	if !all {
		keep = int(p.held.budget.Max / 2)
	}
	return p.flush(tx, keep)
}

// flush writes what a rebuilding Integrity holds, but the duplicate groups' writes while they
// hold fewer than keep bytes.
func (p Integrity) flush(tx *bolt.Tx, keep int) error {
	// The held buckets' keys are sorted while the copies of the memories are written.
	held := p.held.buckets.startFlush(keep)
	defer held.wait()
	if err := p.putMemories(tx, p.held.mems); err != nil {
		return err
	}
	clear(p.held.mems)
	p.held.bytes = 0
	return held.write(tx)
}

// bucket returns bucket name of tx, with its writes held in a rebuild.
func (p Integrity) bucket(tx *bolt.Tx, name []byte) kv {
	if p.held != nil {
		return p.held.buckets.bucket(tx, name)
	}
	return tx.Bucket(name)
}

// Name implements Projection.
func (Integrity) Name() string { return "integrity" }

// Init implements Projection.
func (p Integrity) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()[1:]...) }

// Version implements Versioned. (2: pair keys are length-prefixed; 3: duplicate groups are
// keyed by a digest of the duplicate key; 4: so are the duplicate findings, whose key held
// the whole content and was refused by bbolt beyond 32 KiB; 5: a group's count is kept among
// its members, under the group's prefix, and no longer in a bucket of its own, so that a
// creation's group writes one leaf of one tree; both trees are keyed by digests, and their
// writes land all over them.)
func (Integrity) Version() int { return 5 }

// Buckets implements Versioned: the first, no longer written, is there for a migration to drop.
func (Integrity) Buckets() [][]byte {
	return [][]byte{bucketIntDupCount, bucketIntMem, bucketIntChunks, bucketIntDocs, bucketIntDocChunks, bucketIntChunkRefs,
		bucketIntDupMembers, bucketIntProjects, bucketIntState,
		bucketFindMissing, bucketFindDups, bucketFindState, bucketFindOrphans}
}

// pairPrefix is the key prefix of the pairs whose first part is a: its length, then a, so
// that no a is a prefix of another whatever bytes it holds.
func pairPrefix(a string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(a))), a...)
}

// pair is the key of (a, b), found by a scan of pairPrefix(a).
func pair(a, b string) []byte { return append(pairPrefix(a), b...) }

// group is the key of a duplicate group: a digest of its duplicate key, which holds a whole
// memory's content. Keys that long would hold a few to a branch page and make the group
// buckets deep, and every commit rewrites a bucket's path from leaf to root. Sixteen bytes of
// SHA-256 make a collision of two groups out of the question.
func group(dupKey string) string {
	sum := sha256.Sum256([]byte(dupKey))
	return string(sum[:16])
}

// Apply implements Projection.
func (p Integrity) Apply(tx *bolt.Tx, ev domain.Event) error {
	return p.ApplyBatch(tx, []domain.Event{ev})
}

// ApplyBatch implements BatchApplier: the projection's copy of a memory is read once per batch
// and written once at its end.
func (p Integrity) ApplyBatch(tx *bolt.Tx, evs []domain.Event) error {
	mems := map[string]*integrityMemory{}
	if p.held != nil {
		mems = p.held.mems
	}
	for _, ev := range evs {
		if ev.Kind() == domain.KindMemory && ev.Data != nil {
			if err := p.applyMemory(tx, mems, ev); err != nil {
				return err
			}
			if p.held != nil && int64(p.held.bytes+p.held.buckets.bytes) >= p.held.budget.Max {
				if err := p.Flush(tx, false); err != nil {
					return err
				}
			}
			continue
		}
		if p.held != nil && readsMemoryWrites(ev) {
			// Document events read with cursors what memory events write, and cursors see
			// only what is written; they do not read the duplicate groups, which stay held.
			if err := p.flush(tx, math.MaxInt); err != nil {
				return err
			}
		}
		if err := applyIntegrityOther(tx, ev); err != nil {
			return err
		}
	}
	if p.held != nil {
		return nil
	}
	return p.putMemories(tx, mems)
}

// putMemories writes the projection's copies of the memories changed.
func (p Integrity) putMemories(tx *bolt.Tx, mems map[string]*integrityMemory) error {
	b := appendBucket(tx, bucketIntMem)
	for _, id := range slices.Sorted(maps.Keys(mems)) {
		if im := mems[id]; im != nil && im.dirty {
			if err := putJSON(b, []byte(id), im); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyIntegrityOther applies an event of another kind than memory.
func applyIntegrityOther(tx *bolt.Tx, ev domain.Event) error {
	switch p := ev.Data.(type) {
	case domain.ProjectRegistered:
		if err := tx.Bucket(bucketIntProjects).Put([]byte(ev.AggregateID), present); err != nil {
			return err
		}
		return deletePrefix(tx.Bucket(bucketFindState), []byte(ev.AggregateID+"\x00"))
	case domain.StateSet:
		k := stateKey(ev.AggregateID, p.Category, p.Key)
		if err := tx.Bucket(bucketIntState).Put(k, present); err != nil {
			return err
		}
		if ev.AggregateID != domain.SystemProject && tx.Bucket(bucketIntProjects).Get([]byte(ev.AggregateID)) == nil {
			return tx.Bucket(bucketFindState).Put(k, present)
		}
	case domain.StateInvalidated:
		k := stateKey(ev.AggregateID, p.Category, p.Key)
		if err := tx.Bucket(bucketIntState).Delete(k); err != nil {
			return err
		}
		return tx.Bucket(bucketFindState).Delete(k)
	case domain.DocumentRecorded:
		if err := tx.Bucket(bucketIntDocs).Put([]byte(ev.AggregateID), present); err != nil {
			return err
		}
		// Chunks that arrived before their document are orphans no more.
		prefix := pairPrefix(ev.AggregateID)
		c := tx.Bucket(bucketIntDocChunks).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := tx.Bucket(bucketFindOrphans).Delete(k[len(prefix):]); err != nil {
				return err
			}
		}
		return addChunks(tx, ev.AggregateID, p.Chunks)
	case domain.ChunksAdded:
		return addChunks(tx, ev.AggregateID, p.Chunks)
	case domain.DocumentDeleted:
		return deleteDocument(tx, ev.AggregateID)
	}
	return nil
}

func addChunks(tx *bolt.Tx, doc string, chunks []domain.Chunk) error {
	docExists := tx.Bucket(bucketIntDocs).Get([]byte(doc)) != nil
	for _, ch := range chunks {
		id := []byte(ch.ID)
		if err := tx.Bucket(bucketIntChunks).Put(id, []byte(doc)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketIntDocChunks).Put(pair(doc, ch.ID), present); err != nil {
			return err
		}
		if !docExists {
			if err := tx.Bucket(bucketFindOrphans).Put(id, []byte(doc)); err != nil {
				return err
			}
		}
		// Memories that cited the chunk before it existed find it now.
		for _, mem := range chunkRefs(tx, ch.ID) {
			if err := tx.Bucket(bucketFindMissing).Delete(mem); err != nil {
				return err
			}
		}
	}
	return nil
}

func deleteDocument(tx *bolt.Tx, doc string) error {
	if err := tx.Bucket(bucketIntDocs).Delete([]byte(doc)); err != nil {
		return err
	}
	prefix := pairPrefix(doc)
	var chunkIDs []string
	c := tx.Bucket(bucketIntDocChunks).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		chunkIDs = append(chunkIDs, string(k[len(prefix):]))
	}
	if err := deletePrefix(tx.Bucket(bucketIntDocChunks), prefix); err != nil {
		return err
	}
	for _, id := range chunkIDs {
		if err := tx.Bucket(bucketIntChunks).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketFindOrphans).Delete([]byte(id)); err != nil {
			return err
		}
		for _, mem := range chunkRefs(tx, id) {
			if err := tx.Bucket(bucketFindMissing).Put(mem, []byte(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunkRefs returns the ids of the memories that cite chunk id.
func chunkRefs(tx *bolt.Tx, id string) [][]byte {
	var mems [][]byte
	prefix := pairPrefix(id)
	c := tx.Bucket(bucketIntChunkRefs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		mems = append(mems, bytes.Clone(k[len(prefix):]))
	}
	return mems
}

func (p Integrity) applyMemory(tx *bolt.Tx, mems map[string]*integrityMemory, ev domain.Event) error {
	switch p := ev.Data.(type) {
	case domain.MemoryReinforced:
		return nil // changes nothing the checks look at
	case domain.MemoryUpdated:
		if !slices.ContainsFunc(p.Changed, func(f string) bool { return f == "content" || f == "memory_type" || f == "status" }) {
			return nil
		}
	}
	id := []byte(ev.AggregateID)
	im, seen := mems[ev.AggregateID]
	if !seen {
		if data := p.bucket(tx, bucketIntMem).Get(id); data != nil {
			im = &integrityMemory{}
			if err := json.Unmarshal(data, im); err != nil {
				return err
			}
		}
		mems[ev.AggregateID] = im
	}
	var before domain.Memory
	if im != nil {
		before = domain.Memory{ID: ev.AggregateID, MemoryType: im.MemoryType, Project: im.Project,
			Content: im.Content, Status: im.Status, SourceChunkID: im.SourceChunkID}
	}
	_, isCreate := ev.Data.(domain.MemoryCreated)
	if before.Exists() == isCreate {
		return nil
	}
	if ev.AggregateID == "" { // a creation: the memories projection refuses it too
		return fmt.Errorf("the memory event at %d has no memory id", ev.Seq)
	}
	after := domain.ApplyMemory(before, ev)
	copied := &integrityMemory{MemoryType: after.MemoryType, Project: after.Project,
		Content: after.Content, Status: after.Status, SourceChunkID: after.SourceChunkID, dirty: true}
	if p.held != nil {
		if im != nil && im.dirty {
			p.held.bytes -= im.size()
		}
		p.held.bytes += copied.size()
	}
	mems[ev.AggregateID] = copied
	if isCreate && after.SourceChunkID != "" {
		if err := p.bucket(tx, bucketIntChunkRefs).Put(pair(after.SourceChunkID, after.ID), present); err != nil {
			return err
		}
		if tx.Bucket(bucketIntChunks).Get([]byte(after.SourceChunkID)) == nil {
			if err := p.bucket(tx, bucketFindMissing).Put(id, []byte(after.SourceChunkID)); err != nil {
				return err
			}
		}
	}
	oldKey, newKey := "", ""
	if before.Exists() && before.Status == domain.StatusActive {
		oldKey = domain.DuplicateKey(before)
	}
	if after.Status == domain.StatusActive {
		newKey = domain.DuplicateKey(after)
	}
	if oldKey == newKey {
		return nil
	}
	if oldKey != "" {
		if err := p.countDuplicate(tx, oldKey, after.ID, -1); err != nil {
			return err
		}
	}
	if newKey != "" {
		return p.countDuplicate(tx, newKey, after.ID, +1)
	}
	return nil
}

// countDuplicate adds or removes memory id from its duplicate group and keeps the finding in
// step with the group's size. The count is stored under the group's prefix, before its
// members (a memory id is never empty: applyMemory refuses the creation of one).
func (p Integrity) countDuplicate(tx *bolt.Tx, key, id string, delta int) error {
	members := p.bucket(tx, bucketIntDupMembers)
	g := group(key)
	var err error
	if delta > 0 {
		err = members.Put(pair(g, id), present)
	} else {
		err = members.Delete(pair(g, id))
	}
	if err != nil {
		return err
	}
	countKey := pairPrefix(g)
	var was int64
	if v := members.Get(countKey); len(v) == 8 {
		was = int64(binary.BigEndian.Uint64(v))
	} else if v != nil {
		return fmt.Errorf("duplicate group of memory %s: its count is %d bytes, not 8", id, len(v))
	}
	n := was + int64(delta)
	if n <= 0 {
		err = members.Delete(countKey)
	} else {
		err = members.Put(countKey, encodeSeq(uint64(n)))
	}
	if err != nil {
		return err
	}
	// The finding changes only when the group crosses two members, either way.
	switch finds := p.bucket(tx, bucketFindDups); {
	case n >= 2 && was < 2:
		return finds.Put([]byte(g), []byte(key))
	case n < 2 && was >= 2:
		return finds.Delete([]byte(g))
	}
	return nil
}

func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// IntegrityReport returns the live findings and the log position they hold at.
func (db *DB) IntegrityReport() (domain.IntegrityReport, error) {
	r := domain.IntegrityReport{Counts: map[string]int{}, Findings: []domain.Finding{}}
	for _, c := range domain.IntegrityChecks {
		r.Counts[c] = 0
	}
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketFindMissing) == nil {
			return nil
		}
		r.AtSeq = checkpoint(tx, Integrity{}.Name())
		add := func(f domain.Finding) {
			r.Findings = append(r.Findings, f)
			r.Counts[f.Check]++
			r.Total++
		}
		tx.Bucket(bucketFindMissing).ForEach(func(k, v []byte) error {
			add(domain.Finding{Check: domain.CheckMissingChunk, MemoryID: string(k), ChunkID: string(v)})
			return nil
		})
		members := tx.Bucket(bucketIntDupMembers)
		tx.Bucket(bucketFindDups).ForEach(func(k, v []byte) error {
			parts := append(strings.SplitN(string(v), "\x00", 3), "", "")
			f := domain.Finding{Check: domain.CheckDuplicateMemory, MemoryType: parts[0], Project: parts[1], Content: parts[2]}
			prefix := pairPrefix(string(k))
			c := members.Cursor()
			for mk, _ := c.Seek(prefix); mk != nil && bytes.HasPrefix(mk, prefix); mk, _ = c.Next() {
				if len(mk) > len(prefix) { // the key of the prefix alone holds the count
					f.MemoryIDs = append(f.MemoryIDs, string(mk[len(prefix):]))
				}
			}
			add(f)
			return nil
		})
		tx.Bucket(bucketFindState).ForEach(func(k, _ []byte) error {
			parts := strings.SplitN(string(k), "\x00", 3)
			add(domain.Finding{Check: domain.CheckUnknownProject, Project: parts[0], Category: parts[1], Key: parts[2]})
			return nil
		})
		return tx.Bucket(bucketFindOrphans).ForEach(func(k, v []byte) error {
			add(domain.Finding{Check: domain.CheckOrphanedChunk, ChunkID: string(k), DocumentID: string(v)})
			return nil
		})
	})
	return r, err
}
