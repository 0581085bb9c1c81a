package projections

import (
	"bytes"
	"encoding/json"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// As-of reads: the views as they were right after a log position, read from the histories
// the projections keep (every memory's audit with its snapshots, every state entry's audit).

// memoryAsOf returns memory id's snapshot right after position seq from the audit, or nil.
func memoryAsOf(tx *bolt.Tx, id string, seq uint64) ([]byte, error) {
	a, ok := newAuditReader(tx)
	if !ok {
		return nil, nil
	}
	prefix := indexKey(indexAuditMemory, id, nil)
	k, _ := seekBefore(a.idx.Cursor(), indexKey(indexAuditMemory, id, encodeSeq(seq+1)))
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return nil, nil
	}
	at := k[len(prefix):]
	r, ok, err := a.record(at)
	if err != nil || !ok {
		return nil, err
	}
	after, err := a.after(r, id, at)
	if err != nil || string(after) == "null" {
		return nil, err
	}
	return bytes.Clone(after), nil
}

// MemoryAsOf returns the JSON of memory id as it was right after log position seq, or nil
// when it did not exist yet.
func (db *DB) MemoryAsOf(id string, seq uint64) ([]byte, error) {
	var out []byte
	err := db.view(func(tx *bolt.Tx) (err error) {
		out, err = memoryAsOf(tx, id, seq)
		return err
	})
	return out, err
}

// MemoryAuditAsOf returns the audit entries of memory id up to log position seq, oldest first.
func (db *DB) MemoryAuditAsOf(id string, seq uint64) ([]json.RawMessage, error) {
	return db.memoryAudit(id, seq)
}

// ListMemoriesAsOf returns the memories matching f as they were right after log position seq,
// newest first (by creation), and the cursor of the next page (0 when there is none), as
// ListMemories pages. The indexes by status, type and project hold the current state (a
// reconciliation may change even a memory's project), so it walks the memories created up to
// seq and filters their states at seq, one seek in the audit each: a page costs what it reads
// until it holds limit matches.
func (db *DB) ListMemoriesAsOf(f MemoryFilter, seq uint64) ([]json.RawMessage, uint64, error) {
	out := []json.RawMessage{}
	var next uint64
	err := db.view(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketMemIndex)
		if idx == nil {
			return nil
		}
		prefix := indexKey(indexAll, "", nil)
		from := seq + 1
		if f.Before > 0 && f.Before < from {
			from = f.Before
		}
		c := idx.Cursor()
		for k, v := seekBefore(c, indexKey(indexAll, "", encodeSeq(from))); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			data, err := memoryAsOf(tx, string(v), seq)
			if err != nil {
				return err
			}
			if data == nil || !mayMatch(data, f) || !matches(data, f) {
				continue
			}
			if len(out) == f.Limit {
				next = decodeSeq(k[len(prefix):]) + 1
				return nil
			}
			out = append(out, data)
		}
		return nil
	})
	return out, next, err
}

// mayMatch is false when the memory JSON data cannot match f: a snapshot is compact JSON
// whose only "status", "memory_type" and "project" keys are the memory's own (a quote inside
// a string is escaped), so a match holds each as "key":"value". It spares decoding the
// snapshots a filter rules out; matches decides the others.
func mayMatch(data []byte, f MemoryFilter) bool {
	for _, kv := range [][2]string{{"status", string(f.Status)}, {"memory_type", string(f.MemoryType)}, {"project", f.Project}} {
		if kv[1] == "" {
			continue
		}
		needle := domain.AppendJSONString(append(domain.AppendJSONString(nil, kv[0]), ':'), kv[1])
		if !bytes.Contains(data, needle) {
			return false
		}
	}
	return true
}

// ListStateAsOf returns the state entries matching f as they were right after log position
// seq, by project, category and key. For each entry it seeks its last change at or before seq
// and then skips to the next entry, so the cost grows with the entries, not their changes (the
// system entries change with every alert).
func (db *DB) ListStateAsOf(f StateFilter, seq uint64) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		idx, audit := tx.Bucket(bucketStateIndex), tx.Bucket(bucketStateAudit)
		if idx == nil {
			return nil
		}
		var prefix []byte
		if f.Project != "" {
			prefix = []byte(f.Project + "\x00")
			if f.Category != "" {
				prefix = append(prefix, f.Category+"\x00"...)
			}
		}
		// Keys are project\x00category\x00key\x00seq, and no part holds a NUL: an entry's
		// changes are together, in log order, and entry\x01 sorts after all of them.
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			if len(k) < 9 || k[len(k)-9] != 0 {
				k, _ = c.Next()
				continue
			}
			entry := bytes.Clone(k[:len(k)-8]) // with its NUL
			at, _ := seekBefore(c, append(bytes.Clone(entry), encodeSeq(seq+1)...))
			if at != nil && len(at) == len(entry)+8 && bytes.HasPrefix(at, entry) {
				e, err := stateAsOf(audit.Get(at[len(entry):]), f)
				if err != nil {
					return err
				}
				if e != nil {
					out = append(out, e)
				}
			}
			entry[len(entry)-1] = 1
			k, _ = c.Seek(entry)
		}
		return nil
	})
	return out, err
}

// stateAsOf returns the entry a state audit entry left, when f selects it.
func stateAsOf(data []byte, f StateFilter) (json.RawMessage, error) {
	var e struct {
		After json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	var st struct {
		Category string `json:"category"`
		Status   string `json:"status"`
	}
	if err := json.Unmarshal(e.After, &st); err != nil {
		return nil, err
	}
	if (f.Category != "" && st.Category != f.Category) || (!f.All && st.Status != domain.StateActive) {
		return nil, nil
	}
	return bytes.Clone(e.After), nil
}

// matches reports whether the memory JSON data has the status, type and project f asks for.
func matches(data []byte, f MemoryFilter) bool {
	var m struct {
		Status     domain.Status     `json:"status"`
		MemoryType domain.MemoryType `json:"memory_type"`
		Project    string            `json:"project"`
	}
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	return (f.Status == "" || m.Status == f.Status) &&
		(f.MemoryType == "" || m.MemoryType == f.MemoryType) &&
		(f.Project == "" || m.Project == f.Project)
}
