package atocore

import (
	"fmt"

	"github.com/memledger/memledger/domain"
)

// Ledger is what ImportedBefore needs of the projections: the audit entry of an event id, and
// the registered projects.
type Ledger interface {
	AuditByEventID(eventID string) ([]byte, error)
	Registry() (domain.Registry, error)
}

// ImportedBefore reports whether the ledger holds events of the plan: an earlier import of
// the same database (whole, or cut short), which a second import may add to without --merge,
// finding its events present and writing only what is new.
func ImportedBefore(l Ledger, plan *Plan) (bool, error) {
	reg, err := l.Registry()
	if err != nil {
		return false, fmt.Errorf("read the registered projects: %w", err)
	}
	checked := 0
	for _, ev := range plan.Events {
		switch ev.Kind() {
		case domain.KindProject:
			if _, ok := reg[ev.AggregateID]; ok {
				return true, nil
			}
		case domain.KindMemory:
			data, err := l.AuditByEventID(ev.ID)
			if err != nil {
				return false, fmt.Errorf("look up an imported event: %w", err)
			}
			if data != nil {
				return true, nil
			}
			if checked++; checked == 100 {
				return false, nil
			}
		}
	}
	return false, nil
}
