package atocore

import (
	"fmt"
)

// AuditIndex is what ImportedBefore needs of the projections: the audit entry of an event id.
type AuditIndex interface {
	AuditByEventID(eventID string) ([]byte, error)
}

// ImportedBefore reports whether the ledger behind idx holds memory events of the plan: an
// earlier import of the same database, which a second import may add to without --merge
// (it finds its events present and writes only what is new).
func ImportedBefore(idx AuditIndex, plan *Plan) (bool, error) {
	checked := 0
	for _, ev := range plan.Events {
		if ev.Kind() != "memory" {
			continue
		}
		data, err := idx.AuditByEventID(ev.ID)
		if err != nil {
			return false, fmt.Errorf("look up an imported event: %w", err)
		}
		if data != nil {
			return true, nil
		}
		if checked++; checked == 100 {
			break
		}
	}
	return false, nil
}
