// Package sinks delivers the log's alerts to their destinations (the structured log, the alert
// file, a webhook or Discord), each sink from its own durable consumer of the log, so that a
// failing sink holds back only itself. A sink that gives up on an alert records the failure
// through the command layer (handlers/ledger).
package sinks

import (
	"context"

	"github.com/memledger/memledger/domain"
)

// Sink delivers alerts to one destination.
type Sink interface {
	// Name is the sink's stable name; its durable position in the log is kept under it.
	Name() string
	// Deliver delivers one alert. A PermanentError is not retried.
	Deliver(ctx context.Context, a domain.Alert) error
}

// PermanentError is a delivery failure that retrying cannot mend.
type PermanentError struct{ Err error }

// Error implements error.
func (e PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e PermanentError) Unwrap() error { return e.Err }
