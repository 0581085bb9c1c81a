package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// State entry statuses.
const (
	StateActive  = "active"
	StateInvalid = "invalid"
)

// System categories of the system project, derived from the log and never written directly.
const (
	CategoryAlert  = "alert"
	CategoryStatus = "status"
)

// Bounds of a state entry.
const (
	maxStateKey    = 200
	maxStateValue  = 20000
	maxStateSource = 500
)

// StateEntry is one entry of a project's state, the most trusted layer.
type StateEntry struct {
	Project    string    `json:"project"`
	Category   string    `json:"category"`
	Key        string    `json:"key"`
	Value      string    `json:"value"`
	Source     string    `json:"source"`
	Confidence float64   `json:"confidence"`
	Status     string    `json:"status"`
	UpdatedAt  time.Time `json:"updated_at"`
	Seq        uint64    `json:"seq"`
}

// StateKey names an entry within its project.
type StateKey struct{ Category, Key string }

// ProjectState is a project's entries: the state state commands are decided on.
type ProjectState map[StateKey]StateEntry

// StateSet records an upsert of an entry; the aggregate id is the project.
type StateSet struct {
	Category   string  `json:"category"`
	Key        string  `json:"key"`
	Value      string  `json:"value"`
	Source     string  `json:"source"`
	Confidence float64 `json:"confidence"`
}

// StateInvalidated records that an entry no longer holds; its history stays.
type StateInvalidated struct {
	Category string `json:"category"`
	Key      string `json:"key"`
}

// State event type names.
const (
	EventStateSet         = "state.set"
	EventStateInvalidated = "state.invalidated"
)

// EventType implements Payload.
func (StateSet) EventType() string { return EventStateSet }

// EventType implements Payload.
func (StateInvalidated) EventType() string { return EventStateInvalidated }

// SetState upserts an entry of project Project (a canonical id). Confidence nil means 1.
type SetState struct {
	Project, Category, Key, Value, Source string
	Confidence                            *float64
}

// InvalidateState invalidates an entry.
type InvalidateState struct {
	Project, Category, Key string
}

var categoryPattern = regexp.MustCompile(`^[a-z0-9]+([_-][a-z0-9]+)*$`)

// CheckStateKey checks the project, category and key of an entry a client writes.
func CheckStateKey(project, category, key string) error {
	if err := CheckProjectID("project", project); err != nil {
		return err
	}
	if len(category) > 64 || !categoryPattern.MatchString(category) {
		return Invalid("category", "%q must be a lowercase word like decision or next_step", category)
	}
	if project == SystemProject && (category == CategoryAlert || category == CategoryStatus) {
		return Invalid("category", "%s/%s entries are derived from the log and cannot be written", project, category)
	}
	if key == "" || strings.TrimSpace(key) != key {
		return Invalid("key", "must not be empty nor start or end with spaces")
	}
	if utf8.RuneCountInString(key) > maxStateKey || strings.ContainsRune(key, 0) {
		return Invalid("key", "must be at most %d characters, without NUL", maxStateKey)
	}
	return nil
}

// DecideSetState checks c against the project's entries; no event when nothing changes.
func DecideSetState(st ProjectState, c SetState, meta Meta) ([]Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return nil, err
	}
	if err := CheckStateKey(c.Project, c.Category, c.Key); err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(c.Value); n > maxStateValue {
		return nil, Invalid("value", "is %d characters long; the maximum is %d", n, maxStateValue)
	}
	if strings.TrimSpace(c.Value) == "" {
		return nil, Invalid("value", "must not be empty")
	}
	if n := utf8.RuneCountInString(c.Source); n > maxStateSource {
		return nil, Invalid("source", "is %d characters long; the maximum is %d", n, maxStateSource)
	}
	set := StateSet{Category: c.Category, Key: c.Key, Value: c.Value, Source: c.Source, Confidence: DefaultConfidence}
	if c.Confidence != nil {
		if err := CheckConfidence(*c.Confidence); err != nil {
			return nil, err
		}
		set.Confidence = *c.Confidence
	}
	if e, ok := st[StateKey{c.Category, c.Key}]; ok && e.Status == StateActive &&
		e.Value == set.Value && e.Source == set.Source && e.Confidence == set.Confidence {
		return nil, nil
	}
	return []Event{NewEvent(c.Project, meta, set)}, nil
}

// DecideInvalidateState checks c against the project's entries.
func DecideInvalidateState(st ProjectState, c InvalidateState, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if err := CheckStateKey(c.Project, c.Category, c.Key); err != nil {
		return Event{}, err
	}
	e, ok := st[StateKey{c.Category, c.Key}]
	if !ok {
		return Event{}, fmt.Errorf("state %s/%s/%s: %w", c.Project, c.Category, c.Key, ErrNotFound)
	}
	if e.Status != StateActive {
		return Event{}, fmt.Errorf("state %s/%s/%s is already %s: %w", c.Project, c.Category, c.Key, e.Status, ErrConflict)
	}
	return NewEvent(c.Project, meta, StateInvalidated{Category: c.Category, Key: c.Key}), nil
}

// ApplyState folds a state event into the project's entries.
func ApplyState(st ProjectState, ev Event) {
	switch p := ev.Data.(type) {
	case StateSet:
		st[StateKey{p.Category, p.Key}] = StateEntry{Project: ev.AggregateID, Category: p.Category, Key: p.Key,
			Value: p.Value, Source: p.Source, Confidence: p.Confidence, Status: StateActive, UpdatedAt: ev.Time, Seq: ev.Seq}
	case StateInvalidated:
		k := StateKey{p.Category, p.Key}
		if e, ok := st[k]; ok {
			e.Status, e.UpdatedAt, e.Seq = StateInvalid, ev.Time, ev.Seq
			st[k] = e
		}
	}
}
