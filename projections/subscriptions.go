package projections

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// bucketSubscriptions holds each webhook subscription: id → stored subscription JSON.
var bucketSubscriptions = []byte("subscriptions")

// storedSubscription is a subscription as the projection keeps it: with its sealed secret,
// which the domain type never shows.
type storedSubscription struct {
	domain.Subscription
	SealedSecret string `json:"sealed_secret"`
}

// Subscriptions is the projection of the webhook subscriptions: every one ever registered,
// removed ones included (so that their consumers are cleaned up wherever memledger runs).
type Subscriptions struct{}

// Name implements Projection.
func (Subscriptions) Name() string { return "subscriptions" }

// Init implements Projection.
func (p Subscriptions) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned.
func (Subscriptions) Version() int { return 1 }

// Buckets implements Versioned.
func (Subscriptions) Buckets() [][]byte { return [][]byte{bucketSubscriptions} }

// Apply implements Projection.
func (Subscriptions) Apply(tx *bolt.Tx, ev domain.Event) error {
	if ev.Kind() != domain.KindSubscription || ev.Data == nil {
		return nil
	}
	b := tx.Bucket(bucketSubscriptions)
	var s domain.Subscription
	if old := b.Get([]byte(ev.AggregateID)); old != nil {
		var st storedSubscription
		if err := json.Unmarshal(old, &st); err != nil {
			return fmt.Errorf("subscription %s: %w", ev.AggregateID, err)
		}
		s = st.Subscription
		s.SealedSecret = st.SealedSecret
	}
	s = domain.ApplySubscription(s, ev)
	return putJSON(b, []byte(ev.AggregateID), storedSubscription{Subscription: s, SealedSecret: s.SealedSecret})
}

// Subscriptions returns every subscription, removed ones too, oldest first.
func (db *DB) Subscriptions() ([]domain.Subscription, error) {
	var out []domain.Subscription
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var st storedSubscription
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			st.Subscription.SealedSecret = st.SealedSecret
			out = append(out, st.Subscription)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b domain.Subscription) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// Subscription returns subscription id; domain.ErrNotFound when it was never registered.
func (db *DB) Subscription(id string) (domain.Subscription, error) {
	var s domain.Subscription
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		var v []byte
		if b != nil {
			v = b.Get([]byte(id))
		}
		if v == nil {
			return fmt.Errorf("subscription %s: %w", id, domain.ErrNotFound)
		}
		var st storedSubscription
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		s = st.Subscription
		s.SealedSecret = st.SealedSecret
		return nil
	})
	return s, err
}
