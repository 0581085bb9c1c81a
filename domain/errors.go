package domain

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned when a command or a read names an aggregate that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a command is refused by the state machine, or when the aggregate
// changed between the read its decision was based on and the append of its events.
var ErrConflict = errors.New("conflict")

// ErrInvalid is returned when a command or a field of it is malformed.
var ErrInvalid = errors.New("invalid")

// FieldError says which field of a request is invalid and why. It wraps ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a FieldError for field with a formatted reason.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// TransitionError reports a mutation the state machine refuses from the memory's current status.
// It wraps ErrConflict.
type TransitionError struct {
	ID      string
	Current Status
	Action  Action
	Allowed []Status
	// Target is set instead of Action when an update asked for a status no transition reaches.
	Target Status
}

// Error implements error.
func (e *TransitionError) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("memory %s is %s: no transition leads from %s to %s", e.ID, e.Current, e.Current, e.Target)
	}
	if len(e.Allowed) == 0 {
		return fmt.Sprintf("memory %s is %s: %s is not a mutation of an existing memory", e.ID, e.Current, e.Action)
	}
	allowed := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = string(s)
	}
	return fmt.Sprintf("memory %s is %s: %s is allowed only from %s",
		e.ID, e.Current, e.Action.Verb(), strings.Join(allowed, " or "))
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *TransitionError) Unwrap() error { return ErrConflict }

// ErrPrecondition is returned when a conditional command names a version of the aggregate
// that is no longer its current one.
var ErrPrecondition = errors.New("precondition failed")

// ErrTooLarge is returned when a command's event would be larger than the log stores.
var ErrTooLarge = errors.New("too large")

// ErrUnavailable is returned when the log did not answer a write in time: the write may or may
// not be stored, and retrying it with the same idempotency key is safe.
var ErrUnavailable = errors.New("unavailable")

// ErrInsufficientStorage is returned when a write cannot be stored for want of space (a full
// disk under the log or the projections): nothing is wrong with the write, and it may be sent
// again once space allows.
var ErrInsufficientStorage = errors.New("insufficient storage")
