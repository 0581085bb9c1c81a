package domain

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Severity is how bad an alert is.
type Severity string

// The severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity, mildest first.
var Severities = []Severity{SeverityInfo, SeverityWarning, SeverityCritical}

// Limits of an alert.
const (
	MaxAlertTitle       = 200
	MaxAlertMessage     = 4000
	MaxAlertContextJSON = 8192
)

// Alert is a raised alert, as the sinks and the views see it.
type Alert struct {
	ID        string         `json:"id"`
	Severity  Severity       `json:"severity"`
	Title     string         `json:"title"`
	Message   string         `json:"message"`
	Context   map[string]any `json:"context"`
	Timestamp time.Time      `json:"timestamp"`
	Seq       uint64         `json:"seq"`
	Actor     string         `json:"actor"`
}

// RaiseAlert asks for an alert. An unknown Severity is recorded as info, and the alert's
// context keeps what was given under "original_severity".
type RaiseAlert struct {
	Severity string
	Title    string
	Message  string
	Context  map[string]any
}

// AlertRaised records an alert; its aggregate id is its severity.
type AlertRaised struct {
	Severity Severity       `json:"severity"`
	Title    string         `json:"title"`
	Message  string         `json:"message"`
	Context  map[string]any `json:"context,omitempty"`
}

// EventAlertRaised is the stored type name of AlertRaised.
const EventAlertRaised = "alert.raised"

// EventType implements Payload.
func (AlertRaised) EventType() string { return EventAlertRaised }

// ParseSeverity returns s as a Severity, and false when s is not one (the caller then
// records info).
func ParseSeverity(s string) (Severity, bool) {
	sev := Severity(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Severities, sev) {
		return sev, true
	}
	return SeverityInfo, false
}

// DecideAlert checks c and returns the event that raises it.
func DecideAlert(c RaiseAlert, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	title := strings.TrimSpace(c.Title)
	if title == "" {
		return Event{}, Invalid("title", "must not be empty")
	}
	if n := utf8.RuneCountInString(title); n > MaxAlertTitle {
		return Event{}, Invalid("title", "is %d characters long; the maximum is %d", n, MaxAlertTitle)
	}
	if n := utf8.RuneCountInString(c.Message); n > MaxAlertMessage {
		return Event{}, Invalid("message", "is %d characters long; the maximum is %d", n, MaxAlertMessage)
	}
	ctx := make(map[string]any, len(c.Context)+1)
	for k, v := range c.Context {
		ctx[k] = v
	}
	sev, ok := ParseSeverity(c.Severity)
	if !ok && c.Severity != "" {
		ctx["original_severity"] = c.Severity
	}
	data, err := json.Marshal(ctx)
	if err != nil {
		return Event{}, Invalid("context", "cannot be encoded as JSON: %v", err)
	}
	if len(data) > MaxAlertContextJSON {
		return Event{}, Invalid("context", "is %d bytes as JSON; the maximum is %d", len(data), MaxAlertContextJSON)
	}
	if len(ctx) == 0 {
		ctx = nil
	}
	return NewEvent(string(sev), meta, AlertRaised{Severity: sev, Title: title, Message: c.Message, Context: ctx}), nil
}

// AlertOf is the alert an AlertRaised event records.
func AlertOf(ev Event) (Alert, bool) {
	p, ok := ev.Data.(AlertRaised)
	if !ok {
		return Alert{}, false
	}
	ctx := p.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	return Alert{ID: ev.ID, Severity: p.Severity, Title: p.Title, Message: p.Message, Context: ctx,
		Timestamp: ev.Time, Seq: ev.Seq, Actor: ev.Actor}, true
}

// HarnessRecorded records the result of an evaluation-harness run.
type HarnessRecorded struct {
	PassRate float64 `json:"pass_rate"`
	Passed   int     `json:"passed"`
	Total    int     `json:"total"`
}

// DeliveryFailed records that a sink gave up delivering an alert. It is not an alert itself,
// so a failing sink never raises alerts about its own failures.
type DeliveryFailed struct {
	AlertID  string `json:"alert_id"`
	AlertSeq uint64 `json:"alert_seq"`
	Sink     string `json:"sink"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}

// Stored type names of the system events.
const (
	EventHarnessRecorded = "system.harness_recorded"
	EventDeliveryFailed  = "system.delivery_failed"
)

// EventType implements Payload.
func (HarnessRecorded) EventType() string { return EventHarnessRecorded }

// EventType implements Payload.
func (DeliveryFailed) EventType() string { return EventDeliveryFailed }

// CheckHarness checks a harness result; a zero PassRate with a Total is computed from Passed.
func CheckHarness(h HarnessRecorded, passRateGiven bool) (HarnessRecorded, error) {
	if h.Total < 0 || h.Passed < 0 {
		return h, Invalid("total", "passed and total must not be negative")
	}
	if h.Passed > h.Total {
		return h, Invalid("passed", "is %d, more than total %d", h.Passed, h.Total)
	}
	if !passRateGiven {
		if h.Total == 0 {
			return h, Invalid("pass_rate", "is required when total is 0")
		}
		h.PassRate = float64(h.Passed) / float64(h.Total)
	}
	if err := CheckConfidence(h.PassRate); err != nil {
		return h, Invalid("pass_rate", "must be between 0 and 1, got %v", h.PassRate)
	}
	if passRateGiven && h.Total > 0 {
		if diff := h.PassRate - float64(h.Passed)/float64(h.Total); diff > 0.005 || diff < -0.005 {
			return h, Invalid("pass_rate", "%v does not match passed/total = %d/%d", h.PassRate, h.Passed, h.Total)
		}
	}
	return h, nil
}
