package eventstore_test

import (
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// BenchmarkEncode is the codec's share of an append of a memory.created event.
func BenchmarkEncode(b *testing.B) {
	ev := memEvent(newMemoryID(), 0, createdPayload(domain.StatusCandidate))
	for b.Loop() {
		if _, err := eventstore.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, 1, "events/s")
}

// BenchmarkDecode is the codec's share of a load or a replay of a memory.created event.
func BenchmarkDecode(b *testing.B) {
	raw, err := eventstore.Encode(memEvent(newMemoryID(), 0, createdPayload(domain.StatusCandidate)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := eventstore.Decode(raw, 1); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, 1, "events/s")
}
