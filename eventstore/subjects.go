package eventstore

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/memledger/memledger/domain"
)

// SubjectPrefix starts every subject of the log: an event of aggregate id of kind k is stored
// on ledger.<k>.<id>.
const SubjectPrefix = "ledger."

// The filters of the consistency boundaries and consumers that span several aggregates.
var (
	// ProjectSubjects is every project: aliases are unique across projects.
	ProjectSubjects = KindSubjects(domain.KindProject)
	// DocumentSubjects is every document: chunk ids are unique across documents.
	DocumentSubjects = KindSubjects(domain.KindDocument)
	// AlertSubjects is every alert, whatever its severity.
	AlertSubjects = KindSubjects(domain.KindAlert)
)

// KindSubjects is the filter of every aggregate of kind: ledger.<kind>.>.
func KindSubjects(kind string) string { return SubjectPrefix + kind + ".>" }

// AlertSubject is the subject of the alerts of one severity.
func AlertSubject(sev domain.Severity) string {
	return SubjectPrefix + domain.KindAlert + "." + string(sev)
}

// Subject is the stream subject of ev's aggregate: ledger.<kind>.<aggregate id>.
func Subject(ev domain.Event) (string, error) {
	return AggregateSubject(ev.Kind(), ev.AggregateID)
}

// AggregateSubject is the subject of the aggregate of the given kind and id. The id must be a
// single subject token (domain.IsToken).
func AggregateSubject(kind, id string) (string, error) {
	if !domain.IsToken(id) {
		return "", fmt.Errorf("aggregate id %q is not a subject token: %w", id, domain.ErrInvalid)
	}
	return SubjectPrefix + kind + "." + id, nil
}

// Kinds are the kinds of aggregate the log holds events of: the second token of every subject
// (ledger.<kind>.<aggregate id>) and the first part of every event type (memory.created).
var Kinds = []string{domain.KindMemory, domain.KindProject, domain.KindState, domain.KindDocument, domain.KindAlert, domain.KindSystem}

// CheckFilter checks that filter is a subject filter in NATS syntax (tokens separated by dots,
// "*" for one token, ">" for the rest) within the subjects the ledger publishes:
// ledger.<kind>.<aggregate id>. A filter that can match nothing the ledger writes (another
// prefix, an unknown kind, too many tokens) is domain.ErrInvalid, saying why.
func CheckFilter(filter string) error {
	tokens := strings.Split(filter, ".")
	bad := func(format string, args ...any) error {
		return fmt.Errorf("subject filter %q: %s: %w", filter, fmt.Sprintf(format, args...), domain.ErrInvalid)
	}
	if tokens[0] != strings.TrimSuffix(SubjectPrefix, ".") {
		return bad("memledger publishes on %s<kind>.<id> only (like ledger.memory.> or ledger.alert.warning)", SubjectPrefix)
	}
	if len(tokens) < 2 {
		return bad("needs a kind or a wildcard after %s", SubjectPrefix)
	}
	if len(tokens) > 3 {
		return bad("has %d tokens; memledger's subjects have 3 (ledger.<kind>.<id>)", len(tokens))
	}
	for i, tok := range tokens[1:] {
		switch {
		case tok == "":
			return bad("has an empty token")
		case tok == ">" && i+2 != len(tokens):
			return bad("> may only be the last token")
		case tok == ">" || tok == "*":
		case strings.ContainsAny(tok, "*>"):
			return bad("a wildcard must be a whole token (%q)", tok)
		case strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			return bad("token %q holds a space or a control character", tok)
		case i == 0 && !slices.Contains(Kinds, tok):
			return bad("unknown kind %q; the kinds are %s", tok, strings.Join(Kinds, ", "))
		}
	}
	if len(tokens) == 2 && tokens[1] != ">" {
		return bad("memledger's subjects have an aggregate id after the kind: add .> or .<id>")
	}
	return nil
}

// FilterMatches reports whether subject matches filter, in NATS's rules for * and >.
func FilterMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// covers reports whether every subject matching b matches a.
func covers(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, f := range at {
		if f == ">" {
			return len(bt) > i
		}
		if i >= len(bt) || bt[i] == ">" || (f != "*" && f != bt[i]) {
			return false
		}
	}
	return len(at) == len(bt)
}

// overlap reports whether some subject matches both a and b.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != "*" && bt[i] != "*" && at[i] != bt[i] {
			return false
		}
	}
	return len(at) == len(bt)
}

// serverFilters returns the filters a consumer is given for filters: those not covered by
// another, or none (every subject, matched by the reader) when some still overlap, which a
// consumer refuses.
func serverFilters(filters []string) []string {
	var out []string
	for i, f := range filters {
		covered := false
		for j, g := range filters {
			if i != j && covers(g, f) && (f != g || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if overlap(out[i], out[j]) {
				return nil
			}
		}
	}
	return out
}

// EventTypes are the event types this program stores and reads, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(events.types))
	for name := range events.types {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
