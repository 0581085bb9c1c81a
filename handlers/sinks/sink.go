// Package sinks delivers the log's alerts to their destinations (the structured log, the alert
// file, a webhook or Discord), each sink from its own durable consumer of the log, so that a
// failing sink holds back only itself. A sink that gives up on an alert records the failure
// through the command layer (handlers/ledger).
package sinks

import (
	"context"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/subscriptions"
)

// Sink delivers alerts to one destination.
type Sink interface {
	// Name is the sink's stable name; its durable position in the log is kept under it.
	Name() string
	// Deliver delivers one alert. A PermanentError is not retried.
	Deliver(ctx context.Context, a domain.Alert) error
}

// PermanentError is a delivery failure that retrying cannot mend: the sink gives up on the
// alert at once. It is the delivery engine's (package subscriptions).
type PermanentError = subscriptions.PermanentError
