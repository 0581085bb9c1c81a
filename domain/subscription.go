package domain

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// KindSubscription is the kind of the subscriptions' events: ledger.subscription.<id>.
const KindSubscription = "subscription"

// Limits of a subscription.
const (
	MaxSubscriptionSubjects = 16
	MaxSubscriptionTypes    = 64
	MaxSubscriptionURL      = 2048
	maxSubscriptionDesc     = 500
	// LogSubjectRoot is the first token of every subject memledger publishes.
	LogSubjectRoot = "ledger"
)

// SubscriptionStatus is where a subscription stands.
type SubscriptionStatus string

// The statuses of a subscription.
const (
	StatusSubscriptionActive  SubscriptionStatus = "active"
	StatusSubscriptionPaused  SubscriptionStatus = "paused"
	StatusSubscriptionRemoved SubscriptionStatus = "removed"
)

// Kinds of Position.
const (
	PositionBeginning = "beginning"
	PositionNow       = "now"
	PositionSeq       = "seq"
	PositionTime      = "time"
)

// Position is where a subscription starts reading the log: from its beginning, from now (the
// events after the one that records the choice), from a sequence, or from the first event at
// or after a time.
type Position struct {
	Kind string     `json:"kind"`
	Seq  uint64     `json:"seq,omitempty"`
	Time *time.Time `json:"time,omitempty"`
}

// ParsePosition reads a position as given to the API: "beginning", "now", a sequence (1 or
// more) or an RFC 3339 time.
func ParsePosition(field, s string) (Position, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case PositionBeginning:
		return Position{Kind: PositionBeginning}, nil
	case PositionNow:
		return Position{Kind: PositionNow}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return Position{}, Invalid(field, "sequences start at 1; use \"beginning\" for the whole log")
		}
		return Position{Kind: PositionSeq, Seq: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1 || t.Year() > 9999 {
			return Position{}, Invalid(field, "time %q is outside years 1 to 9999", s)
		}
		t = t.UTC()
		return Position{Kind: PositionTime, Time: &t}, nil
	}
	return Position{}, Invalid(field, "%q is not a position: use \"beginning\", \"now\", a sequence (like 42) or an RFC 3339 time (like 2026-12-01T00:00:00Z)", s)
}

// String is the position as ParsePosition reads it.
func (p Position) String() string {
	switch p.Kind {
	case PositionSeq:
		return strconv.FormatUint(p.Seq, 10)
	case PositionTime:
		if p.Time != nil {
			return p.Time.UTC().Format(time.RFC3339Nano)
		}
	}
	return p.Kind
}

// Subscription is a webhook subscription: the folded state of its events.
type Subscription struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Description string   `json:"description"`
	Subjects    []string `json:"subjects"`
	Types       []string `json:"types"`
	// From is the position asked for at registration, or by the last reset.
	From   Position           `json:"from"`
	Status SubscriptionStatus `json:"status"`
	// SealedSecret is the secret sealed with the key KeyID names; it is never shown.
	SealedSecret string `json:"-"`
	KeyID        string `json:"key_id"`
	// Generation is the log position of the event that last set the subscription's start (its
	// registration or last reset); its durable consumer is named after it, so a reset is a
	// new consumer, made once, wherever memledger runs.
	Generation uint64 `json:"generation"`
	// StartSeq or StartTime is where the consumer of this generation starts: From resolved.
	StartSeq  uint64     `json:"start_seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Seq is the log position of the subscription's last event.
	Seq uint64 `json:"seq"`
}

// SubscriptionRegistered records a new subscription. The secret is sealed (see the
// subscriptions package): the log never holds it in clear.
type SubscriptionRegistered struct {
	URL          string   `json:"url"`
	Description  string   `json:"description,omitempty"`
	Subjects     []string `json:"subjects"`
	Types        []string `json:"types,omitempty"`
	From         Position `json:"from"`
	SealedSecret string   `json:"sealed_secret"`
	KeyID        string   `json:"key_id"`
}

// SubscriptionPaused records that a subscription stops delivering, keeping its position.
type SubscriptionPaused struct{}

// SubscriptionResumed records that a paused subscription delivers again from its position.
type SubscriptionResumed struct{}

// SubscriptionReset records that a subscription starts again from another position.
type SubscriptionReset struct {
	From Position `json:"from"`
}

// SubscriptionRemoved records that a subscription is gone; its position goes with it.
type SubscriptionRemoved struct{}

// Subscription event type names.
const (
	EventSubscriptionRegistered = "subscription.registered"
	EventSubscriptionPaused     = "subscription.paused"
	EventSubscriptionResumed    = "subscription.resumed"
	EventSubscriptionReset      = "subscription.reset"
	EventSubscriptionRemoved    = "subscription.removed"
)

// EventType implements Payload.
func (SubscriptionRegistered) EventType() string { return EventSubscriptionRegistered }

// EventType implements Payload.
func (SubscriptionPaused) EventType() string { return EventSubscriptionPaused }

// EventType implements Payload.
func (SubscriptionResumed) EventType() string { return EventSubscriptionResumed }

// EventType implements Payload.
func (SubscriptionReset) EventType() string { return EventSubscriptionReset }

// EventType implements Payload.
func (SubscriptionRemoved) EventType() string { return EventSubscriptionRemoved }

// RegisterSubscription asks for a new subscription.
type RegisterSubscription struct {
	ID          string
	URL         string
	Description string
	Subjects    []string
	Types       []string
	From        Position
	// SealedSecret and KeyID: the secret, sealed by the caller.
	SealedSecret, KeyID string
	// KnownType reports whether an event type is one the log stores.
	KnownType func(string) bool
	// LogEnd is the log's last position: a From sequence may be at most one past it.
	LogEnd uint64
}

// SubscriptionAction is a pause, resume or remove of a subscription.
type SubscriptionAction string

// The subscription actions.
const (
	ActionPause  SubscriptionAction = "pause"
	ActionResume SubscriptionAction = "resume"
	ActionRemove SubscriptionAction = "remove"
)

// ResetSubscription asks for a subscription to start again from From.
type ResetSubscription struct {
	From Position
	// LogEnd is the log's last position: a From sequence may be at most one past it.
	LogEnd uint64
}

var eventTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)

// CheckSubject checks a subject filter: NATS syntax (tokens separated by dots, "*" for one
// token, ">" for the rest, as a last token), within what memledger publishes (ledger.>).
func CheckSubject(field, s string) error {
	tokens := strings.Split(s, ".")
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return Invalid(field, "subject %q must be non-empty, without spaces or control characters", s)
	}
	for i, tok := range tokens {
		switch {
		case tok == "":
			return Invalid(field, "subject %q has an empty token", s)
		case tok == ">" && i != len(tokens)-1:
			return Invalid(field, "subject %q: \">\" may only be the last token", s)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return Invalid(field, "subject %q: \"*\" and \">\" must be whole tokens", s)
		}
	}
	if tokens[0] != LogSubjectRoot {
		return Invalid(field, "subject %q is not within what memledger publishes: start it with ledger. (like ledger.memory.>)", s)
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both filters a and b.
func subjectsOverlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(ta) && i == len(tb):
			return true
		case i == len(ta) || i == len(tb):
			return false
		case ta[i] == ">" || tb[i] == ">":
			return true
		case ta[i] == "*" || tb[i] == "*" || ta[i] == tb[i]:
			continue
		}
		return false
	}
}

func checkPosition(field string, p Position, logEnd uint64) error {
	switch p.Kind {
	case PositionBeginning, PositionNow:
	case PositionSeq:
		if p.Seq == 0 {
			return Invalid(field, "sequences start at 1")
		}
		if p.Seq > logEnd+1 {
			return Invalid(field, "sequence %d is beyond the log's end (its last event is at %d)", p.Seq, logEnd)
		}
	case PositionTime:
		if p.Time == nil {
			return Invalid(field, "a time position needs its time")
		}
	default:
		return Invalid(field, "unknown position kind %q", p.Kind)
	}
	return nil
}

// DecideRegisterSubscription checks c against the subscription's state (its events so far:
// none for a new id) and returns the event that registers it.
func DecideRegisterSubscription(s Subscription, c RegisterSubscription, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if s.ID != "" {
		return Event{}, fmt.Errorf("%w: subscription %s exists", ErrConflict, c.ID)
	}
	if c.ID == "" || strings.ContainsAny(c.ID, ".*> ") {
		return Event{}, Invalid("id", "%q is not a subscription id", c.ID)
	}
	u, err := url.Parse(c.URL)
	if len(c.URL) > MaxSubscriptionURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Event{}, Invalid("url", "%q is not an http(s) URL of at most %d characters", c.URL, MaxSubscriptionURL)
	}
	if u.User != nil {
		return Event{}, Invalid("url", "must not hold credentials (they would be stored in the log); the receiver checks the signature instead")
	}
	if len([]rune(c.Description)) > maxSubscriptionDesc {
		return Event{}, Invalid("description", "is longer than %d characters", maxSubscriptionDesc)
	}
	if len(c.Types) > MaxSubscriptionTypes {
		return Event{}, Invalid("types", "holds %d types; the maximum is %d", len(c.Types), MaxSubscriptionTypes)
	}
	types := []string{}
	for _, t := range c.Types {
		t = strings.TrimSpace(t)
		if !eventTypePattern.MatchString(t) {
			return Event{}, Invalid("types", "%q is not an event type (like memory.promoted)", t)
		}
		if c.KnownType != nil && !c.KnownType(t) {
			return Event{}, Invalid("types", "%q is not a type of event memledger records", t)
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if len(c.Subjects) > MaxSubscriptionSubjects {
		return Event{}, Invalid("subjects", "holds %d subjects; the maximum is %d", len(c.Subjects), MaxSubscriptionSubjects)
	}
	subjects := []string{}
	for _, sub := range c.Subjects {
		sub = strings.TrimSpace(sub)
		if err := CheckSubject("subjects", sub); err != nil {
			return Event{}, err
		}
		for _, other := range subjects {
			if subjectsOverlap(sub, other) {
				return Event{}, Invalid("subjects", "%q and %q overlap; give subjects that do not match the same events", other, sub)
			}
		}
		subjects = append(subjects, sub)
	}
	if len(subjects) == 0 {
		// Only the kinds of the types asked for, or everything.
		for _, t := range types {
			kind, _, _ := strings.Cut(t, ".")
			if sub := LogSubjectRoot + "." + kind + ".>"; !slices.Contains(subjects, sub) {
				subjects = append(subjects, sub)
			}
		}
		if len(subjects) == 0 {
			subjects = []string{LogSubjectRoot + ".>"}
		}
	}
	if err := checkPosition("from", c.From, c.LogEnd); err != nil {
		return Event{}, err
	}
	if c.SealedSecret == "" || c.KeyID == "" {
		return Event{}, Invalid("secret", "is required")
	}
	if len(types) == 0 {
		types = nil
	}
	return NewEvent(c.ID, meta, SubscriptionRegistered{URL: c.URL, Description: c.Description, Subjects: subjects,
		Types: types, From: c.From, SealedSecret: c.SealedSecret, KeyID: c.KeyID}), nil
}

// DecideSubscriptionAction checks a pause, resume or remove against s.
func DecideSubscriptionAction(s Subscription, a SubscriptionAction, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if s.ID == "" || s.Status == StatusSubscriptionRemoved {
		return Event{}, fmt.Errorf("subscription: %w", ErrNotFound)
	}
	var p Payload
	switch a {
	case ActionPause:
		if s.Status != StatusSubscriptionActive {
			return Event{}, fmt.Errorf("%w: subscription %s is %s, not active", ErrConflict, s.ID, s.Status)
		}
		p = SubscriptionPaused{}
	case ActionResume:
		if s.Status != StatusSubscriptionPaused {
			return Event{}, fmt.Errorf("%w: subscription %s is %s, not paused", ErrConflict, s.ID, s.Status)
		}
		p = SubscriptionResumed{}
	case ActionRemove:
		p = SubscriptionRemoved{}
	default:
		return Event{}, Invalid("action", "unknown subscription action %q", a)
	}
	return NewEvent(s.ID, meta, p), nil
}

// DecideResetSubscription checks a reset against s; a paused subscription stays paused.
func DecideResetSubscription(s Subscription, c ResetSubscription, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if s.ID == "" || s.Status == StatusSubscriptionRemoved {
		return Event{}, fmt.Errorf("subscription: %w", ErrNotFound)
	}
	if err := checkPosition("from", c.From, c.LogEnd); err != nil {
		return Event{}, err
	}
	return NewEvent(s.ID, meta, SubscriptionReset{From: c.From}), nil
}

// ApplySubscription folds one event into a subscription's state.
func ApplySubscription(s Subscription, ev Event) Subscription {
	switch p := ev.Data.(type) {
	case SubscriptionRegistered:
		s = Subscription{ID: ev.AggregateID, URL: p.URL, Description: p.Description,
			Subjects: slices.Clone(p.Subjects), Types: slices.Clone(p.Types), Status: StatusSubscriptionActive,
			SealedSecret: p.SealedSecret, KeyID: p.KeyID, CreatedBy: ev.Actor, CreatedAt: ev.Time}
		if s.Types == nil {
			s.Types = []string{}
		}
		s = s.startAt(p.From, ev.Seq)
	case SubscriptionPaused:
		s.Status = StatusSubscriptionPaused
	case SubscriptionResumed:
		s.Status = StatusSubscriptionActive
	case SubscriptionReset:
		s = s.startAt(p.From, ev.Seq)
	case SubscriptionRemoved:
		s.Status = StatusSubscriptionRemoved
	default:
		return s
	}
	s.UpdatedAt, s.Seq = ev.Time, ev.Seq
	return s
}

// startAt sets the subscription's start, resolved at the event at seq.
func (s Subscription) startAt(from Position, seq uint64) Subscription {
	s.From, s.Generation, s.StartSeq, s.StartTime = from, seq, 0, nil
	switch from.Kind {
	case PositionBeginning:
		s.StartSeq = 1
	case PositionNow:
		s.StartSeq = seq + 1
	case PositionSeq:
		s.StartSeq = from.Seq
	case PositionTime:
		t := from.Time.UTC()
		s.StartTime = &t
	}
	return s
}
