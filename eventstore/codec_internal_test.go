package eventstore

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// renamed is a test event type at version 3. Version 1 had {"title"}; version 2 renamed it to
// {"name"}; version 3 added "count", 1 for events written before.
type renamed struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func (renamed) EventType() string { return "test.renamed" }

// renamedCodec is a codec with the ledger's types and test.renamed at version 3.
func renamedCodec() *codec {
	c := newCodec()
	register[renamed](c, 3)
	t := c.types["test.renamed"]
	t.upcasters[1] = func(data json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		if v1.Title == "" {
			return nil, errors.New("no title")
		}
		return json.Marshal(map[string]any{"name": v1.Title})
	}
	t.upcasters[2] = func(data json.RawMessage) (json.RawMessage, error) {
		var v2 map[string]any
		if err := json.Unmarshal(data, &v2); err != nil {
			return nil, err
		}
		v2["count"] = 1
		return json.Marshal(v2)
	}
	return c
}

func TestUpcastChain(t *testing.T) {
	c := renamedCodec()
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	envelope := func(version int, data string) []byte {
		return []byte(`{"id":"e-1","type":"test.renamed","version":` + strconv.Itoa(version) +
			`,"aggregate_id":"x","actor":"a","time":"2026-03-14T15:09:26Z","data":` + data + `}`)
	}
	want := domain.Event{ID: "e-1", Type: "test.renamed", AggregateID: "x", Actor: "a", Time: at, Seq: 5}

	tests := []struct {
		name    string
		raw     []byte
		payload renamed
	}{
		{"version 1, upcast twice", envelope(1, `{"title":"old"}`), renamed{Name: "old", Count: 1}},
		{"version 2, upcast once", envelope(2, `{"name":"mid"}`), renamed{Name: "mid", Count: 1}},
		{"version 3, current", envelope(3, `{"name":"new","count":4}`), renamed{Name: "new", Count: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := c.decode(tt.raw, 5)
			require.NoError(t, err)
			w := want
			w.Data = tt.payload
			require.Equal(t, w, ev)
		})
	}

	// Encoding writes the current version, which decodes to the same event.
	ev := domain.NewEvent("x", domain.Meta{EventID: "e-2", Actor: "a", Time: at}, renamed{Name: "n", Count: 2})
	raw, err := c.encode(ev)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"version":3`)
	back, err := c.decode(raw, 6)
	require.NoError(t, err)
	ev.Seq = 6
	require.Equal(t, ev, back)

	// A failing upcaster and a missing one are errors naming the version.
	_, err = c.decode(envelope(1, `{"other":"x"}`), 5)
	require.ErrorContains(t, err, "decode event at 5: upcast test.renamed version 1: no title")
	delete(c.types["test.renamed"].upcasters, 2)
	_, err = c.decode(envelope(1, `{"title":"old"}`), 5)
	require.ErrorContains(t, err, "no upcaster for test.renamed version 2")
	_, err = c.decode(envelope(4, `{}`), 5)
	require.ErrorContains(t, err, "test.renamed version 4, this program reads up to 3")

	// The package's registry is not the test codec's.
	_, ok := events.types["test.renamed"]
	require.False(t, ok)
}

func TestRegistry(t *testing.T) {
	for name, typ := range events.types {
		require.GreaterOrEqual(t, typ.version, 1, name)
		// Every registered version but the first has an upcaster from each older one.
		for v := 1; v < typ.version; v++ {
			require.Contains(t, typ.upcasters, v, "%s has no upcaster from version %d", name, v)
		}
		// The decoder yields the payload type registered under that name.
		p, err := typ.decode(json.RawMessage(`{}`))
		require.NoError(t, err, name)
		require.Equal(t, name, p.EventType())
	}
}
