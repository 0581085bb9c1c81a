package eventstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// The benchmarks run once per fsync mode, each on a fresh store, and report their rate as
// events/s. Compare BenchmarkAppend with its baseline BenchmarkRawPublishExpectedSeq: the
// difference is what the store adds (encoding, subject checks) to a JetStream publish.

// rawBody is a JSON body of about 300 bytes, the size of a stored event.
var rawBody = []byte(fmt.Sprintf(`{"id":%q,"type":"memory.created","version":1,"aggregate_id":%q,"actor":"bench","time":"2026-04-01T08:30:00.123456789Z","data":{"memory_type":"knowledge","content":%q}}`,
	uuid.NewString(), uuid.NewString(), strings.Repeat("x", 120)))

func benchModes(b *testing.B, run func(b *testing.B, s *eventstore.Store)) {
	for _, fsync := range fsyncModes {
		b.Run("fsync="+fsync, func(b *testing.B) {
			run(b, openStore(b, fsync))
		})
	}
}

func reportRate(b *testing.B, perOp float64, unit string) {
	b.ReportMetric(perOp*float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkRawPublishExpectedSeq is the baseline: a plain JetStream publish of a new
// aggregate's first event, with the expected subject sequence and a message id.
func BenchmarkRawPublishExpectedSeq(b *testing.B) {
	benchModes(b, func(b *testing.B, s *eventstore.Store) {
		js, ctx := s.JetStream(), b.Context()
		b.SetBytes(int64(len(rawBody)))
		for b.Loop() {
			_, err := js.Publish(ctx, eventstore.SubjectPrefix+"memory."+uuid.NewString(), rawBody,
				jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgID(uuid.NewString()))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "events/s")
	})
}

// BenchmarkRawPublishEventBody is the same baseline publishing the very bytes BenchmarkAppend
// stores (a memory.created envelope with a 200-character content), so that the two differ only
// by what the store does.
func BenchmarkRawPublishEventBody(b *testing.B) {
	benchModes(b, func(b *testing.B, s *eventstore.Store) {
		js, ctx := s.JetStream(), b.Context()
		data, err := eventstore.Encode(memEvent(newMemoryID(), 0, createdPayload(domain.StatusCandidate)))
		require.NoError(b, err)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_, err := js.Publish(ctx, eventstore.SubjectPrefix+"memory."+newMemoryID(), data,
				jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgID(uuid.NewString()))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "events/s")
	})
}

// BenchmarkAppend appends a memory.created event of a new memory.
func BenchmarkAppend(b *testing.B) {
	benchModes(b, func(b *testing.B, s *eventstore.Store) {
		ctx := b.Context()
		p := createdPayload(domain.StatusCandidate)
		data, err := eventstore.Encode(memEvent(newMemoryID(), 0, p))
		require.NoError(b, err)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := s.Append(ctx, 0, memEvent(newMemoryID(), 0, p)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "events/s")
	})
}

// BenchmarkLoad loads a memory of 10 events from a log of 10,000.
func BenchmarkLoad(b *testing.B) {
	const events = 10
	benchModes(b, func(b *testing.B, s *eventstore.Store) {
		ctx := b.Context()
		// Other memories around the one loaded.
		var id string
		var last uint64
		for i := range 1000 {
			mid, seq := appendCreated(b, s, domain.StatusActive)
			evs := make([]domain.Event, events-1)
			for j := range evs {
				evs[j] = memEvent(mid, j+1, domain.MemoryReinforced{Delta: 0.01})
			}
			_, err := s.Append(ctx, seq, evs...)
			require.NoError(b, err)
			if i == 500 {
				id, last = mid, evs[len(evs)-1].Seq
			}
		}
		for b.Loop() {
			evs, seq, err := s.Load(ctx, "memory", id)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) != events || seq != last {
				b.Fatalf("loaded %d events up to %d, want %d up to %d", len(evs), seq, events, last)
			}
		}
		reportRate(b, 1, "loads/s")
		reportRate(b, events, "events/s")
	})
}

// BenchmarkAppendVsRaw alternates the baseline publish (BenchmarkRawPublishExpectedSeq) and
// an Append (BenchmarkAppend) on one store, one of each per iteration, timing each apart: both
// run under the same conditions, so their ratio holds on a machine whose speed drifts from one
// second to the next.
func BenchmarkAppendVsRaw(b *testing.B) {
	benchModes(b, func(b *testing.B, s *eventstore.Store) {
		js, ctx := s.JetStream(), b.Context()
		p := createdPayload(domain.StatusCandidate)
		var raw, app time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := js.Publish(ctx, eventstore.SubjectPrefix+"memory."+uuid.NewString(), rawBody,
				jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgID(uuid.NewString())); err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if _, err := s.Append(ctx, 0, memEvent(newMemoryID(), 0, p)); err != nil {
				b.Fatal(err)
			}
			raw, app = raw+mid.Sub(start), app+time.Since(mid)
		}
		b.ReportMetric(float64(b.N)/raw.Seconds(), "raw/s")
		b.ReportMetric(float64(b.N)/app.Seconds(), "appends/s")
		b.ReportMetric(raw.Seconds()/app.Seconds(), "append/raw")
	})
}
