package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the memories projection.
var (
	bucketMemories   = []byte("memories")      // id → memory JSON
	bucketMemCreated = []byte("memory_seq")    // id → log position of its creation
	bucketMemIndex   = []byte("memory_idx")    // index\x00value\x00creation seq → id
	bucketMemCounts  = []byte("memory_counts") // index\x00value → count; "reinforced" → count
	bucketAudit      = []byte("audit")         // seq → audit entry JSON
	bucketAuditIndex = []byte("audit_idx")     // index\x00value\x00seq → nil; event\x00id → seq
	nullJSON         = json.RawMessage("null")
	indexAll         = "all"
	indexStatus      = "status"
	indexType        = "type"
	indexProject     = "project"
	indexAuditMemory = "memory"
	indexAuditAction = "action"
	indexAuditActor  = "actor"
	indexAuditEvent  = "event"
)

// AuditEntry is one mutation of a memory, with the memory before and after it.
type AuditEntry struct {
	Seq       uint64          `json:"seq"`
	EventID   string          `json:"event_id"`
	MemoryID  string          `json:"memory_id"`
	Action    domain.Action   `json:"action"`
	Actor     string          `json:"actor"`
	Note      string          `json:"note"`
	Timestamp time.Time       `json:"timestamp"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
}

// Memories is the projection of memory events: the current memories with indexes by status,
// type and project, and the audit of every mutation with indexes by memory, action, actor and
// event id.
type Memories struct{}

// Name implements Projection.
func (Memories) Name() string { return "memories" }

// Init implements Projection.
func (p Memories) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned.
func (Memories) Version() int { return 1 }

// Buckets implements Versioned.
func (Memories) Buckets() [][]byte {
	return [][]byte{bucketMemories, bucketMemCreated, bucketMemIndex, bucketMemCounts, bucketAudit, bucketAuditIndex}
}

// Apply implements Projection.
func (Memories) Apply(tx *bolt.Tx, ev domain.Event) error {
	if ev.Kind() != "memory" || ev.Data == nil {
		return nil
	}
	mems, created := tx.Bucket(bucketMemories), tx.Bucket(bucketMemCreated)
	id := []byte(ev.AggregateID)
	beforeJSON := mems.Get(id)
	var before domain.Memory
	if beforeJSON != nil {
		if err := json.Unmarshal(beforeJSON, &before); err != nil {
			return fmt.Errorf("memory %s: %w", ev.AggregateID, err)
		}
		beforeJSON = bytes.Clone(beforeJSON)
	}
	_, isCreate := ev.Data.(domain.MemoryCreated)
	if before.Exists() == isCreate {
		// A create of an existing memory or a change of a missing one: the append's expected
		// sequence rules both out, so only a foreign writer could have put it in the log.
		return nil
	}
	after := domain.ApplyMemory(before, ev)
	afterJSON, err := json.Marshal(after)
	if err != nil {
		return err
	}
	var createdSeq []byte
	if isCreate {
		createdSeq = encodeSeq(ev.Seq)
		if err := created.Put(id, createdSeq); err != nil {
			return err
		}
	} else {
		createdSeq = created.Get(id)
	}
	if err := reindexMemory(tx.Bucket(bucketMemIndex), tx.Bucket(bucketMemCounts), before, after, createdSeq); err != nil {
		return err
	}
	if before.ReferenceCount == 0 && after.ReferenceCount > 0 {
		if err := addCount(tx.Bucket(bucketMemCounts), []byte(keyReinforced), 1); err != nil {
			return err
		}
	}
	if err := mems.Put(id, afterJSON); err != nil {
		return err
	}
	if beforeJSON == nil {
		beforeJSON = nullJSON
	}
	return putAudit(tx, AuditEntry{
		Seq: ev.Seq, EventID: ev.ID, MemoryID: ev.AggregateID,
		Action: domain.AuditAction(before, ev), Actor: ev.Actor, Note: ev.Note,
		Timestamp: ev.Time, Before: beforeJSON, After: afterJSON,
	})
}

func memoryIndexKeys(m domain.Memory) [][2]string {
	return [][2]string{
		{indexAll, ""},
		{indexStatus, string(m.Status)},
		{indexType, string(m.MemoryType)},
		{indexProject, m.Project},
	}
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
func reindexMemory(idx, counts *bolt.Bucket, before, after domain.Memory, createdSeq []byte) error {
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
func addCount(b *bolt.Bucket, key []byte, delta int64) error {
	n := int64(decodeSeq(b.Get(key))) + delta
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, encodeSeq(uint64(n)))
}

func putAudit(tx *bolt.Tx, e AuditEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	seq := encodeSeq(e.Seq)
	audit := tx.Bucket(bucketAudit)
	audit.FillPercent = 1 // keys only ever grow
	if err := audit.Put(seq, data); err != nil {
		return err
	}
	idx := tx.Bucket(bucketAuditIndex)
	for _, k := range [][2]string{
		{indexAuditMemory, e.MemoryID},
		{indexAuditAction, string(e.Action)},
		{indexAuditActor, e.Actor},
	} {
		if err := idx.Put(indexKey(k[0], k[1], seq), nil); err != nil {
			return err
		}
	}
	return idx.Put(indexKey(indexAuditEvent, e.EventID, nil), seq)
}
