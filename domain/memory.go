package domain

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MemoryType is the kind of fact a memory records.
type MemoryType string

// The memory types.
const (
	TypeIdentity   MemoryType = "identity"
	TypePreference MemoryType = "preference"
	TypeProject    MemoryType = "project"
	TypeEpisodic   MemoryType = "episodic"
	TypeKnowledge  MemoryType = "knowledge"
	TypeAdaptation MemoryType = "adaptation"
)

// MemoryTypes lists every memory type, in documentation order.
var MemoryTypes = []MemoryType{TypeIdentity, TypePreference, TypeProject, TypeEpisodic, TypeKnowledge, TypeAdaptation}

// Status is where a memory stands in its review life cycle.
type Status string

// The memory statuses.
const (
	StatusCandidate  Status = "candidate"
	StatusActive     Status = "active"
	StatusSuperseded Status = "superseded"
	StatusInvalid    Status = "invalid"
)

// Statuses lists every status, in life-cycle order.
var Statuses = []Status{StatusCandidate, StatusActive, StatusSuperseded, StatusInvalid}

// Memory is the current state of one memory: the fold of its events.
type Memory struct {
	ID               string     `json:"id"`
	MemoryType       MemoryType `json:"memory_type"`
	Content          string     `json:"content"`
	Project          string     `json:"project"`
	Status           Status     `json:"status"`
	Confidence       float64    `json:"confidence"`
	ReferenceCount   int        `json:"reference_count"`
	LastReferencedAt *time.Time `json:"last_referenced_at"`
	SourceChunkID    string     `json:"source_chunk_id"`
	DomainTags       []string   `json:"domain_tags"`
	ValidUntil       *time.Time `json:"valid_until"`
	SupersededBy     string     `json:"superseded_by"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	// Seq is the log position of the last event applied to the memory; it is its version.
	Seq uint64 `json:"seq"`
}

// Exists reports whether m is the state of a created memory rather than the zero value.
func (m Memory) Exists() bool { return m.ID != "" }

// Defaults of the rules; each is a field of Rules.
const (
	DefaultMaxContentLength = 2000
	DefaultMaxTags          = 10
	DefaultMaxTagLength     = 64
	DefaultMaxNoteLength    = 2000
	DefaultConfidence       = 1.0
	DefaultReinforceDelta   = 0.05
	DefaultAutoPromoteRefs  = 3
	DefaultAutoPromoteConf  = 0.7
	DefaultCandidateMaxAge  = 14 * 24 * time.Hour
	maxProjectLength        = 64
	maxActorLength          = 64
	maxRefLength            = 128
)

// ParseMemoryType returns t as a MemoryType, or a FieldError naming the allowed values.
func ParseMemoryType(t string) (MemoryType, error) {
	mt := MemoryType(t)
	if slices.Contains(MemoryTypes, mt) {
		return mt, nil
	}
	return "", Invalid("memory_type", "unknown memory type %q; expected one of %s", t, joinStrings(MemoryTypes))
}

// ParseStatus returns s as a Status, or a FieldError naming the allowed values.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if slices.Contains(Statuses, st) {
		return st, nil
	}
	return "", Invalid("status", "unknown status %q; expected one of %s", s, joinStrings(Statuses))
}

func joinStrings[S ~string](values []S) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = string(v)
	}
	return strings.Join(parts, ", ")
}

// NormalizeContent trims content and checks it is non-empty and at most max characters.
func NormalizeContent(content string, max int) (string, error) {
	c := strings.TrimSpace(content)
	if c == "" {
		return "", Invalid("content", "must not be empty")
	}
	if !utf8.ValidString(c) {
		return "", Invalid("content", "must be valid UTF-8")
	}
	if strings.ContainsFunc(c, isControl) {
		return "", Invalid("content", "must not hold control characters other than tab and line breaks")
	}
	if n := utf8.RuneCountInString(c); n > max {
		return "", Invalid("content", "is %d characters long; the maximum is %d", n, max)
	}
	return c, nil
}

// CheckConfidence checks that c is within [0, 1].
func CheckConfidence(c float64) error {
	if !(c >= 0 && c <= 1) {
		return Invalid("confidence", "must be between 0 and 1, got %v", c)
	}
	return nil
}

// NormalizeTags lowercases and trims tags, drops empty ones and duplicates (keeping the first
// occurrence's position), and checks there are at most max of at most maxLen characters each.
func NormalizeTags(tags []string, max, maxLen int) ([]string, error) {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || slices.Contains(out, t) {
			continue
		}
		if utf8.RuneCountInString(t) > maxLen {
			return nil, Invalid("domain_tags", "tag %q is longer than %d characters", t, maxLen)
		}
		out = append(out, t)
	}
	if len(out) > max {
		return nil, Invalid("domain_tags", "has %d distinct tags; the maximum is %d", len(out), max)
	}
	return out, nil
}

var kebab = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// CheckProjectID checks that id is a lowercase kebab-case project id (field names the request
// field it came from). The empty id is not a project id; see NormalizeProject.
func CheckProjectID(field, id string) error {
	if len(id) > maxProjectLength {
		return Invalid(field, "is longer than %d characters", maxProjectLength)
	}
	if !kebab.MatchString(id) {
		return Invalid(field, "%q is not a lowercase kebab-case id (like \"my-project\")", id)
	}
	return nil
}

// NormalizeProject trims a memory's project and checks it is empty (a global memory) or a
// lowercase kebab-case id.
func NormalizeProject(project string) (string, error) {
	p := strings.TrimSpace(project)
	if p == "" {
		return "", nil
	}
	return p, CheckProjectID("project", p)
}

var actorPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]*$`)

// CheckActor checks that actor names who made a change: 1 to 64 characters of letters, digits
// and . _ : @ / -, starting with a letter or digit.
func CheckActor(actor string) error {
	if actor == "" {
		return Invalid("actor", "must not be empty")
	}
	if len(actor) > maxActorLength || !actorPattern.MatchString(actor) {
		return Invalid("actor", "%q must be 1 to %d letters, digits or . _ : @ / - characters", actor, maxActorLength)
	}
	return nil
}

// CheckNote checks that a note is at most max characters.
func CheckNote(note string, max int) error {
	if n := utf8.RuneCountInString(note); n > max {
		return Invalid("note", "is %d characters long; the maximum is %d", n, max)
	}
	return nil
}

// isControl reports control characters other than tab, line feed and carriage return.
func isControl(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
}

// CheckRef checks an optional reference to another record (a chunk id, a memory id).
func CheckRef(field, ref string) error {
	if len(ref) > maxRefLength {
		return Invalid(field, "is longer than %d characters", maxRefLength)
	}
	if strings.ContainsFunc(ref, unicode.IsControl) {
		return Invalid(field, "must not hold control characters")
	}
	if strings.TrimSpace(ref) != ref {
		return Invalid(field, "must not start or end with spaces")
	}
	return nil
}
