package domain

import (
	"fmt"
	"slices"
	"time"
)

// EventMemoryReconciled is the type name of MemoryReconciled.
const EventMemoryReconciled = "memory.reconciled"

// ActionReconciled is the audit verb of a MemoryReconciled.
const ActionReconciled Action = "reconciled"

// MemoryReconciled records that a memory takes the state an imported database holds for it:
// written by an importer when replaying the memory's imported history does not give that state
// (its source lost audit rows, or recorded a change memledger's events cannot express). It
// carries the whole state but the memory's id, source chunk and replacing memory, which it
// keeps; Changed names the fields that differed from the state before it.
type MemoryReconciled struct {
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
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// EventType implements Payload.
func (MemoryReconciled) EventType() string { return EventMemoryReconciled }

// ReconcileTo returns the MemoryReconciled that takes m to target, or nil when every field it
// carries is already equal. Changed lists the differing fields in the order of the Memory type.
func ReconcileTo(m, target Memory) *MemoryReconciled {
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
	add("domain_tags", !slices.Equal(m.DomainTags, target.DomainTags))
	add("valid_until", !equalTime(m.ValidUntil, target.ValidUntil))
	add("created_at", !m.CreatedAt.Equal(target.CreatedAt))
	add("updated_at", !m.UpdatedAt.Equal(target.UpdatedAt))
	if len(changed) == 0 {
		return nil
	}
	tags := slices.Clone(target.DomainTags)
	if tags == nil {
		tags = []string{}
	}
	return &MemoryReconciled{
		Changed: changed, MemoryType: target.MemoryType, Content: target.Content, Project: target.Project,
		Status: target.Status, Confidence: target.Confidence, ReferenceCount: target.ReferenceCount,
		LastReferencedAt: cloneUTC(target.LastReferencedAt), DomainTags: tags, ValidUntil: cloneUTC(target.ValidUntil),
		CreatedAt: target.CreatedAt.UTC(), UpdatedAt: target.UpdatedAt.UTC(),
	}
}

func cloneUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := t.UTC()
	return &c
}

// CheckImported checks that a prepared event (an importer's, with its own id, actor, note and
// time) folds cleanly on memory m, its aggregate's current state: a create only of a memory
// that does not exist, with a payload a create command could have produced (except for
// the content length, which the importer bounds); every other event only on an existing
// memory and only where the state machine allows its action; a reconciliation with a state
// a memory can hold. The rules' limits apply to tags and notes.
func (r Rules) CheckImported(m Memory, ev Event) error {
	if err := CheckActor(ev.Actor); err != nil {
		return err
	}
	if err := CheckNote(ev.Note, r.MaxNoteLength); err != nil {
		return err
	}
	if ev.ID == "" || ev.Time.IsZero() {
		return Invalid("event", "an imported event needs an id and a time")
	}
	if ev.Kind() != KindMemory || ev.Data == nil || ev.Data.EventType() != ev.Type {
		return Invalid("type", "%q is not a memory event", ev.Type)
	}
	if c, ok := ev.Data.(MemoryCreated); ok {
		if m.Exists() {
			return fmt.Errorf("memory %s already exists (it is %s): %w", ev.AggregateID, m.Status, ErrConflict)
		}
		if c.Status != StatusCandidate && c.Status != StatusActive {
			return Invalid("status", "a new memory must be candidate or active, not %s", c.Status)
		}
		return r.checkFields(c.MemoryType, c.Content, c.Project, c.Confidence, c.DomainTags)
	}
	if !m.Exists() {
		return fmt.Errorf("memory %s: %w", ev.AggregateID, ErrNotFound)
	}
	switch p := ev.Data.(type) {
	case MemoryReconciled:
		if _, err := ParseStatus(string(p.Status)); err != nil {
			return err
		}
		if p.ReferenceCount < 0 {
			return Invalid("reference_count", "must not be negative, got %d", p.ReferenceCount)
		}
		return r.checkFields(p.MemoryType, p.Content, p.Project, p.Confidence, p.DomainTags)
	case MemoryUpdated:
		if _, err := Transition(ev.AggregateID, m.Status, ActionUpdated); err != nil {
			return err
		}
		after := ApplyMemory(m, ev)
		if slices.Contains(p.Changed, "status") && after.Status != m.Status {
			if _, err := StatusChange(ev.AggregateID, m.Status, after.Status); err != nil {
				return err
			}
		}
		return r.checkFields(after.MemoryType, after.Content, after.Project, after.Confidence, after.DomainTags)
	case MemoryReinforced:
		if !(p.Delta >= 0 && p.Delta <= 1) {
			return Invalid("delta", "must be between 0 and 1, got %v", p.Delta)
		}
	}
	_, err := Transition(ev.AggregateID, m.Status, AuditAction(m, ev))
	return err
}

func (r Rules) checkFields(t MemoryType, content, project string, confidence float64, tags []string) error {
	if _, err := ParseMemoryType(string(t)); err != nil {
		return err
	}
	if c, err := NormalizeContent(content, r.MaxContentLength); err != nil {
		return err
	} else if c != content {
		return Invalid("content", "must be trimmed")
	}
	if p, err := NormalizeProject(project); err != nil {
		return err
	} else if p != project {
		return Invalid("project", "must be trimmed")
	}
	if err := CheckConfidence(confidence); err != nil {
		return err
	}
	if n, err := NormalizeTags(tags, r.MaxTags, r.MaxTagLength); err != nil {
		return err
	} else if !slices.Equal(n, tags) && !(len(n) == 0 && len(tags) == 0) {
		return Invalid("domain_tags", "must be lowercase, trimmed and distinct")
	}
	return nil
}
