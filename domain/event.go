package domain

import (
	"strings"
	"time"
)

// Payload is the body of an event. Its EventType is the stable name the log stores
// ("memory.created"), never a Go type name; the part before the first dot is the kind of
// aggregate the event belongs to.
type Payload interface {
	EventType() string
}

// Event is one immutable fact in the log.
type Event struct {
	// ID is unique per event; the log uses it to drop duplicates, so a retried command with
	// the same idempotency key writes nothing new.
	ID string
	// Type is the payload's stable type name.
	Type string
	// AggregateID names the aggregate the event belongs to (a memory id, a severity, ...).
	AggregateID string
	// Actor is whom the change is recorded for: the principal itself, or the actor it named
	// with the on-behalf right.
	Actor string
	// Principal is the authenticated token the change came through; empty for events of
	// schema version 1 (before the ledger authenticated), of commands run with auth off, and
	// of the service's own jobs.
	Principal     string
	Note          string
	CorrelationID string
	// Time is when the command was decided; folds take time from here, never from a clock.
	Time time.Time
	// Seq is the event's position in the log; zero until it has been appended.
	Seq uint64
	// Data is the decoded payload, or nil for an event type this program does not know.
	Data Payload
}

// Kind is the kind of aggregate the event belongs to: the part of its type before the dot.
func (e Event) Kind() string {
	kind, _, _ := strings.Cut(e.Type, ".")
	return kind
}

// Meta is what every command carries besides its own fields: who, why, when and under which
// event id the resulting event is recorded.
type Meta struct {
	EventID       string
	Actor         string
	Principal     string
	Note          string
	CorrelationID string
	Time          time.Time
}

// NewEvent builds an event for aggregate id from meta and payload.
func NewEvent(id string, meta Meta, data Payload) Event {
	return Event{
		ID:            meta.EventID,
		Type:          data.EventType(),
		AggregateID:   id,
		Actor:         meta.Actor,
		Principal:     meta.Principal,
		Note:          meta.Note,
		CorrelationID: meta.CorrelationID,
		Time:          meta.Time.UTC(),
		Data:          data,
	}
}
