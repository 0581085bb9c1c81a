package projections

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the project-state projection.
var (
	bucketState      = []byte("state")           // project\x00category\x00key → entry JSON
	bucketStateAudit = []byte("state_audit")     // seq → state audit entry JSON
	bucketStateIndex = []byte("state_audit_idx") // project\x00category\x00key\x00seq → nil
	// bucketStateCounts holds the counts the dashboard shows: "total" and "invalid" entries,
	// and the active ones by "project\x00"+project and "category\x00"+category.
	bucketStateCounts = []byte("state_counts")
)

// The keys of the state counts.
const (
	stateCountTotal    = "total"
	stateCountInvalid  = "invalid"
	stateCountProject  = "project"
	stateCountCategory = "category"
)

// The audit actions of state entries.
const (
	StateCreated     = "created"
	StateUpdated     = "updated"
	StateInvalidated = "invalidated"
)

// StateAuditEntry is one change of a project-state entry.
type StateAuditEntry struct {
	Seq       uint64          `json:"seq"`
	EventID   string          `json:"event_id"`
	Project   string          `json:"project"`
	Category  string          `json:"category"`
	Key       string          `json:"key"`
	Action    string          `json:"action"`
	Actor     string          `json:"actor"`
	Principal string          `json:"principal"`
	Note      string          `json:"note"`
	Timestamp time.Time       `json:"timestamp"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
}

// State is the projection of project state. Besides the state events, it derives the system
// entries of the log: atocore/alert/last_{severity} from alerts and
// atocore/status/integrity_check_result from recorded integrity runs.
type State struct{}

// Name implements Projection.
func (State) Name() string { return "state" }

// Init implements Projection.
func (p State) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned. (2: the counts by project and category.)
func (State) Version() int { return 2 }

// Buckets implements Versioned.
func (State) Buckets() [][]byte {
	return [][]byte{bucketState, bucketStateAudit, bucketStateIndex, bucketStateCounts}
}

// countState adds delta to the counts entry e stands in: the active ones by project and
// category, or the invalidated.
func countState(b *bolt.Bucket, e domain.StateEntry, delta int64) error {
	if e.Status != domain.StateActive {
		return addCount(b, []byte(stateCountInvalid), delta)
	}
	for _, k := range [][]byte{[]byte(stateCountTotal), indexKey(stateCountProject, e.Project, nil), indexKey(stateCountCategory, e.Category, nil)} {
		if err := addCount(b, k, delta); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements Projection.
func (State) Apply(tx *bolt.Tx, ev domain.Event) error {
	switch p := ev.Data.(type) {
	case domain.StateSet, domain.StateInvalidated:
		return applyStateEvent(tx, ev)
	case domain.AlertRaised:
		a, _ := domain.AlertOf(ev)
		value, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return applyStateEvent(tx, systemEvent(ev, domain.CategoryAlert, "last_"+string(p.Severity), string(value), "alerts"))
	case domain.IntegrityChecked:
		value, err := json.Marshal(p.IntegrityReport)
		if err != nil {
			return err
		}
		return applyStateEvent(tx, systemEvent(ev, domain.CategoryStatus, "integrity_check_result", string(value), "integrity-check"))
	}
	return nil
}

// systemEvent is the state event a system event stands for.
func systemEvent(ev domain.Event, category, key, value, source string) domain.Event {
	ev.AggregateID = domain.SystemProject
	ev.Data = domain.StateSet{Category: category, Key: key, Value: value, Source: source, Confidence: 1}
	return ev
}

func stateKey(project, category, key string) []byte {
	return []byte(project + "\x00" + category + "\x00" + key)
}

func applyStateEvent(tx *bolt.Tx, ev domain.Event) error {
	var category, key string
	switch p := ev.Data.(type) {
	case domain.StateSet:
		category, key = p.Category, p.Key
	case domain.StateInvalidated:
		category, key = p.Category, p.Key
	}
	k := stateKey(ev.AggregateID, category, key)
	states := tx.Bucket(bucketState)
	st := domain.ProjectState{}
	beforeJSON := json.RawMessage("null")
	action := StateCreated
	var before domain.StateEntry
	if old := states.Get(k); old != nil {
		if err := json.Unmarshal(old, &before); err != nil {
			return err
		}
		st[domain.StateKey{Category: category, Key: key}] = before
		beforeJSON, action = bytes.Clone(old), StateUpdated
	}
	if _, ok := ev.Data.(domain.StateInvalidated); ok {
		if action == StateCreated {
			return nil
		}
		action = StateInvalidated
	}
	domain.ApplyState(st, ev)
	entry := st[domain.StateKey{Category: category, Key: key}]
	after, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	counts := tx.Bucket(bucketStateCounts)
	if action != StateCreated {
		if err := countState(counts, before, -1); err != nil {
			return err
		}
	}
	if err := countState(counts, entry, 1); err != nil {
		return err
	}
	if err := states.Put(k, after); err != nil {
		return err
	}
	seq := encodeSeq(ev.Seq)
	audit := tx.Bucket(bucketStateAudit)
	audit.FillPercent = 1
	if err := putJSON(audit, seq, StateAuditEntry{Seq: ev.Seq, EventID: ev.ID, Project: ev.AggregateID,
		Category: category, Key: key, Action: action, Actor: ev.Actor, Principal: ev.Principal, Note: ev.Note, Timestamp: ev.Time,
		Before: beforeJSON, After: after}); err != nil {
		return err
	}
	return tx.Bucket(bucketStateIndex).Put(append(append(k, 0), seq...), nil)
}

// StateFilter selects state entries; empty fields match everything.
type StateFilter struct {
	Project, Category string
	// All includes invalidated entries.
	All bool
}

// ListState returns the entries matching f, by project, category and key.
func (db *DB) ListState(f StateFilter) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil {
			return nil
		}
		var prefix []byte
		if f.Project != "" {
			prefix = []byte(f.Project + "\x00")
			if f.Category != "" {
				prefix = append(prefix, f.Category+"\x00"...)
			}
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e struct {
				Category string `json:"category"`
				Status   string `json:"status"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if (f.Category != "" && e.Category != f.Category) || (!f.All && e.Status != domain.StateActive) {
				continue
			}
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, err
}

// ProjectState returns the entries of one project, for deciding state commands.
func (db *DB) ProjectState(project string) (domain.ProjectState, error) {
	st := domain.ProjectState{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil {
			return nil
		}
		prefix := []byte(project + "\x00")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e domain.StateEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			st[domain.StateKey{Category: e.Category, Key: e.Key}] = e
		}
		return nil
	})
	return st, err
}

// StateAudit returns the changes of the entries of project (and category, and key, when
// given), oldest first.
func (db *DB) StateAudit(project, category, key string) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		idx, audit := tx.Bucket(bucketStateIndex), tx.Bucket(bucketStateAudit)
		if idx == nil {
			return nil
		}
		prefix := []byte(project + "\x00")
		if category != "" {
			prefix = append(prefix, category+"\x00"...)
			if key != "" {
				prefix = append(prefix, key+"\x00"...)
			}
		}
		var seqs [][]byte
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seqs = append(seqs, k[len(k)-8:])
		}
		// Entries of several keys come in key order; the audit is in log order.
		slices.SortFunc(seqs, bytes.Compare)
		for _, s := range seqs {
			out = append(out, bytes.Clone(audit.Get(s)))
		}
		return nil
	})
	return out, err
}

// StateCounts are the numbers of active project-state entries.
type StateCounts struct {
	Total      int            `json:"total"`
	Invalid    int            `json:"invalid"`
	ByProject  map[string]int `json:"by_project"`
	ByCategory map[string]int `json:"by_category"`
}

// StateCounts returns the counts the state projection keeps of the active entries by project
// and category, and of the invalidated ones.
func (db *DB) StateCounts() (StateCounts, error) {
	c := StateCounts{ByProject: map[string]int{}, ByCategory: map[string]int{}}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStateCounts)
		if b == nil {
			return nil
		}
		c.Total = int(decodeSeq(b.Get([]byte(stateCountTotal))))
		c.Invalid = int(decodeSeq(b.Get([]byte(stateCountInvalid))))
		for index, into := range map[string]map[string]int{stateCountProject: c.ByProject, stateCountCategory: c.ByCategory} {
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

// RecountState counts the state entries one by one, as StateCounts would find them: verify
// holds the kept counts to it.
func (db *DB) RecountState() (StateCounts, error) {
	c := StateCounts{ByProject: map[string]int{}, ByCategory: map[string]int{}}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e domain.StateEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Status != domain.StateActive {
				c.Invalid++
				return nil
			}
			c.Total++
			c.ByProject[e.Project]++
			c.ByCategory[e.Category]++
			return nil
		})
	})
	return c, err
}
