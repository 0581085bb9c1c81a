package domain

import "time"

// Memory event type names, as stored in the log.
const (
	EventMemoryCreated     = "memory.created"
	EventMemoryUpdated     = "memory.updated"
	EventMemoryPromoted    = "memory.promoted"
	EventMemoryRejected    = "memory.rejected"
	EventMemoryInvalidated = "memory.invalidated"
	EventMemorySuperseded  = "memory.superseded"
	EventMemoryReinforced  = "memory.reinforced"
	EventMemoryExpired     = "memory.expired"
)

// MemoryCreated records a new memory.
type MemoryCreated struct {
	MemoryType    MemoryType `json:"memory_type"`
	Content       string     `json:"content"`
	Project       string     `json:"project"`
	Status        Status     `json:"status"`
	Confidence    float64    `json:"confidence"`
	SourceChunkID string     `json:"source_chunk_id"`
	DomainTags    []string   `json:"domain_tags"`
	ValidUntil    *time.Time `json:"valid_until"`
}

// MemoryUpdated records new values of the fields named in Changed. When Changed includes
// "status", the update is also a transition of the state machine.
type MemoryUpdated struct {
	Changed    []string   `json:"changed"`
	MemoryType MemoryType `json:"memory_type,omitempty"`
	Content    string     `json:"content,omitempty"`
	Confidence float64    `json:"confidence,omitempty"`
	DomainTags []string   `json:"domain_tags,omitempty"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	Status     Status     `json:"status,omitempty"`
}

// MemoryPromoted records candidate → active.
type MemoryPromoted struct{}

// MemoryRejected records candidate → invalid by a reviewer.
type MemoryRejected struct{}

// MemoryInvalidated records active → invalid; the reason is the event's note.
type MemoryInvalidated struct{}

// MemorySuperseded records active → superseded, with the replacing memory when known.
type MemorySuperseded struct {
	SupersededBy string `json:"superseded_by,omitempty"`
}

// MemoryReinforced records that a memory was referenced again: its confidence rises by Delta
// (capped at 1), its reference count by one.
type MemoryReinforced struct {
	Delta float64 `json:"delta"`
}

// MemoryExpired records candidate → invalid for a stale candidate.
type MemoryExpired struct{}

// EventType implements Payload.
func (MemoryCreated) EventType() string { return EventMemoryCreated }

// EventType implements Payload.
func (MemoryUpdated) EventType() string { return EventMemoryUpdated }

// EventType implements Payload.
func (MemoryPromoted) EventType() string { return EventMemoryPromoted }

// EventType implements Payload.
func (MemoryRejected) EventType() string { return EventMemoryRejected }

// EventType implements Payload.
func (MemoryInvalidated) EventType() string { return EventMemoryInvalidated }

// EventType implements Payload.
func (MemorySuperseded) EventType() string { return EventMemorySuperseded }

// EventType implements Payload.
func (MemoryReinforced) EventType() string { return EventMemoryReinforced }

// EventType implements Payload.
func (MemoryExpired) EventType() string { return EventMemoryExpired }
