package domain

import (
	"fmt"
	"slices"
	"time"
)

// EventMemoryReverted is the type name of MemoryReverted.
const EventMemoryReverted = "memory.reverted"

// ActionReverted is the audit verb of a MemoryReverted.
const ActionReverted Action = "reverted"

// MemoryReverted records that a memory returns to an earlier state: the one it had just before
// the first of the events Undoes names (by event id), which a revert by filter undid. When those
// events created the memory, UndoesCreation is set and the memory is invalidated instead: it
// keeps its last fields, with the status invalid (memledger never erases a memory). It carries
// every field a mutation can change; Changed names those that differ from the state before it.
// The reason is the event's note.
type MemoryReverted struct {
	Undoes           []string   `json:"undoes"`
	UndoesCreation   bool       `json:"undoes_creation,omitempty"`
	Changed          []string   `json:"changed"`
	MemoryType       MemoryType `json:"memory_type"`
	Content          string     `json:"content"`
	Project          string     `json:"project"`
	Status           Status     `json:"status"`
	Confidence       float64    `json:"confidence"`
	ReferenceCount   int        `json:"reference_count"`
	LastReferencedAt *time.Time `json:"last_referenced_at"`
	DomainTags       []string   `json:"domain_tags"`
	ValidUntil       *time.Time `json:"valid_until"`
	SupersededBy     string     `json:"superseded_by"`
}

// EventType implements Payload.
func (MemoryReverted) EventType() string { return EventMemoryReverted }

// RevertMemory returns a memory to To, an earlier state of it, undoing the events Undoes (by
// id, at least one). With UndoesCreation the events created the memory and it is invalidated
// instead; To is then not read. Its row of the state machine is admin only: the command layer
// issues it for a revert by filter, no edge takes it from a request.
type RevertMemory struct {
	To             Memory
	Undoes         []string
	UndoesCreation bool
}

func (RevertMemory) action() Action { return ActionReverted }

// decideRevert returns the MemoryReverted that takes m where c says, or nil when m is there
// already.
func decideRevert(m Memory, c RevertMemory) (*MemoryReverted, error) {
	if len(c.Undoes) == 0 {
		return nil, Invalid("undoes", "a revert names the events it undoes")
	}
	for _, id := range c.Undoes {
		if err := CheckRef("undoes", id); err != nil || id == "" {
			return nil, Invalid("undoes", "%q is not an event id", id)
		}
	}
	target := c.To
	if c.UndoesCreation {
		target = m
		target.Status = StatusInvalid
	} else if !slices.Contains(Statuses, target.Status) {
		return nil, Invalid("status", "a revert returns to a status of the life cycle, not %q", target.Status)
	}
	r := MemoryReverted{Undoes: slices.Clone(c.Undoes), UndoesCreation: c.UndoesCreation,
		MemoryType: target.MemoryType, Content: target.Content, Project: target.Project, Status: target.Status,
		Confidence: target.Confidence, ReferenceCount: target.ReferenceCount,
		LastReferencedAt: cloneTime(target.LastReferencedAt), DomainTags: slices.Clone(target.DomainTags),
		ValidUntil: cloneTime(target.ValidUntil), SupersededBy: target.SupersededBy}
	if r.DomainTags == nil {
		r.DomainTags = []string{}
	}
	r.Changed = RevertChanges(m, target)
	if len(r.Changed) == 0 {
		return nil, nil
	}
	if r.MemoryType == "" || r.Content == "" {
		return nil, fmt.Errorf("revert to a state without type or content: %w", ErrInvalid)
	}
	return &r, nil
}

// RevertChanges lists the fields a revert carries that differ between m and target, in the
// order of the Memory type.
func RevertChanges(m, target Memory) []string {
	var changed []string
	add := func(field string, differs bool) {
		if differs {
			changed = append(changed, field)
		}
	}
	add("memory_type", m.MemoryType != target.MemoryType)
	add("content", m.Content != target.Content)
	add("project", m.Project != target.Project)
	add("status", m.Status != target.Status)
	add("confidence", m.Confidence != target.Confidence)
	add("reference_count", m.ReferenceCount != target.ReferenceCount)
	add("last_referenced_at", !equalTime(m.LastReferencedAt, target.LastReferencedAt))
	add("domain_tags", !slices.Equal(m.DomainTags, target.DomainTags) && (len(m.DomainTags) > 0 || len(target.DomainTags) > 0))
	add("valid_until", !equalTime(m.ValidUntil, target.ValidUntil))
	add("superseded_by", m.SupersededBy != target.SupersededBy)
	return changed
}

// applyReverted folds a MemoryReverted into m.
func applyReverted(m Memory, p MemoryReverted) Memory {
	m.MemoryType, m.Content, m.Project, m.Status = p.MemoryType, p.Content, p.Project, p.Status
	m.Confidence, m.ReferenceCount = p.Confidence, p.ReferenceCount
	m.LastReferencedAt, m.ValidUntil = cloneTime(p.LastReferencedAt), cloneTime(p.ValidUntil)
	m.DomainTags = slices.Clone(p.DomainTags)
	if m.DomainTags == nil {
		m.DomainTags = []string{}
	}
	m.SupersededBy = p.SupersededBy
	return m
}
