package domain_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// ---------------------------------------------------------------------------------------------
// Helpers shared by the tests of this package: a tiny in-memory "log" that folds a memory
// through Decide and ApplyMemory, numbering events the way the real log does.
// ---------------------------------------------------------------------------------------------

const (
	memID   = "7f3c2a9e-5b1d-4c8e-9a6f-2d4e8b1c0a37"
	otherID = "1a2b3c4d-0000-4000-8000-000000000001"
)

// t0 is the time of the first event of every ledger.
var t0 = time.Date(2026, 4, 16, 21, 54, 10, 0, time.UTC)

const (
	candidate  = domain.StatusCandidate
	active     = domain.StatusActive
	superseded = domain.StatusSuperseded
	invalid    = domain.StatusInvalid
)

// allStatuses is written out here rather than taken from domain.Statuses so that a status
// added to or dropped from the package is noticed by TestStatusesAndActionsAreComplete.
var allStatuses = []domain.Status{candidate, active, superseded, invalid}

func ptr[T any](v T) *T { return &v }

// ledger is one memory and the events that made it.
type ledger struct {
	t      *testing.T
	rules  domain.Rules
	m      domain.Memory
	now    time.Time
	events []domain.Event
}

func newLedger(t *testing.T) *ledger {
	return &ledger{t: t, rules: domain.DefaultRules(), now: t0.Add(-time.Minute)}
}

// meta returns the meta of the next command: one minute after the previous one.
func (l *ledger) meta() domain.Meta {
	l.now = l.now.Add(time.Minute)
	return domain.Meta{
		EventID: fmt.Sprintf("ev-%d", len(l.events)+1),
		Actor:   "test-actor",
		Time:    l.now,
	}
}

// try decides cmd on the current state and, when it is allowed, appends and applies its events.
func (l *ledger) try(cmd domain.Command) ([]domain.Event, error) {
	evs, err := l.rules.Decide(l.m, memID, cmd, l.meta())
	if err != nil {
		return nil, err
	}
	for i := range evs {
		evs[i].Seq = uint64(len(l.events) + 1)
		l.m = domain.ApplyMemory(l.m, evs[i])
		l.events = append(l.events, evs[i])
	}
	return evs, nil
}

// must is try that fails the test on an error.
func (l *ledger) must(cmd domain.Command) *ledger {
	l.t.Helper()
	_, err := l.try(cmd)
	require.NoError(l.t, err, "command %T", cmd)
	return l
}

// baseCreate is a valid create command; status is "" (the default, active) or a status.
func baseCreate(status domain.Status) domain.CreateMemory {
	return domain.CreateMemory{
		MemoryType: "preference",
		Content:    "prefers tabs over spaces",
		Project:    "atocore",
		Status:     string(status),
		DomainTags: []string{"editor"},
	}
}

// ledgerIn returns a ledger whose memory is in status s, reached by folding real events.
func ledgerIn(t *testing.T, s domain.Status) *ledger {
	t.Helper()
	l := newLedger(t)
	switch s {
	case candidate:
		l.must(baseCreate(candidate))
	case active:
		l.must(baseCreate(""))
	case superseded:
		l.must(baseCreate(active)).must(domain.SupersedeMemory{SupersededBy: otherID})
	case invalid:
		l.must(baseCreate(candidate)).must(domain.RejectMemory{})
	default:
		t.Fatalf("no recipe for status %q", s)
	}
	require.Equal(t, s, l.m.Status)
	return l
}

// memoryIn is the state of a memory in status s.
func memoryIn(t *testing.T, s domain.Status) domain.Memory {
	t.Helper()
	return ledgerIn(t, s).m
}

// requireConflictNaming checks err is a state-machine refusal that names the current status.
func requireConflictNaming(t *testing.T, err error, current domain.Status) {
	t.Helper()
	require.ErrorIs(t, err, domain.ErrConflict)
	require.NotErrorIs(t, err, domain.ErrInvalid)
	require.NotErrorIs(t, err, domain.ErrNotFound)
	require.Contains(t, err.Error(), memID)
	require.Contains(t, err.Error(), "memory "+memID+" is "+string(current)+":")
	var te *domain.TransitionError
	require.ErrorAs(t, err, &te)
	require.Equal(t, current, te.Current)
	require.Equal(t, memID, te.ID)
}

// ---------------------------------------------------------------------------------------------
// 1. The state machine, command by command and status by status.
// ---------------------------------------------------------------------------------------------

func TestStatusesAndActionsAreComplete(t *testing.T) {
	require.ElementsMatch(t, allStatuses, domain.Statuses)
	require.Len(t, domain.Actions, 10) // the eight mutations, an importer's reconciliation and a revert
	for _, a := range domain.Actions {
		require.NotEmpty(t, a.Verb(), "action %s has no verb", a)
	}
	require.Equal(t, "promote", domain.ActionPromoted.Verb())
	require.Equal(t, "supersede", domain.ActionSuperseded.Verb())
	require.Equal(t, "expire", domain.ActionExpired.Verb())
	require.Equal(t, "revert", domain.ActionReverted.Verb())
}

// commandCase is one mutation: the statuses it is allowed from (and where each leads), the
// event it records and the audit action of that event. Statuses missing from allowed refuse it.
type commandCase struct {
	name string
	// setup runs before cmd, from every status; a refused step is ignored.
	setup   []domain.Command
	cmd     domain.Command
	allowed map[domain.Status]domain.Status
	event   string
	action  domain.Action
	// verb and allowedFrom are what the conflict message says the command needs.
	verb        string
	allowedFrom string
}

var commandCases = []commandCase{
	{
		name:    "update",
		cmd:     domain.UpdateMemory{Content: ptr("prefers spaces after all")},
		allowed: map[domain.Status]domain.Status{candidate: candidate, active: active},
		event:   domain.EventMemoryUpdated, action: domain.ActionUpdated,
		verb: "update", allowedFrom: "candidate or active",
	},
	{
		name:    "promote",
		cmd:     domain.PromoteMemory{},
		allowed: map[domain.Status]domain.Status{candidate: active},
		event:   domain.EventMemoryPromoted, action: domain.ActionPromoted,
		verb: "promote", allowedFrom: "candidate",
	},
	{
		name:    "reject",
		cmd:     domain.RejectMemory{},
		allowed: map[domain.Status]domain.Status{candidate: invalid},
		event:   domain.EventMemoryRejected, action: domain.ActionRejected,
		verb: "reject", allowedFrom: "candidate",
	},
	{
		name:    "invalidate",
		cmd:     domain.InvalidateMemory{},
		allowed: map[domain.Status]domain.Status{active: invalid},
		event:   domain.EventMemoryInvalidated, action: domain.ActionInvalidated,
		verb: "invalidate", allowedFrom: "active",
	},
	{
		name:    "supersede",
		cmd:     domain.SupersedeMemory{SupersededBy: otherID},
		allowed: map[domain.Status]domain.Status{active: superseded},
		event:   domain.EventMemorySuperseded, action: domain.ActionSuperseded,
		verb: "supersede", allowedFrom: "active",
	},
	{
		name:    "reinforce",
		cmd:     domain.ReinforceMemory{},
		allowed: map[domain.Status]domain.Status{candidate: candidate, active: active},
		event:   domain.EventMemoryReinforced, action: domain.ActionReinforced,
		verb: "reinforce", allowedFrom: "candidate or active",
	},
	{
		// Lowest thresholds, after one reinforcement where that is allowed: the state machine
		// alone decides here; see TestAutoPromote*.
		name:    "auto-promote",
		setup:   []domain.Command{domain.ReinforceMemory{}},
		cmd:     domain.AutoPromoteMemory{MinReferenceCount: 1, MinConfidence: 0},
		allowed: map[domain.Status]domain.Status{candidate: active},
		event:   domain.EventMemoryPromoted, action: domain.ActionPromoted,
		verb: "promote", allowedFrom: "candidate",
	},
	{
		// Far in the future: every memory here is older than the maximum age.
		name:    "expire",
		cmd:     domain.ExpireMemory{Now: t0.AddDate(1, 0, 0), MaxAge: domain.DefaultCandidateMaxAge},
		allowed: map[domain.Status]domain.Status{candidate: invalid},
		event:   domain.EventMemoryExpired, action: domain.ActionExpired,
		verb: "expire", allowedFrom: "candidate",
	},
}

func TestStateMachineTable(t *testing.T) {
	for _, tc := range commandCases {
		for _, from := range allStatuses {
			t.Run(tc.name+"/from_"+string(from), func(t *testing.T) {
				l := ledgerIn(t, from)
				for _, c := range tc.setup {
					l.try(c) // refused from the statuses it is not allowed from; that is fine
				}
				before := l.m
				evs, err := l.try(tc.cmd)

				to, ok := tc.allowed[from]
				if !ok {
					requireConflictNaming(t, err, from)
					require.Contains(t, err.Error(),
						fmt.Sprintf("%s is allowed only from %s", tc.verb, tc.allowedFrom))
					var te *domain.TransitionError
					require.ErrorAs(t, err, &te)
					require.Equal(t, tc.action, te.Action)
					require.Empty(t, evs)
					require.Equal(t, before, l.m, "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				require.Len(t, evs, 1)
				ev := evs[0]
				require.Equal(t, tc.event, ev.Type)
				require.Equal(t, tc.event, ev.Data.EventType())
				require.Equal(t, "memory", ev.Kind())
				require.Equal(t, memID, ev.AggregateID)
				require.Equal(t, tc.action, domain.AuditAction(before, ev))
				require.Equal(t, to, l.m.Status)
				require.Equal(t, before.Seq+1, l.m.Seq)
				require.Equal(t, ev.Time, l.m.UpdatedAt)
				require.Equal(t, before.CreatedAt, l.m.CreatedAt)
			})
		}
	}
}

// Creating a memory that already exists is refused whatever its status.
//
// Like every refused transition, the conflict names the current status.
func TestCreateOnExistingMemoryIsConflict(t *testing.T) {
	for _, from := range allStatuses {
		t.Run("from_"+string(from), func(t *testing.T) {
			l := ledgerIn(t, from)
			before := l.m
			for _, status := range []domain.Status{"", candidate, active} {
				evs, err := l.try(baseCreate(status))
				require.ErrorIs(t, err, domain.ErrConflict)
				require.NotErrorIs(t, err, domain.ErrInvalid)
				require.Contains(t, err.Error(), memID)
				require.Contains(t, err.Error(), "already exists")
				require.Contains(t, err.Error(), "it is "+string(from))
				require.Empty(t, evs)
			}
			require.Equal(t, before, l.m)
		})
	}
}

func TestCreateLeadsToCandidateOrActive(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   domain.Status
	}{
		{"", active}, // a manual create defaults to active
		{"active", active},
		{"candidate", candidate},
	} {
		t.Run("status_"+tc.status, func(t *testing.T) {
			l := newLedger(t)
			c := baseCreate("")
			c.Status = tc.status
			evs, err := l.try(c)
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, domain.EventMemoryCreated, evs[0].Type)
			require.Equal(t, domain.ActionCreated, domain.AuditAction(domain.Memory{}, evs[0]))
			require.Equal(t, tc.want, l.m.Status)
		})
	}
}

// A status change through an update follows the same table and is audited with the verb of
// the transition it takes.
func TestUpdateStatusChange(t *testing.T) {
	type outcome struct {
		action domain.Action // "" with noop false: refused
		noop   bool          // same status: no event, no error
	}
	refused := outcome{}
	same := outcome{noop: true}
	table := map[domain.Status]map[domain.Status]outcome{
		candidate: {
			candidate:  same,
			active:     {action: domain.ActionPromoted},
			superseded: refused,
			invalid:    {action: domain.ActionRejected},
		},
		active: {
			candidate:  refused,
			active:     same,
			superseded: {action: domain.ActionSuperseded},
			invalid:    {action: domain.ActionInvalidated},
		},
		// An update is refused from the terminal statuses, even to the same status.
		superseded: {candidate: refused, active: refused, superseded: refused, invalid: refused},
		invalid:    {candidate: refused, active: refused, superseded: refused, invalid: refused},
	}
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			want := table[from][to]
			t.Run(string(from)+"_to_"+string(to), func(t *testing.T) {
				l := ledgerIn(t, from)
				before := l.m
				evs, err := l.try(domain.UpdateMemory{Status: ptr(string(to))})
				switch {
				case want.noop:
					require.NoError(t, err)
					require.Empty(t, evs)
					require.Equal(t, before, l.m)
				case want.action == "":
					requireConflictNaming(t, err, from)
					require.Empty(t, evs)
					require.Equal(t, before, l.m)
					if from == superseded || from == invalid {
						require.Contains(t, err.Error(), "update is allowed only from candidate or active")
					} else {
						require.Contains(t, err.Error(),
							fmt.Sprintf("no transition leads from %s to %s", from, to))
						var te *domain.TransitionError
						require.ErrorAs(t, err, &te)
						require.Equal(t, to, te.Target)
					}
				default:
					require.NoError(t, err)
					require.Len(t, evs, 1)
					require.Equal(t, domain.EventMemoryUpdated, evs[0].Type)
					u, ok := evs[0].Data.(domain.MemoryUpdated)
					require.True(t, ok)
					require.Equal(t, []string{"status"}, u.Changed)
					require.Equal(t, to, u.Status)
					require.Equal(t, want.action, domain.AuditAction(before, evs[0]))
					require.Equal(t, to, l.m.Status)
				}
			})
		}
	}
}

// A status change combined with other fields is still audited with the transition's verb,
// and the other fields change too.
func TestUpdateStatusWithOtherFields(t *testing.T) {
	l := ledgerIn(t, candidate)
	before := l.m
	evs, err := l.try(domain.UpdateMemory{Content: ptr("uses tabs"), Status: ptr("active")})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, domain.ActionPromoted, domain.AuditAction(before, evs[0]))
	require.Equal(t, active, l.m.Status)
	require.Equal(t, "uses tabs", l.m.Content)

	// Without a status the same kind of event is a plain update.
	before = l.m
	evs, err = l.try(domain.UpdateMemory{Content: ptr("uses tabs, width 4")})
	require.NoError(t, err)
	require.Equal(t, domain.ActionUpdated, domain.AuditAction(before, evs[0]))
}

// Transition and StatusChange, the exported faces of the table, agree with it.
func TestTransitionAndStatusChangeFunctions(t *testing.T) {
	for _, tc := range commandCases {
		if tc.name == "auto-promote" {
			continue // same action as promote
		}
		for _, from := range allStatuses {
			got, err := domain.Transition(memID, from, tc.action)
			if to, ok := tc.allowed[from]; ok {
				require.NoError(t, err, "%s from %s", tc.action, from)
				require.Equal(t, to, got, "%s from %s", tc.action, from)
			} else {
				requireConflictNaming(t, err, from)
				require.Empty(t, got)
			}
		}
	}
	// Creation is not a transition of an existing memory.
	for _, from := range allStatuses {
		_, err := domain.Transition(memID, from, domain.ActionCreated)
		require.ErrorIs(t, err, domain.ErrConflict)
	}

	for from, tos := range map[domain.Status]map[domain.Status]domain.Action{
		candidate: {active: domain.ActionPromoted, invalid: domain.ActionRejected},
		active:    {superseded: domain.ActionSuperseded, invalid: domain.ActionInvalidated},
	} {
		for _, to := range allStatuses {
			a, err := domain.StatusChange(memID, from, to)
			if want, ok := tos[to]; ok {
				require.NoError(t, err)
				require.Equal(t, want, a)
			} else {
				requireConflictNaming(t, err, from)
			}
		}
	}
	for _, from := range []domain.Status{superseded, invalid} {
		for _, to := range allStatuses {
			_, err := domain.StatusChange(memID, from, to)
			requireConflictNaming(t, err, from)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// 2. Not found.
// ---------------------------------------------------------------------------------------------

func TestNonCreateCommandOnMissingMemoryIsNotFound(t *testing.T) {
	cmds := map[string]domain.Command{
		"empty update":   domain.UpdateMemory{},
		"status update":  domain.UpdateMemory{Status: ptr("active")},
		"invalid update": domain.UpdateMemory{Content: ptr("  ")},
	}
	for _, tc := range commandCases {
		cmds[tc.name] = tc.cmd
	}
	for name, cmd := range cmds {
		t.Run(name, func(t *testing.T) {
			evs, err := domain.DefaultRules().Decide(domain.Memory{}, memID, cmd,
				domain.Meta{Actor: "api-http", Time: t0})
			require.ErrorIs(t, err, domain.ErrNotFound)
			require.NotErrorIs(t, err, domain.ErrConflict)
			require.NotErrorIs(t, err, domain.ErrInvalid)
			require.Contains(t, err.Error(), memID)
			require.Empty(t, evs)
		})
	}
}

// ---------------------------------------------------------------------------------------------
// 5. Fold property: Decide then Apply over a long, deterministic, pseudo-random sequence of
// commands never leaves the state machine.
// ---------------------------------------------------------------------------------------------

type edge struct{ from, to domain.Status }

// reachableEdges is every status change a single event may make; "" is "does not exist yet".
var reachableEdges = map[edge]bool{
	{"", candidate}:          true,
	{"", active}:             true,
	{candidate, candidate}:   true, // update, reinforce
	{candidate, active}:      true, // promote, auto-promote, update
	{candidate, invalid}:     true, // reject, expire, update
	{active, active}:         true, // update, reinforce
	{active, superseded}:     true, // supersede, update
	{active, invalid}:        true, // invalidate, update
	{superseded, superseded}: false,
	{invalid, invalid}:       false,
}

// statusAfter is where an audit action leads from a status, independent of the package's table.
func statusAfter(from domain.Status, a domain.Action) domain.Status {
	switch a {
	case domain.ActionPromoted:
		return active
	case domain.ActionRejected, domain.ActionInvalidated, domain.ActionExpired:
		return invalid
	case domain.ActionSuperseded:
		return superseded
	}
	return from
}

func randomCommand(rng *rand.Rand, now time.Time) domain.Command {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	statuses := []string{"candidate", "active", "superseded", "invalid", "bogus", ""}
	switch rng.IntN(11) {
	case 0:
		c := baseCreate("")
		c.Status = pick(statuses...)
		if rng.IntN(4) == 0 {
			c.Confidence = ptr(rng.Float64())
		}
		return c
	case 1:
		u := domain.UpdateMemory{Status: ptr(pick(statuses...))}
		if rng.IntN(2) == 0 {
			u.Content = ptr(pick("prefers tabs", "prefers spaces", "  ", "prefers tabs over spaces"))
		}
		return u
	case 2:
		return domain.UpdateMemory{
			Confidence: ptr(float64(rng.IntN(12)) / 10), // 1.1 is out of range
			DomainTags: ptr([]string{pick("a", "B", " b "), pick("c", "", "a")}),
		}
	case 3:
		return domain.PromoteMemory{}
	case 4:
		return domain.RejectMemory{}
	case 5:
		return domain.InvalidateMemory{}
	case 6:
		return domain.SupersedeMemory{SupersededBy: pick(otherID, "", memID)}
	case 7, 8:
		deltas := []float64{0, 0.05, 0.2, 0.5, 1, -0.1, 1.5}
		return domain.ReinforceMemory{Delta: deltas[rng.IntN(len(deltas))]}
	case 9:
		return domain.AutoPromoteMemory{
			MinReferenceCount: domain.DefaultAutoPromoteRefs,
			MinConfidence:     domain.DefaultAutoPromoteConf,
		}
	default:
		return domain.ExpireMemory{
			Now:    now.Add(time.Duration(rng.IntN(30*24)) * time.Hour),
			MaxAge: domain.DefaultCandidateMaxAge,
		}
	}
}

func TestFoldNeverLeavesStateMachine(t *testing.T) {
	const runs, steps = 300, 40
	rng := rand.New(rand.NewPCG(20260416, 2154))
	seen := map[edge]int{}
	refusedFromTerminal := 0

	for run := 0; run < runs; run++ {
		l := newLedger(t)
		for step := 0; step < steps; step++ {
			before := l.m
			cmd := randomCommand(rng, l.now)
			evs, err := l.try(cmd)
			where := fmt.Sprintf("run %d step %d: %T %+v from %q", run, step, cmd, cmd, before.Status)

			if err != nil {
				require.Empty(t, evs, where)
				require.Equal(t, before, l.m, where)
				switch {
				case !before.Exists():
					if _, isCreate := cmd.(domain.CreateMemory); isCreate {
						require.ErrorIs(t, err, domain.ErrInvalid, where)
					} else {
						require.ErrorIs(t, err, domain.ErrNotFound, where)
					}
				default:
					require.NotErrorIs(t, err, domain.ErrNotFound, where)
					require.True(t, errorsIsAny(err, domain.ErrConflict, domain.ErrInvalid), where+": %v", err)
				}
				if before.Status == superseded || before.Status == invalid {
					refusedFromTerminal++
				}
				continue
			}

			require.LessOrEqual(t, len(evs), 1, where)
			if len(evs) == 0 {
				require.Equal(t, before, l.m, where)
				continue
			}
			ev := evs[0]
			e := edge{before.Status, l.m.Status}
			require.True(t, reachableEdges[e], "%s: %q -> %q is not in the table", where, e.from, e.to)
			seen[e]++

			action := domain.AuditAction(before, ev)
			require.NotEmpty(t, action, where)
			if action != domain.ActionCreated {
				require.Equal(t, statusAfter(before.Status, action), l.m.Status, where)
				require.Equal(t, before.CreatedAt, l.m.CreatedAt, where)
			}
			require.Equal(t, memID, l.m.ID, where)
			require.Equal(t, before.Seq+1, l.m.Seq, where)
			require.Equal(t, ev.Time, l.m.UpdatedAt, where)
			require.GreaterOrEqual(t, l.m.ReferenceCount, before.ReferenceCount, where)
			require.GreaterOrEqual(t, l.m.Confidence, 0.0, where)
			require.LessOrEqual(t, l.m.Confidence, 1.0, where)
		}

		// Replaying the recorded events from nothing gives the same state: the fold is pure.
		var replay domain.Memory
		for _, ev := range l.events {
			replay = domain.ApplyMemory(replay, ev)
		}
		require.Equal(t, l.m, replay, "run %d", run)
	}

	// The walk must have exercised every edge of the table, or it proves little.
	for e, ok := range reachableEdges {
		if ok {
			require.Positive(t, seen[e], "edge %q -> %q never taken", e.from, e.to)
		}
	}
	require.Positive(t, refusedFromTerminal)
}

func errorsIsAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
