package ledger

import (
	"errors"
	"fmt"

	"github.com/memledger/memledger/domain"
)

// ErrForbidden is a command the caller's role does not allow (HTTP 403). Nothing is written.
var ErrForbidden = errors.New("forbidden")

// allow refuses action to c unless c's role allows it: a row of the state machine that only an
// admin may issue (domain.AdminOnly) needs the admin role, whichever edge the command came
// from. An edge of a service that does not authenticate gives its callers the admin role.
func (c Caller) allow(action domain.Action) error {
	if !domain.AdminOnly(action) || c.Role.Allows(domain.RoleAdmin) {
		return nil
	}
	role := string(c.Role)
	if role == "" {
		role = "none"
	}
	who := c.Principal
	if who == "" {
		who = c.Actor
	}
	return fmt.Errorf("%w: %s needs the role admin; %s has the role %s", ErrForbidden, action.Verb(), who, role)
}
