package domain

import (
	"strings"
	"unicode"
)

// The kinds of aggregate: the part of an event type before the first dot, and the second token
// of the event's subject in the log.
const (
	KindMemory   = "memory"
	KindProject  = "project"
	KindState    = "state"
	KindDocument = "document"
	KindAlert    = "alert"
	// KindSystem holds the facts the program records about itself: harness results, integrity
	// runs, nightly runs and alert delivery failures.
	KindSystem = "system"
)

// KindSubscription (subscription.go) is the kind of the webhook subscriptions.

// IsToken reports whether id can name an aggregate: one token of a subject of the log, not
// empty, without dots, * or >, spaces or control characters. It is the one check of an
// aggregate id's form.
func IsToken(id string) bool {
	return id != "" && !strings.ContainsAny(id, ".*>") &&
		!strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}
