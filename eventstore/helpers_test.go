package eventstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// fsyncModes are the embedded server's two durability settings.
var fsyncModes = []string{eventstore.FsyncAlways, eventstore.FsyncInterval}

// The shared helpers, under the names these tests use.
var (
	t0               = eventstoretest.T0
	realisticContent = eventstoretest.RealisticContent
	openStore        = eventstoretest.Open
	openStoreAt      = eventstoretest.OpenAt
	newMemoryID      = eventstoretest.NewMemoryID
	memEvent         = eventstoretest.MemEvent
	createdPayload   = eventstoretest.CreatedPayload
	appendCreated    = eventstoretest.AppendCreated
	lastSeq          = eventstoretest.LastSeq
)

// receive reads n events from ch, failing the test if they do not arrive within 10 s.
func receive(t *testing.T, ch <-chan domain.Event, n int) []domain.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	evs := make([]domain.Event, 0, n)
	for len(evs) < n {
		select {
		case ev := <-ch:
			evs = append(evs, ev)
		case <-timeout:
			require.FailNowf(t, "follow", "received %d of %d events within 10s", len(evs), n)
		}
	}
	return evs
}

// waitErr returns the error sent on errc, failing the test if none arrives within 10 s.
func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no error within 10s")
		return nil
	}
}

// seqs are the log positions of evs.
func seqs(evs []domain.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

// ids are the event ids of evs.
func ids(evs []domain.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// aggregateEvent builds an event of aggregate id, without note or correlation id, at t0 plus n
// seconds.
func aggregateEvent(id string, n int, p domain.Payload) domain.Event {
	return domain.NewEvent(id, domain.Meta{
		EventID: uuid.NewString(),
		Actor:   "test-actor",
		Time:    t0.Add(time.Duration(n) * time.Second),
	}, p)
}
