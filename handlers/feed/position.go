package feed

import (
	"strconv"
	"time"

	"github.com/memledger/memledger/domain"
)

// Position is a point of the log as a client names it: a log position (a sequence number) or
// a time.
type Position struct {
	Seq uint64
	// Time is set (and Seq 0) for a time.
	Time time.Time
}

// IsTime reports whether the position was given as a time.
func (p Position) IsTime() bool { return !p.Time.IsZero() }

// ParsePosition reads the query parameter field's value v: a whole number (a log position) or
// an RFC 3339 time. Anything else is domain.ErrInvalid naming field.
func ParsePosition(field, v string) (Position, error) {
	if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
		return Position{Seq: seq}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return Position{Time: t.UTC()}, nil
	}
	return Position{}, domain.Invalid(field, "%q is neither a log position (a whole number, like 42) nor an RFC 3339 time (like 2026-12-01T10:00:00Z)", v)
}
