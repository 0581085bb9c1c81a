package domain

import "slices"

// Action is the audit verb of a memory mutation.
type Action string

// The audit actions.
const (
	ActionCreated     Action = "created"
	ActionUpdated     Action = "updated"
	ActionPromoted    Action = "promoted"
	ActionRejected    Action = "rejected"
	ActionInvalidated Action = "invalidated"
	ActionSuperseded  Action = "superseded"
	ActionReinforced  Action = "reinforced"
	ActionExpired     Action = "expired"
)

// Actions lists every audit action.
var Actions = []Action{ActionCreated, ActionUpdated, ActionPromoted, ActionRejected,
	ActionInvalidated, ActionSuperseded, ActionReinforced, ActionExpired, ActionReconciled}

var verbs = map[Action]string{
	ActionCreated: "create", ActionUpdated: "update", ActionPromoted: "promote",
	ActionRejected: "reject", ActionInvalidated: "invalidate", ActionSuperseded: "supersede",
	ActionReinforced: "reinforce", ActionExpired: "expire", ActionReconciled: "reconcile",
}

// Verb is the imperative of the action ("promote" for promoted), for messages.
func (a Action) Verb() string { return verbs[a] }

// transition is one row of the state machine: the statuses a mutation is allowed from and the
// status it leads to ("" for unchanged).
type transition struct {
	from []Status
	to   Status
}

// stateMachine is the one place where the life cycle of a memory is defined.
var stateMachine = map[Action]transition{
	ActionUpdated:     {from: []Status{StatusCandidate, StatusActive}},
	ActionPromoted:    {from: []Status{StatusCandidate}, to: StatusActive},
	ActionRejected:    {from: []Status{StatusCandidate}, to: StatusInvalid},
	ActionInvalidated: {from: []Status{StatusActive}, to: StatusInvalid},
	ActionSuperseded:  {from: []Status{StatusActive}, to: StatusSuperseded},
	ActionReinforced:  {from: []Status{StatusCandidate, StatusActive}},
	ActionExpired:     {from: []Status{StatusCandidate}, to: StatusInvalid},
}

// statusVerbs are the transitions a status change through an update may take, in the order
// they are tried.
var statusVerbs = []Action{ActionPromoted, ActionRejected, ActionInvalidated, ActionSuperseded}

// Transition returns the status memory id reaches from status from through action, or a
// TransitionError (a conflict) when the state machine does not allow it.
func Transition(id string, from Status, action Action) (Status, error) {
	t, ok := stateMachine[action]
	if !ok || !slices.Contains(t.from, from) {
		return "", &TransitionError{ID: id, Current: from, Action: action, Allowed: t.from}
	}
	if t.to == "" {
		return from, nil
	}
	return t.to, nil
}

// StatusChange returns the action that moves a memory from status from to status to, or a
// TransitionError when no transition of the state machine does.
func StatusChange(id string, from, to Status) (Action, error) {
	for _, a := range statusVerbs {
		t := stateMachine[a]
		if t.to == to && slices.Contains(t.from, from) {
			return a, nil
		}
	}
	return "", &TransitionError{ID: id, Current: from, Target: to}
}

// ActionsOf lists the audit actions an event decided for cmd can be recorded with: one for
// each command, and for an update that names a status also the verbs of the transitions.
func ActionsOf(cmd Command) []Action {
	if u, ok := cmd.(UpdateMemory); ok && u.Status != nil {
		return append([]Action{ActionUpdated}, statusVerbs...)
	}
	return []Action{cmd.action()}
}
