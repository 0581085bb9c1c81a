package domain

import "time"

// Nightly step outcomes.
const (
	StepOK      = "ok"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// StepResult is what one step of a nightly run did.
type StepResult struct {
	Name       string         `json:"name"`
	Actor      string         `json:"actor"`
	Status     string         `json:"status"`
	Summary    map[string]any `json:"summary,omitempty"`
	Error      string         `json:"error,omitempty"`
	StartedAt  time.Time      `json:"started_at"`
	DurationMS int64          `json:"duration_ms"`
}

// NightlyRan records a run of the nightly pipeline: the night it ran for and its steps.
type NightlyRan struct {
	Night string       `json:"night"`
	Steps []StepResult `json:"steps"`
}

// EventNightlyRan is the stored type name of NightlyRan.
const EventNightlyRan = "system.nightly_ran"

// EventType implements Payload.
func (NightlyRan) EventType() string { return EventNightlyRan }
