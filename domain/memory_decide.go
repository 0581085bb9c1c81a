package domain

import (
	"fmt"
	"slices"
	"time"
)

// Rules holds the limits the memory commands are checked against. The zero value is not
// useful; start from DefaultRules.
type Rules struct {
	MaxContentLength int
	MaxTags          int
	MaxTagLength     int
	MaxNoteLength    int
}

// DefaultRules returns the limits the README gives (The memory model).
func DefaultRules() Rules {
	return Rules{
		MaxContentLength: DefaultMaxContentLength,
		MaxTags:          DefaultMaxTags,
		MaxTagLength:     DefaultMaxTagLength,
		MaxNoteLength:    DefaultMaxNoteLength,
	}
}

// Command is a request to change one memory. The implementations are the types below.
type Command interface {
	action() Action
}

// CreateMemory creates a memory. Status defaults to active (a manual create), Confidence to 1.
type CreateMemory struct {
	MemoryType    string
	Content       string
	Project       string
	Status        string
	Confidence    *float64
	SourceChunkID string
	DomainTags    []string
	ValidUntil    *time.Time
}

// UpdateMemory changes the fields that are set. ValidUntil is applied when SetValidUntil is
// true (a nil ValidUntil then clears the expiry). A Status goes through the state machine.
type UpdateMemory struct {
	MemoryType    *string
	Content       *string
	Confidence    *float64
	DomainTags    *[]string
	SetValidUntil bool
	ValidUntil    *time.Time
	Status        *string
}

// PromoteMemory moves a candidate to active.
type PromoteMemory struct{}

// RejectMemory moves a candidate to invalid.
type RejectMemory struct{}

// InvalidateMemory moves an active memory to invalid.
type InvalidateMemory struct{}

// SupersedeMemory moves an active memory to superseded. SupersededBy, when set, must name
// another memory; that it exists is checked by the caller, which can read other memories.
type SupersedeMemory struct {
	SupersededBy string
}

// ReinforceMemory raises a memory's confidence by Delta (0 means DefaultReinforceDelta).
type ReinforceMemory struct {
	Delta float64
}

// AutoPromoteMemory promotes a candidate reinforced at least MinReferenceCount times and with
// at least MinConfidence.
type AutoPromoteMemory struct {
	MinReferenceCount int
	MinConfidence     float64
}

// ExpireMemory invalidates a candidate never reinforced and created at least MaxAge before Now.
type ExpireMemory struct {
	Now    time.Time
	MaxAge time.Duration
}

func (CreateMemory) action() Action      { return ActionCreated }
func (UpdateMemory) action() Action      { return ActionUpdated }
func (PromoteMemory) action() Action     { return ActionPromoted }
func (RejectMemory) action() Action      { return ActionRejected }
func (InvalidateMemory) action() Action  { return ActionInvalidated }
func (SupersedeMemory) action() Action   { return ActionSuperseded }
func (ReinforceMemory) action() Action   { return ActionReinforced }
func (AutoPromoteMemory) action() Action { return ActionPromoted }
func (ExpireMemory) action() Action      { return ActionExpired }

// Decide checks cmd against memory m (the zero Memory when id does not exist yet) and returns
// the events that carry it out: none when the command changes nothing, else one. It refuses
// with ErrNotFound, ErrInvalid (a FieldError) or ErrConflict (a TransitionError).
func (r Rules) Decide(m Memory, id string, cmd Command, meta Meta) ([]Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return nil, err
	}
	if err := CheckNote(meta.Note, r.MaxNoteLength); err != nil {
		return nil, err
	}
	if c, ok := cmd.(CreateMemory); ok {
		if m.Exists() {
			return nil, fmt.Errorf("memory %s already exists (it is %s): %w", id, m.Status, ErrConflict)
		}
		p, err := r.create(c)
		if err != nil {
			return nil, err
		}
		return []Event{NewEvent(id, meta, p)}, nil
	}
	if !m.Exists() {
		return nil, fmt.Errorf("memory %s: %w", id, ErrNotFound)
	}
	to, err := Transition(id, m.Status, cmd.action())
	if err != nil {
		return nil, err
	}
	var p Payload
	switch c := cmd.(type) {
	case UpdateMemory:
		u, err := r.update(m, c)
		if err != nil || u == nil {
			return nil, err
		}
		p = *u
	case PromoteMemory:
		p = MemoryPromoted{}
	case RejectMemory:
		p = MemoryRejected{}
	case InvalidateMemory:
		p = MemoryInvalidated{}
	case SupersedeMemory:
		if err := CheckRef("superseded_by", c.SupersededBy); err != nil {
			return nil, err
		}
		if c.SupersededBy == id {
			return nil, Invalid("superseded_by", "a memory cannot supersede itself")
		}
		p = MemorySuperseded{SupersededBy: c.SupersededBy}
	case ReinforceMemory:
		delta := c.Delta
		if delta == 0 {
			delta = DefaultReinforceDelta
		}
		if !(delta > 0 && delta <= 1) {
			return nil, Invalid("delta", "must be greater than 0 and at most 1, got %v", c.Delta)
		}
		p = MemoryReinforced{Delta: delta}
	case AutoPromoteMemory:
		if c.MinReferenceCount < 1 || c.MinConfidence < 0 || c.MinConfidence > 1 {
			return nil, Invalid("min_reference_count", "auto-promote needs at least 1 reference and a confidence in [0, 1], got %d and %v", c.MinReferenceCount, c.MinConfidence)
		}
		if m.ReferenceCount < c.MinReferenceCount || m.Confidence < c.MinConfidence {
			return nil, fmt.Errorf("memory %s has %d references and confidence %v, below %d and %v: %w",
				id, m.ReferenceCount, m.Confidence, c.MinReferenceCount, c.MinConfidence, ErrConflict)
		}
		p = MemoryPromoted{}
	case RevertMemory:
		r, err := decideRevert(m, c)
		if err != nil || r == nil {
			return nil, err
		}
		p = *r
	case ExpireMemory:
		if c.MaxAge <= 0 || c.Now.IsZero() {
			return nil, Invalid("max_age_days", "expiry needs a positive age and the current time, got %v", c.MaxAge)
		}
		if m.ReferenceCount > 0 || m.CreatedAt.After(c.Now.Add(-c.MaxAge)) {
			return nil, fmt.Errorf("memory %s is not a stale candidate (created %s, %d references): %w",
				id, m.CreatedAt.Format(time.RFC3339), m.ReferenceCount, ErrConflict)
		}
		p = MemoryExpired{}
	default:
		return nil, fmt.Errorf("unknown command %T: %w", cmd, ErrInvalid)
	}
	if _, isUpdate := p.(MemoryUpdated); !isUpdate && !restores(cmd.action()) && statusAfter(p.EventType(), m.Status) != to {
		// The command's case and its row of the state machine disagree.
		return nil, fmt.Errorf("%T leads memory %s to %s, its event %s to %s", cmd, id, to, p.EventType(), statusAfter(p.EventType(), m.Status))
	}
	return []Event{NewEvent(id, meta, p)}, nil
}

func (r Rules) create(c CreateMemory) (MemoryCreated, error) {
	var p MemoryCreated
	var err error
	if p.MemoryType, err = ParseMemoryType(c.MemoryType); err != nil {
		return p, err
	}
	if p.Content, err = NormalizeContent(c.Content, r.MaxContentLength); err != nil {
		return p, err
	}
	if p.Project, err = NormalizeProject(c.Project); err != nil {
		return p, err
	}
	p.Status = StatusActive
	if c.Status != "" {
		if p.Status, err = ParseStatus(c.Status); err != nil {
			return p, err
		}
		if p.Status != StatusCandidate && p.Status != StatusActive {
			return p, Invalid("status", "a new memory must be candidate or active, not %s", p.Status)
		}
	}
	p.Confidence = DefaultConfidence
	if c.Confidence != nil {
		if err := CheckConfidence(*c.Confidence); err != nil {
			return p, err
		}
		p.Confidence = *c.Confidence
	}
	if err := CheckRef("source_chunk_id", c.SourceChunkID); err != nil {
		return p, err
	}
	p.SourceChunkID = c.SourceChunkID
	if p.DomainTags, err = NormalizeTags(c.DomainTags, r.MaxTags, r.MaxTagLength); err != nil {
		return p, err
	}
	if c.ValidUntil != nil {
		t := c.ValidUntil.UTC()
		if err := CheckValidUntil(t); err != nil {
			return p, err
		}
		p.ValidUntil = &t
	}
	return p, nil
}

// CheckValidUntil refuses an expiry whose year in UTC is outside 0 to 9999: RFC 3339, the
// form every time is stored and answered in, writes no other year.
func CheckValidUntil(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return Invalid("valid_until", "is in the year %d in UTC; it must be between the years 0 and 9999", y)
	}
	return nil
}

// update returns the MemoryUpdated that carries c out on m, or nil when c changes nothing.
func (r Rules) update(m Memory, c UpdateMemory) (*MemoryUpdated, error) {
	if c.MemoryType == nil && c.Content == nil && c.Confidence == nil && c.DomainTags == nil &&
		c.Status == nil && !c.SetValidUntil {
		return nil, Invalid("body", "names no field to update (content, memory_type, confidence, domain_tags, valid_until, status)")
	}
	u := MemoryUpdated{}
	if c.MemoryType != nil {
		t, err := ParseMemoryType(*c.MemoryType)
		if err != nil {
			return nil, err
		}
		if t != m.MemoryType {
			u.Changed, u.MemoryType = append(u.Changed, "memory_type"), t
		}
	}
	if c.Content != nil {
		content, err := NormalizeContent(*c.Content, r.MaxContentLength)
		if err != nil {
			return nil, err
		}
		if content != m.Content {
			u.Changed, u.Content = append(u.Changed, "content"), content
		}
	}
	if c.Confidence != nil {
		if err := CheckConfidence(*c.Confidence); err != nil {
			return nil, err
		}
		if *c.Confidence != m.Confidence {
			u.Changed, u.Confidence = append(u.Changed, "confidence"), *c.Confidence
		}
	}
	if c.DomainTags != nil {
		tags, err := NormalizeTags(*c.DomainTags, r.MaxTags, r.MaxTagLength)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(tags, m.DomainTags) {
			u.Changed, u.DomainTags = append(u.Changed, "domain_tags"), tags
		}
	}
	if c.SetValidUntil {
		var v *time.Time
		if c.ValidUntil != nil {
			t := c.ValidUntil.UTC()
			if err := CheckValidUntil(t); err != nil {
				return nil, err
			}
			v = &t
		}
		if !equalTime(v, m.ValidUntil) {
			u.Changed, u.ValidUntil = append(u.Changed, "valid_until"), v
		}
	}
	if c.Status != nil {
		s, err := ParseStatus(*c.Status)
		if err != nil {
			return nil, err
		}
		if s != m.Status {
			if _, err := StatusChange(m.ID, m.Status, s); err != nil {
				return nil, err
			}
			u.Changed, u.Status = append(u.Changed, "status"), s
		}
	}
	if len(u.Changed) == 0 {
		return nil, nil
	}
	return &u, nil
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
