package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// AuditSlice names a slice of the history: the audit entries that match every field set. A
// revert by filter reads it.
type AuditSlice struct {
	Actor string
	// Principal is the token the changes came through.
	Principal string
	Actions   []domain.Action
	// Since and Until bound the entries' times: at or after Since, before Until.
	Since, Until time.Time
	MemoryIDs    []string
	// Project matches an entry whose memory was in the project before or after it.
	Project       string
	CorrelationID string
	// MaxSeq, when set, is the last log position of the slice.
	MaxSeq uint64
}

// SliceMemory is a memory a slice touched: its current state and its whole audit, oldest
// first, with the entries of the slice marked.
type SliceMemory struct {
	ID      string
	Current json.RawMessage
	Entries []AuditEntry
	InSlice []bool
}

// HistorySlice is what a slice of the history touched, read in one transaction of the views.
type HistorySlice struct {
	// Memories are in the order of their first entry in the slice.
	Memories []SliceMemory
	// AtSeq is the memories projection's checkpoint: the log position the views are at.
	AtSeq uint64
}

// sliceHead is the part of an audit entry a slice is selected by.
type sliceHead struct {
	Seq           uint64        `json:"seq"`
	EventID       string        `json:"event_id"`
	MemoryID      string        `json:"memory_id"`
	Action        domain.Action `json:"action"`
	Actor         string        `json:"actor"`
	Principal     string        `json:"principal"`
	Timestamp     time.Time     `json:"timestamp"`
	CorrelationID string        `json:"correlation_id"`
	Before        struct {
		Project string `json:"project"`
	} `json:"before"`
	After struct {
		Project string `json:"project"`
	} `json:"after"`
}

// matches reports whether an entry is in slice f. A reverted entry is only when f's actions
// name reverted: a revert is not part of the slices it undoes.
func (f AuditSlice) matches(h sliceHead) bool {
	if len(f.Actions) == 0 && h.Action == domain.ActionReverted {
		return false
	}
	return (f.Actor == "" || h.Actor == f.Actor) && (f.Principal == "" || h.Principal == f.Principal) &&
		(len(f.Actions) == 0 || slices.Contains(f.Actions, h.Action)) &&
		(f.Since.IsZero() || !h.Timestamp.Before(f.Since)) &&
		(f.Until.IsZero() || h.Timestamp.Before(f.Until)) &&
		(len(f.MemoryIDs) == 0 || slices.Contains(f.MemoryIDs, h.MemoryID)) &&
		(f.Project == "" || h.Before.Project == f.Project || h.After.Project == f.Project) &&
		(f.CorrelationID == "" || h.CorrelationID == f.CorrelationID) &&
		(f.MaxSeq == 0 || h.Seq <= f.MaxSeq)
}

// candidates calls visit with the log position of every entry that may be in f, in log order
// (for memory ids, memory by memory): from the narrowest index f names, else all of them.
func (f AuditSlice) candidates(idx, audit *bolt.Bucket, visit func(seq []byte) error) error {
	scan := func(prefix []byte) error {
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := visit(k[len(prefix):]); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case len(f.MemoryIDs) > 0:
		for _, id := range f.MemoryIDs {
			if err := scan(indexKey(indexAuditMemory, id, nil)); err != nil {
				return err
			}
		}
		return nil
	case f.CorrelationID != "":
		return scan(indexKey(indexAuditCorrelation, f.CorrelationID, nil))
	case f.Actor != "":
		return scan(indexKey(indexAuditActor, f.Actor, nil))
	case len(f.Actions) == 1:
		return scan(indexKey(indexAuditAction, string(f.Actions[0]), nil))
	}
	c := audit.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if err := visit(k); err != nil {
			return err
		}
	}
	return nil
}

// HistorySlice returns the memories the slices touched (an entry is in the slice when it is
// in any of them), each with its current state and its whole audit.
func (db *DB) HistorySlice(of ...AuditSlice) (HistorySlice, error) {
	var out HistorySlice
	err := db.view(func(tx *bolt.Tx) error {
		out.AtSeq = checkpoint(tx, Memories{}.Name())
		a, ok := newAuditReader(tx)
		if !ok {
			return nil
		}
		idx, audit, mems := a.idx, a.audit, a.mems
		inSlice := map[string]bool{} // event ids
		var order []string
		seen := map[string]bool{}
		for _, f := range of {
			err := f.candidates(idx, audit, func(seq []byte) error {
				data, err := a.entry(seq)
				if err != nil || data == nil {
					return err
				}
				var h sliceHead
				if err := json.Unmarshal(data, &h); err != nil {
					return fmt.Errorf("audit entry %d: %w", decodeSeq(seq), err)
				}
				if !f.matches(h) {
					return nil
				}
				inSlice[h.EventID] = true
				if !seen[h.MemoryID] {
					seen[h.MemoryID] = true
					order = append(order, h.MemoryID)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, id := range order {
			m := SliceMemory{ID: id, Current: bytes.Clone(mems.Get([]byte(id)))}
			entries, err := a.memory(id, allEntries)
			if err != nil {
				return err
			}
			for _, data := range entries {
				var e AuditEntry
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("audit entry of memory %s: %w", id, err)
				}
				m.Entries = append(m.Entries, e)
				m.InSlice = append(m.InSlice, inSlice[e.EventID])
			}
			out.Memories = append(out.Memories, m)
		}
		// The memories in the order of their first entry in the slice.
		first := func(m SliceMemory) uint64 {
			for i, e := range m.Entries {
				if m.InSlice[i] {
					return e.Seq
				}
			}
			return 0
		}
		slices.SortStableFunc(out.Memories, func(a, b SliceMemory) int { return compareUint(first(a), first(b)) })
		return nil
	})
	return out, err
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
