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
	ActionInvalidated, ActionSuperseded, ActionReinforced, ActionExpired, ActionReconciled, ActionReverted}

var verbs = map[Action]string{
	ActionCreated: "create", ActionUpdated: "update", ActionPromoted: "promote",
	ActionRejected: "reject", ActionInvalidated: "invalidate", ActionSuperseded: "supersede",
	ActionReinforced: "reinforce", ActionExpired: "expire", ActionReconciled: "reconcile",
	ActionReverted: "revert",
}

// Verb is the imperative of the action ("promote" for promoted), for messages.
func (a Action) Verb() string { return verbs[a] }

// transition is one row of the state machine: the statuses a mutation is allowed from, the
// status it leads to ("" for unchanged) and the type of the event that records it. A row that
// restores leads to an earlier status of the memory, which its event carries; an admin row is
// a command only an admin's request may issue.
type transition struct {
	from     []Status
	to       Status
	event    string
	restores bool
	admin    bool
}

// stateMachine is the one place where the life cycle of a memory is defined: Decide checks a
// command against it (Transition), ApplyMemory takes the status an event leads to from it
// (statusAfter) and AuditAction the event's verb (actionOf). Adding a mutation is a payload
// type, its case in Decide, its row here and its golden fixture; TestMutationCoupling checks
// that they agree.
var stateMachine = map[Action]transition{
	ActionUpdated:     {from: []Status{StatusCandidate, StatusActive}, event: EventMemoryUpdated},
	ActionPromoted:    {from: []Status{StatusCandidate}, to: StatusActive, event: EventMemoryPromoted},
	ActionRejected:    {from: []Status{StatusCandidate}, to: StatusInvalid, event: EventMemoryRejected},
	ActionInvalidated: {from: []Status{StatusActive}, to: StatusInvalid, event: EventMemoryInvalidated},
	ActionSuperseded:  {from: []Status{StatusActive}, to: StatusSuperseded, event: EventMemorySuperseded},
	ActionReinforced:  {from: []Status{StatusCandidate, StatusActive}, event: EventMemoryReinforced},
	ActionExpired:     {from: []Status{StatusCandidate}, to: StatusInvalid, event: EventMemoryExpired},
	ActionReverted:    {from: Statuses, restores: true, event: EventMemoryReverted, admin: true},
}

// byEvent is the state machine's action for each event type that records one of its rows.
var byEvent = func() map[string]Action {
	out := make(map[string]Action, len(stateMachine))
	for a, t := range stateMachine {
		out[t.event] = a
	}
	return out
}()

// actionOf is the state machine's action an event of type eventType records ("" for none).
func actionOf(eventType string) Action { return byEvent[eventType] }

// statusAfter is the status a memory in status from has once an event of type eventType is
// applied, as the state machine says: its row's target, or from for a row that keeps it (a row
// that restores takes its status from the event, not from here).
func statusAfter(eventType string, from Status) Status {
	if t := stateMachine[byEvent[eventType]]; t.to != "" {
		return t.to
	}
	return from
}

// restores reports whether action's row leads to an earlier status the event carries.
func restores(action Action) bool { return stateMachine[action].restores }

// AdminOnly reports whether only an admin may issue action (a revert): the command layer
// checks it against its caller.
func AdminOnly(action Action) bool { return stateMachine[action].admin }

// Mutation is one row of the state machine, as the coupling tests read it.
type Mutation struct {
	Action Action
	From   []Status
	// To is the status the mutation leads to ("" for unchanged).
	To Status
	// Event is the type of the event that records it.
	Event string
	// Restores: the mutation leads to an earlier status, which its event carries (To is "").
	Restores bool
	// Admin: only an admin may issue it.
	Admin bool
}

// Mutations lists the rows of the state machine, in the order of Actions.
func Mutations() []Mutation {
	var out []Mutation
	for _, a := range Actions {
		if t, ok := stateMachine[a]; ok {
			out = append(out, Mutation{Action: a, From: slices.Clone(t.from), To: t.to, Event: t.event,
				Restores: t.restores, Admin: t.admin})
		}
	}
	return out
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
