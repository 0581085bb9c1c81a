package projections

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the nightly projection.
var (
	bucketNightlyRuns  = []byte("nightly_runs")  // seq → NightlyRun JSON
	bucketNightlySteps = []byte("nightly_steps") // pair(night, step) → present, for the steps that succeeded
)

// NightlyRun is one recorded run of the nightly pipeline.
type NightlyRun struct {
	Seq       uint64              `json:"seq"`
	Night     string              `json:"night"`
	Actor     string              `json:"actor"`
	Timestamp time.Time           `json:"timestamp"`
	Steps     []domain.StepResult `json:"steps"`
}

// Nightly is the projection of the nightly pipeline's runs.
type Nightly struct{}

// Name implements Projection.
func (Nightly) Name() string { return "nightly" }

// Init implements Projection.
func (p Nightly) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned. (2: step keys are length-prefixed.)
func (Nightly) Version() int { return 2 }

// Buckets implements Versioned.
func (Nightly) Buckets() [][]byte {
	return [][]byte{bucketNightlyRuns, bucketNightlySteps}
}

// Apply implements Projection.
func (Nightly) Apply(tx *bolt.Tx, ev domain.Event) error {
	p, ok := ev.Data.(domain.NightlyRan)
	if !ok {
		return nil
	}
	for _, s := range p.Steps {
		if s.Status == domain.StepOK {
			if err := tx.Bucket(bucketNightlySteps).Put(pair(p.Night, s.Name), present); err != nil {
				return err
			}
		}
	}
	return putJSON(tx.Bucket(bucketNightlyRuns), encodeSeq(ev.Seq),
		NightlyRun{Seq: ev.Seq, Night: p.Night, Actor: ev.Actor, Timestamp: ev.Time, Steps: p.Steps})
}

// NightlyRuns returns up to limit runs, newest first.
func (db *DB) NightlyRuns(limit int) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNightlyRuns)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, err
}

// NightlyStepDone reports whether step succeeded in a recorded run for night.
func (db *DB) NightlyStepDone(night, step string) (bool, error) {
	var done bool
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketNightlySteps); b != nil {
			done = b.Get(pair(night, step)) != nil
		}
		return nil
	})
	return done, err
}

// NightlyRunsFor returns the recorded runs for night (YYYY-MM-DD), oldest first.
func (db *DB) NightlyRunsFor(night string) ([]NightlyRun, error) {
	var out []NightlyRun
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNightlyRuns)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var r NightlyRun
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Night == night {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}

// NightlyRunAt returns the run recorded at log position seq, or nil.
func (db *DB) NightlyRunAt(seq uint64) (*NightlyRun, error) {
	var out *NightlyRun
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNightlyRuns)
		if b == nil {
			return nil
		}
		if v := b.Get(encodeSeq(seq)); v != nil {
			out = &NightlyRun{}
			return json.Unmarshal(v, out)
		}
		return nil
	})
	return out, err
}
