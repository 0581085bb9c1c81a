package projections

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the alerts projection.
var (
	bucketAlerts     = []byte("alerts")         // seq → alert JSON
	bucketAlertIndex = []byte("alert_idx")      // severity\x00\x00seq → nil
	bucketAlertLast  = []byte("alert_last")     // severity → alert JSON
	bucketFailures   = []byte("alert_failures") // seq → delivery failure JSON
	bucketHarness    = []byte("harness")        // "last" → harness result JSON
	keyLast          = []byte("last")
)

// DeliveryFailure is a sink's recorded failure to deliver an alert.
type DeliveryFailure struct {
	Seq       uint64    `json:"seq"`
	AlertID   string    `json:"alert_id"`
	AlertSeq  uint64    `json:"alert_seq"`
	Sink      string    `json:"sink"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error"`
	Timestamp time.Time `json:"timestamp"`
}

// HarnessResult is the latest evaluation-harness result.
type HarnessResult struct {
	Seq       uint64    `json:"seq"`
	PassRate  float64   `json:"pass_rate"`
	Passed    int       `json:"passed"`
	Total     int       `json:"total"`
	Note      string    `json:"note"`
	Actor     string    `json:"actor"`
	Timestamp time.Time `json:"timestamp"`
}

// Alerts is the projection of alerts, sinks' delivery failures and harness results.
type Alerts struct{}

// Name implements Projection.
func (Alerts) Name() string { return "alerts" }

// Init implements Projection.
func (p Alerts) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned.
func (Alerts) Version() int { return 1 }

// Buckets implements Versioned.
func (Alerts) Buckets() [][]byte {
	return [][]byte{bucketAlerts, bucketAlertIndex, bucketAlertLast, bucketFailures, bucketHarness}
}

// Apply implements Projection.
func (Alerts) Apply(tx *bolt.Tx, ev domain.Event) error {
	seq := encodeSeq(ev.Seq)
	switch p := ev.Data.(type) {
	case domain.AlertRaised:
		a, _ := domain.AlertOf(ev)
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		alerts := tx.Bucket(bucketAlerts)
		alerts.FillPercent = 1
		if err := alerts.Put(seq, data); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAlertIndex).Put(indexKey(string(p.Severity), "", seq), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketAlertLast).Put([]byte(p.Severity), data)
	case domain.DeliveryFailed:
		data, err := json.Marshal(DeliveryFailure{Seq: ev.Seq, AlertID: p.AlertID, AlertSeq: p.AlertSeq,
			Sink: p.Sink, Attempts: p.Attempts, Error: p.Error, Timestamp: ev.Time})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketFailures).Put(seq, data)
	case domain.HarnessRecorded:
		data, err := json.Marshal(HarnessResult{Seq: ev.Seq, PassRate: p.PassRate, Passed: p.Passed,
			Total: p.Total, Note: ev.Note, Actor: ev.Actor, Timestamp: ev.Time})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketHarness).Put(keyLast, data)
	}
	return nil
}

// ListAlerts returns up to limit alerts, newest first, of one severity or ("") of all.
func (db *DB) ListAlerts(severity domain.Severity, limit int) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		alerts := tx.Bucket(bucketAlerts)
		if alerts == nil {
			return nil
		}
		if severity == "" {
			c := alerts.Cursor()
			for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
				out = append(out, bytes.Clone(v))
			}
			return nil
		}
		prefix := indexKey(string(severity), "", nil)
		c := tx.Bucket(bucketAlertIndex).Cursor()
		for k, _ := seekLast(c, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			out = append(out, bytes.Clone(alerts.Get(k[len(prefix):])))
		}
		return nil
	})
	return out, err
}

// LastAlerts returns the last alert of each severity that has one.
func (db *DB) LastAlerts() (map[domain.Severity]json.RawMessage, error) {
	out := map[domain.Severity]json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlertLast)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[domain.Severity(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// DeliveryFailures returns the number of recorded delivery failures and up to limit of them,
// newest first.
func (db *DB) DeliveryFailures(limit int) (int, []json.RawMessage, error) {
	out := []json.RawMessage{}
	var n int
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFailures)
		if b == nil {
			return nil
		}
		n = b.Stats().KeyN
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return n, out, err
}

// LatestHarness returns the latest harness result, or nil when none was recorded.
func (db *DB) LatestHarness() (*HarnessResult, error) {
	var out *HarnessResult
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHarness)
		if b == nil {
			return nil
		}
		if data := b.Get(keyLast); data != nil {
			out = &HarnessResult{}
			return json.Unmarshal(data, out)
		}
		return nil
	})
	return out, err
}

// CountMemories returns how many memories have status s.
func (db *DB) CountMemories(s domain.Status) (int, error) {
	counts, err := db.MemoryCounts()
	return counts.ByStatus[string(s)], err
}
