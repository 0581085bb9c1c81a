package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/memledger/memledger/domain"
)

// envelope is the stored form of an event: the message body in the stream. Its field names
// and the payload's are part of the log's format; changing either is a new schema version.
// Version 2 of every type added principal (the token the change came through); version 1
// events have none, and decode with an empty Principal and their actor as it was.
type envelope struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Version       int       `json:"version"`
	AggregateID   string    `json:"aggregate_id"`
	Actor         string    `json:"actor"`
	Principal     string    `json:"principal"`
	Note          string    `json:"note,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	Time          time.Time `json:"time"`
	// Data is the payload; it is always the last field (encode appends it).
	Data json.RawMessage `json:"data,omitempty"`
}

// codec knows, for each event type, its current schema version, how to decode that version and
// how to upcast older versions to it.
type codec struct {
	types map[string]*eventType
}

type eventType struct {
	version int
	decode  func(json.RawMessage) (domain.Payload, error)
	// upcasters[v] turns the payload of version v into version v+1.
	upcasters map[int]func(json.RawMessage) (json.RawMessage, error)
}

// envelopePrincipal is the schema version that added principal to the envelope: every type
// is at least at this version, and its payload of version envelopePrincipal-1 is unchanged.
const envelopePrincipal = 2

// samePayload is the upcaster of a version that changed the envelope, not the payload.
func samePayload(data json.RawMessage) (json.RawMessage, error) { return data, nil }

func register[T domain.Payload](c *codec, version int) {
	var zero T
	t := &eventType{
		version: version,
		decode: func(data json.RawMessage) (domain.Payload, error) {
			var p T
			if err := json.Unmarshal(data, &p); err != nil {
				return nil, err
			}
			return p, nil
		},
		upcasters: map[int]func(json.RawMessage) (json.RawMessage, error){},
	}
	if version >= envelopePrincipal {
		t.upcasters[envelopePrincipal-1] = samePayload
	}
	c.types[zero.EventType()] = t
}

// tokenDigestSHA256 upcasts token.issued version 2 to 3, which added digest_kind and key_id:
// a digest of version 2 or older is the secret's plain SHA-256, of no key.
func tokenDigestSHA256(data json.RawMessage) (json.RawMessage, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	p["digest_kind"] = json.RawMessage(`"` + domain.DigestSHA256 + `"`)
	return json.Marshal(p)
}

// events is the registry of every event type the ledger stores and its current version.
var events = newCodec()

func newCodec() *codec {
	c := &codec{types: map[string]*eventType{}}
	register[domain.MemoryCreated](c, 2)
	register[domain.MemoryUpdated](c, 2)
	register[domain.MemoryPromoted](c, 2)
	register[domain.MemoryRejected](c, 2)
	register[domain.MemoryInvalidated](c, 2)
	register[domain.MemorySuperseded](c, 2)
	register[domain.MemoryReinforced](c, 2)
	register[domain.MemoryExpired](c, 2)
	register[domain.MemoryReconciled](c, 2)
	register[domain.MemoryReverted](c, 2)
	register[domain.AlertRaised](c, 2)
	register[domain.HarnessRecorded](c, 2)
	register[domain.DeliveryFailed](c, 2)
	register[domain.ProjectRegistered](c, 2)
	register[domain.ProjectUpdated](c, 2)
	register[domain.StateSet](c, 2)
	register[domain.StateInvalidated](c, 2)
	register[domain.DocumentRecorded](c, 2)
	register[domain.ChunksAdded](c, 2)
	register[domain.DocumentDeleted](c, 2)
	register[domain.IntegrityChecked](c, 2)
	register[domain.NightlyRan](c, 2)
	register[domain.SubscriptionRegistered](c, 2)
	register[domain.SubscriptionPaused](c, 2)
	register[domain.SubscriptionResumed](c, 2)
	register[domain.SubscriptionReset](c, 2)
	register[domain.SubscriptionRemoved](c, 2)
	register[domain.LogLossAccepted](c, 2)
	register[domain.TokenIssued](c, 3)
	c.types[domain.EventTokenIssued].upcasters[2] = tokenDigestSHA256
	register[domain.TokenRevoked](c, 2)
	register[domain.TokenSignedOut](c, 2)
	return c
}

// Registered reports whether typ is the type name of an event the log stores.
func Registered(typ string) bool {
	_, ok := events.types[typ]
	return ok
}

// Encode returns the stored form of ev at its type's current schema version.
func Encode(ev domain.Event) ([]byte, error) { return events.encode(ev) }

// Decode reads a stored event at log position seq, upcasting an older schema version to the
// current one. An event type this program does not know decodes with a nil Data, so that a
// newer writer never stops an older reader.
func Decode(data []byte, seq uint64) (domain.Event, error) { return events.decode(data, seq) }

func (c *codec) encode(ev domain.Event) ([]byte, error) {
	t, ok := c.types[ev.Type]
	if !ok || ev.Data == nil || ev.Data.EventType() != ev.Type {
		return nil, fmt.Errorf("encode event %s: unregistered type %q", ev.ID, ev.Type)
	}
	// The envelope is written by hand with its payload as the last field: marshalling the
	// payload as a json.RawMessage would validate and copy it once more. A test holds the
	// envelope to what encoding/json writes for it.
	out := make([]byte, 0, 512)
	out = append(out, `{"id":`...)
	out = domain.AppendJSONString(out, ev.ID)
	out = append(out, `,"type":`...)
	out = domain.AppendJSONString(out, ev.Type)
	out = append(out, `,"version":`...)
	out = strconv.AppendInt(out, int64(t.version), 10)
	out = append(out, `,"aggregate_id":`...)
	out = domain.AppendJSONString(out, ev.AggregateID)
	out = append(out, `,"actor":`...)
	out = domain.AppendJSONString(out, ev.Actor)
	out = append(out, `,"principal":`...)
	out = domain.AppendJSONString(out, ev.Principal)
	if ev.Note != "" {
		out = append(out, `,"note":`...)
		out = domain.AppendJSONString(out, ev.Note)
	}
	if ev.CorrelationID != "" {
		out = append(out, `,"correlation_id":`...)
		out = domain.AppendJSONString(out, ev.CorrelationID)
	}
	out = append(out, `,"time":`...)
	out, err := domain.AppendJSONTime(out, ev.Time.UTC())
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	out = append(out, `,"data":`...)
	if a, ok := ev.Data.(jsonAppender); ok {
		out, err = a.AppendJSON(out)
	} else {
		var data []byte
		data, err = json.Marshal(ev.Data)
		out = append(out, data...)
	}
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return append(out, '}'), nil
}

// jsonAppender is a payload that writes its JSON, as encoding/json would, without reflection.
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// ErrMalformed is a message in the log that is not an event envelope at all (not JSON, or
// not of the envelope's shape): no version of this program can read it.
var ErrMalformed = errors.New("malformed event")

func (c *codec) decode(raw []byte, seq uint64) (domain.Event, error) {
	if ev, ok := c.decodeFast(raw, seq); ok {
		return ev, nil
	}
	return c.decodeJSON(raw, seq)
}

// decodeJSON is decode by encoding/json, for every form of a stored event.
func (c *codec) decodeJSON(raw []byte, seq uint64) (domain.Event, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return domain.Event{Seq: seq}, fmt.Errorf("decode event at %d: %w: %w", seq, ErrMalformed, err)
	}
	ev := domain.Event{
		ID: env.ID, Type: env.Type, AggregateID: env.AggregateID, Actor: env.Actor, Principal: env.Principal,
		Note: env.Note, CorrelationID: env.CorrelationID, Time: env.Time.UTC(), Seq: seq,
	}
	t, ok := c.types[env.Type]
	if !ok {
		return ev, nil
	}
	if env.Version > t.version || env.Version < 1 {
		return ev, fmt.Errorf("decode event at %d: %s version %d, this program reads up to %d",
			seq, env.Type, env.Version, t.version)
	}
	data := env.Data
	for v := env.Version; v < t.version; v++ {
		up, ok := t.upcasters[v]
		if !ok {
			return ev, fmt.Errorf("decode event at %d: no upcaster for %s version %d", seq, env.Type, v)
		}
		var err error
		if data, err = up(data); err != nil {
			return ev, fmt.Errorf("decode event at %d: upcast %s version %d: %w", seq, env.Type, v, err)
		}
	}
	p, err := t.decode(data)
	if err != nil {
		return ev, fmt.Errorf("decode event at %d: %s: %w", seq, env.Type, err)
	}
	ev.Data = p
	return ev, nil
}
