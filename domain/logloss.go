package domain

import (
	"errors"
	"fmt"
	"strings"
)

// SeqRange is a run of log positions, From to To, both included.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Len is how many positions the range holds.
func (r SeqRange) Len() uint64 { return r.To - r.From + 1 }

// String writes the range as "7" or "7-12".
func (r SeqRange) String() string {
	if r.From == r.To {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// FormatRanges writes ranges as "3, 7-12".
func FormatRanges(rs []SeqRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// LogLossAccepted records an operator's decision to serve a log that has lost events it once
// acknowledged: the positions missing when the decision was taken, the position the
// projections had applied (they held the lost events' effects) and where they were set aside.
type LogLossAccepted struct {
	Missing       []SeqRange `json:"missing"`
	LogLastSeq    uint64     `json:"log_last_seq"`
	ProjectionsAt uint64     `json:"projections_at"`
	SetAsideAt    string     `json:"set_aside_at,omitempty"`
}

// EventLogLossAccepted is the stored type name of LogLossAccepted; its aggregate id is "log".
const EventLogLossAccepted = "system.log_loss_accepted"

// EventType implements Payload.
func (LogLossAccepted) EventType() string { return EventLogLossAccepted }

// ErrLogGap is a position of the log that is no longer delivered while later ones are: an
// event lost from the disk. Reading the log stops there rather than pass over it.
var ErrLogGap = errors.New("the log has a gap")
