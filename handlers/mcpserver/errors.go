package mcpserver

import (
	"errors"
	"fmt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// argNames maps the HTTP API's header names, which the command layer's errors name, to the
// tool arguments that carry them.
var argNames = map[string]string{"Idempotency-Key": "idempotency_key", "If-Match": "expected_seq"}

// toolError turns a command's or a read's error into the error a model sees: what was wrong,
// naming the argument, and what to do about it. The SDK answers it as a tool result with
// isError set, never as a protocol failure.
func toolError(err error) error {
	var fe *domain.FieldError
	switch {
	case errors.As(err, &fe):
		name := fe.Field
		if n, ok := argNames[name]; ok {
			name = n
		}
		return fmt.Errorf("invalid argument %s: %s", name, fe.Reason)
	case errors.Is(err, domain.ErrPrecondition):
		return fmt.Errorf("conflict: expected_seq is stale, the memory has changed since that version (%v); read it again with get_memory, decide again, and retry with its current seq", err)
	case errors.Is(err, domain.ErrNotFound):
		return fmt.Errorf("not found: %v; check the id (search_memories or list_memories give ids)", err)
	case errors.Is(err, domain.ErrConflict):
		return fmt.Errorf("conflict: %v", err)
	case errors.Is(err, errNotReadable):
		return fmt.Errorf("%v (the memory ledger is catching up or behind the min_seq asked for)", err)
	case errors.Is(err, ledger.ErrNotVisible):
		return fmt.Errorf("written but not yet readable: %v", err)
	case errors.Is(err, errForbidden), errors.Is(err, ledger.ErrForbidden):
		return err
	}
	return fmt.Errorf("memledger could not carry this out: %v", err)
}

// errForbidden is a tool the principal's role does not allow.
var errForbidden = errors.New("forbidden")

// need refuses a call when p's role does not allow role (the tools a role lacks are not
// listed either; this guards a call made without listing).
func (p Principal) need(role Role, tool string) error {
	if p.Role.Allows(role) {
		return nil
	}
	return fmt.Errorf("%w: %s needs the %s role; %s is %s", errForbidden, tool, role, p.Caller.Actor, p.Role)
}
