package domain

import (
	"math"
	"slices"
	"time"
)

// ApplyMemory folds one event into m and returns the new state. It never fails: an event of
// another aggregate kind, or one it does not know, leaves m unchanged.
func ApplyMemory(m Memory, ev Event) Memory {
	if ev.Kind() != KindMemory || ev.Data == nil {
		return m
	}
	m.DomainTags = slices.Clone(m.DomainTags)
	m.ValidUntil, m.LastReferencedAt = cloneTime(m.ValidUntil), cloneTime(m.LastReferencedAt)
	switch p := ev.Data.(type) {
	case MemoryCreated:
		m = Memory{
			ID:            ev.AggregateID,
			MemoryType:    p.MemoryType,
			Content:       p.Content,
			Project:       p.Project,
			Status:        p.Status,
			Confidence:    p.Confidence,
			SourceChunkID: p.SourceChunkID,
			DomainTags:    slices.Clone(p.DomainTags),
			ValidUntil:    cloneTime(p.ValidUntil),
			CreatedAt:     ev.Time,
		}
		if m.DomainTags == nil {
			m.DomainTags = []string{}
		}
	case MemoryUpdated:
		for _, field := range p.Changed {
			switch field {
			case "memory_type":
				m.MemoryType = p.MemoryType
			case "content":
				m.Content = p.Content
			case "confidence":
				m.Confidence = p.Confidence
			case "domain_tags":
				m.DomainTags = slices.Clone(p.DomainTags)
				if m.DomainTags == nil {
					m.DomainTags = []string{}
				}
			case "valid_until":
				m.ValidUntil = cloneTime(p.ValidUntil)
			case "status":
				m.Status = p.Status
			}
		}
	case MemoryPromoted, MemoryRejected, MemoryInvalidated, MemoryExpired:
		m.Status = statusAfter(ev.Type, m.Status)
	case MemorySuperseded:
		m.Status = statusAfter(ev.Type, m.Status)
		m.SupersededBy = p.SupersededBy
	case MemoryReinforced:
		// Rounded to 1e-9 so that 0.9 + 0.05 reads 0.95, not 0.9500000000000001.
		m.Confidence = math.Min(1, math.Round((m.Confidence+p.Delta)*1e9)/1e9)
		m.ReferenceCount++
		t := ev.Time
		m.LastReferencedAt = &t
	case MemoryReverted:
		m = applyReverted(m, p)
	case MemoryReconciled:
		m.MemoryType, m.Content, m.Project, m.Status = p.MemoryType, p.Content, p.Project, p.Status
		m.Confidence, m.ReferenceCount = p.Confidence, p.ReferenceCount
		m.LastReferencedAt, m.ValidUntil = cloneTime(p.LastReferencedAt), cloneTime(p.ValidUntil)
		m.DomainTags = slices.Clone(p.DomainTags)
		if m.DomainTags == nil {
			m.DomainTags = []string{}
		}
		m.CreatedAt, m.UpdatedAt, m.Seq = p.CreatedAt, p.UpdatedAt, ev.Seq
		return m
	default:
		return m
	}
	m.UpdatedAt = ev.Time
	m.Seq = ev.Seq
	return m
}

// AuditAction is the audit verb of ev applied to before: the transition's verb when an update
// changes the status, else the verb of the event's type.
func AuditAction(before Memory, ev Event) Action {
	switch p := ev.Data.(type) {
	case MemoryCreated:
		return ActionCreated
	case MemoryUpdated:
		if slices.Contains(p.Changed, "status") {
			if a, err := StatusChange(before.ID, before.Status, p.Status); err == nil {
				return a
			}
		}
		return ActionUpdated
	case MemoryPromoted, MemoryRejected, MemoryInvalidated, MemorySuperseded, MemoryReinforced, MemoryExpired, MemoryReverted:
		return actionOf(ev.Type)
	case MemoryReconciled:
		return ActionReconciled
	}
	return ""
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
