package eventstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// The envelope written by hand is what encoding/json writes for it, whatever its strings hold.
func TestEncodeWritesTheEnvelopeAsMarshalDoes(t *testing.T) {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, ev := range map[string]domain.Event{
		"plain": domain.NewEvent("m-1", domain.Meta{EventID: "e-1", Actor: "api-http",
			Time: time.Date(2026, 11, 28, 1, 2, 3, 456, time.UTC)}, domain.MemoryPromoted{}),
		"escapes": domain.NewEvent("m<2>", domain.Meta{EventID: "e \"2\" \xff", Actor: "a&b", Note: "line\nbreak \u2028",
			CorrelationID: "c\\d", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))},
			domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "<script>", Status: domain.StatusActive,
				Confidence: 1e-7, DomainTags: []string{"x"}, ValidUntil: &until}),
	} {
		t.Run(name, func(t *testing.T) {
			payload, err := json.Marshal(ev.Data)
			require.NoError(t, err)
			want, err := json.Marshal(envelope{ID: ev.ID, Type: ev.Type, Version: envelopePrincipal, AggregateID: ev.AggregateID,
				Actor: ev.Actor, Principal: ev.Principal, Note: ev.Note, CorrelationID: ev.CorrelationID, Time: ev.Time.UTC(), Data: payload})
			require.NoError(t, err)
			got, err := Encode(ev)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
	_, err := Encode(domain.NewEvent("m", domain.Meta{EventID: "e", Actor: "a",
		Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, domain.MemoryPromoted{}))
	require.Error(t, err, "a time JSON cannot hold is refused")
}
