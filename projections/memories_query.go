package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// GetMemory returns the JSON of memory id, or nil when there is no such memory.
func (db *DB) GetMemory(id string) ([]byte, error) {
	var out []byte
	err := db.view(func(tx *bolt.Tx) error {
		out = getMemory(tx, id)
		return nil
	})
	return out, err
}

// GetMemoryCommitted is GetMemory as the projections' last commit left it: it neither rushes
// nor waits for writers' events not yet committed (see Runner.WaitCommitted), for a reader
// that can wait for them without making them commit sooner.
func (db *DB) GetMemoryCommitted(id string) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		out = getMemory(tx, id)
		return nil
	})
	return out, err
}

func getMemory(tx *bolt.Tx, id string) []byte {
	if b := tx.Bucket(bucketMemories); b != nil && !isCreatedKey([]byte(id)) {
		return bytes.Clone(b.Get([]byte(id)))
	}
	return nil
}

// MemoryFilter selects memories. Empty fields match everything.
type MemoryFilter struct {
	Status     domain.Status
	MemoryType domain.MemoryType
	Project    string
	// Limit is the most memories returned.
	Limit int
	// Before, when set, is a cursor from an earlier page: only memories created before it.
	Before uint64
}

// ListMemories returns the memories matching f, newest first, and the cursor of the next page
// (0 when there is none).
func (db *DB) ListMemories(f MemoryFilter) ([]json.RawMessage, uint64, error) {
	index, value := memoryIndex(f)
	out := []json.RawMessage{}
	var next uint64
	err := db.view(func(tx *bolt.Tx) error {
		idx, mems := tx.Bucket(bucketMemIndex), tx.Bucket(bucketMemories)
		if idx == nil {
			return nil
		}
		prefix := indexKey(index, value, nil)
		c := idx.Cursor()
		var k, v []byte
		if f.Before > 0 {
			k, v = seekBefore(c, indexKey(index, value, encodeSeq(f.Before)))
		} else {
			k, v = seekLast(c, prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			data := mems.Get(v)
			if data == nil {
				continue
			}
			if len(out) == f.Limit {
				next = decodeSeq(k[len(prefix):]) + 1
				return nil
			}
			out = append(out, bytes.Clone(data))
		}
		return nil
	})
	return out, next, err
}

// FirstMemories returns the first f.Limit memories f selects (every one when Limit is 0), in
// creation order, oldest first; f.Before is ignored. It reads only the memories it returns.
func (db *DB) FirstMemories(f MemoryFilter) ([]domain.Memory, error) {
	index, value := memoryIndex(f)
	out := []domain.Memory{}
	err := db.view(func(tx *bolt.Tx) error {
		idx, mems := tx.Bucket(bucketMemIndex), tx.Bucket(bucketMemories)
		if idx == nil {
			return nil
		}
		prefix := indexKey(index, value, nil)
		c := idx.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if f.Limit > 0 && len(out) == f.Limit {
				return nil
			}
			data := mems.Get(v)
			if data == nil {
				continue
			}
			var m domain.Memory
			if err := json.Unmarshal(data, &m); err != nil {
				return fmt.Errorf("memory %s: %w", v, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// seekBefore positions c on the last key below key.
func seekBefore(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// seekLast positions c on the last key with prefix, or on the key before where it would be.
func seekLast(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	return seekBefore(c, append(bytes.Clone(prefix), 0xff))
}

// MemoryAudit returns the audit entries of memory id, oldest first.
func (db *DB) MemoryAudit(id string) ([]json.RawMessage, error) {
	return db.memoryAudit(id, allEntries)
}

// memoryAudit returns the audit entries of memory id up to position upTo, oldest first.
func (db *DB) memoryAudit(id string, upTo uint64) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		a, ok := newAuditReader(tx)
		if !ok {
			return nil
		}
		entries, err := a.memory(id, upTo)
		if err != nil {
			return err
		}
		out = append(out, entries...)
		return nil
	})
	return out, err
}

// AuditFilter selects audit entries. Empty fields match everything.
type AuditFilter struct {
	Action domain.Action
	Actor  string
	Since  time.Time
	Limit  int
}

// AuditClockSlack is how far back of since RecentAudit keeps reading. Entries are in log order
// and their times come from the writers' clocks: writers that decide at the same time may
// append in the other order, and a clock may step back. An entry older than since does not end
// the reading until one is older by more than this.
const AuditClockSlack = 5 * time.Minute

// RecentAudit returns the audit entries matching f across memories, newest first.
func (db *DB) RecentAudit(f AuditFilter) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		a, ok := newAuditReader(tx)
		if !ok {
			return nil
		}
		idx, audit := a.idx, a.audit
		// next steps to the previous candidate entry's (seq, data).
		var next func() ([]byte, []byte)
		switch {
		case f.Action != "" || f.Actor != "":
			prefix := indexKey(indexAuditAction, string(f.Action), nil)
			switch {
			case f.Action != "" && f.Actor != "":
				prefix = indexKey(indexAuditActionActor, string(f.Action)+indexJoin+f.Actor, nil)
			case f.Action == "":
				prefix = indexKey(indexAuditActor, f.Actor, nil)
			}
			c := idx.Cursor()
			k, _ := seekLast(c, prefix)
			next = func() ([]byte, []byte) {
				if k == nil || !bytes.HasPrefix(k, prefix) {
					return nil, nil
				}
				seq := k[len(prefix):]
				k, _ = c.Prev()
				return seq, audit.Get(seq)
			}
		default:
			c := audit.Cursor()
			k, v := c.Last()
			next = func() ([]byte, []byte) {
				seq, data := k, v
				k, v = c.Prev()
				return seq, data
			}
		}
		for seq, data := next(); seq != nil && len(out) < f.Limit; seq, data = next() {
			var e struct {
				Action    domain.Action `json:"action"`
				Actor     string        `json:"actor"`
				Timestamp time.Time     `json:"timestamp"`
			}
			if data == nil {
				continue
			}
			r, err := decodeAuditRecord(data)
			if err == nil {
				err = json.Unmarshal(r.head, &e)
			}
			if err != nil {
				return fmt.Errorf("audit entry %d: %w", decodeSeq(seq), err)
			}
			if !f.Since.IsZero() && e.Timestamp.Before(f.Since) {
				if e.Timestamp.Before(f.Since.Add(-AuditClockSlack)) {
					break
				}
				continue
			}
			if (f.Action != "" && e.Action != f.Action) || (f.Actor != "" && e.Actor != f.Actor) {
				continue
			}
			entry, err := a.entry(seq)
			if err != nil {
				return err
			}
			out = append(out, entry)
		}
		return nil
	})
	return out, err
}

// AuditByEventID returns the audit entry of the event with id eventID, or nil.
func (db *DB) AuditByEventID(eventID string) ([]byte, error) {
	var out []byte
	err := db.view(func(tx *bolt.Tx) error {
		a, ok := newAuditReader(tx)
		if !ok {
			return nil
		}
		if seq := a.idx.Get(indexKey(indexAuditEvent, eventID, nil)); seq != nil {
			var err error
			out, err = a.entry(seq)
			return err
		}
		return nil
	})
	return out, err
}

// MemoryCounts are the numbers of memories by status, type and project ("" for global ones),
// and of memories reinforced at least once.
type MemoryCounts struct {
	Total      int            `json:"total"`
	ByStatus   map[string]int `json:"by_status"`
	ByType     map[string]int `json:"by_type"`
	ByProject  map[string]int `json:"by_project"`
	Reinforced int            `json:"reinforced"`
}

// MemoryCounts returns the counts the memories projection keeps.
func (db *DB) MemoryCounts() (MemoryCounts, error) {
	c := MemoryCounts{ByStatus: map[string]int{}, ByType: map[string]int{}, ByProject: map[string]int{}}
	for _, s := range domain.Statuses {
		c.ByStatus[string(s)] = 0
	}
	for _, t := range domain.MemoryTypes {
		c.ByType[string(t)] = 0
	}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMemCounts)
		if b == nil {
			return nil
		}
		c.Reinforced = int(decodeSeq(b.Get([]byte(keyReinforced))))
		c.Total = int(decodeSeq(b.Get(indexKey(indexAll, "", nil))))
		// Only the single indexes' counts: the compound ones are read where a filter needs them.
		for index, into := range map[string]map[string]int{indexStatus: c.ByStatus, indexType: c.ByType, indexProject: c.ByProject} {
			prefix := indexKey(index, "", nil)[:len(index)+1]
			cur := b.Cursor()
			for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
				into[string(bytes.TrimSuffix(k[len(prefix):], []byte{0}))] = int(decodeSeq(v))
			}
		}
		return nil
	})
	return c, err
}

// MemoriesOldestFirst returns every memory f selects (its Limit and Before are ignored), in
// creation order.
func (db *DB) MemoriesOldestFirst(f MemoryFilter) ([]domain.Memory, error) {
	f.Limit = 0
	return db.FirstMemories(f)
}
