package domain

import (
	"strings"
	"unicode/utf8"
)

// The integrity checks.
const (
	CheckMissingChunk     = "missing_source_chunk"
	CheckDuplicateMemory  = "duplicate_active_memory"
	CheckUnknownProject   = "state_unknown_project"
	CheckOrphanedChunk    = "orphaned_chunk"
	EventIntegrityChecked = "system.integrity_checked"
)

// IntegrityChecks lists the checks in report order.
var IntegrityChecks = []string{CheckMissingChunk, CheckDuplicateMemory, CheckUnknownProject, CheckOrphanedChunk}

// Finding is one problem an integrity check found.
type Finding struct {
	Check string `json:"check"`
	// MemoryID, ChunkID, DocumentID, Project, Category, Key and Group name what is wrong,
	// depending on the check.
	MemoryID   string   `json:"memory_id,omitempty"`
	ChunkID    string   `json:"chunk_id,omitempty"`
	DocumentID string   `json:"document_id,omitempty"`
	Project    string   `json:"project,omitempty"`
	Category   string   `json:"category,omitempty"`
	Key        string   `json:"key,omitempty"`
	MemoryType string   `json:"memory_type,omitempty"`
	Content    string   `json:"content,omitempty"`
	MemoryIDs  []string `json:"memory_ids,omitempty"`
}

// IntegrityReport is the findings of the four checks at one log position.
type IntegrityReport struct {
	AtSeq    uint64         `json:"at_seq"`
	Counts   map[string]int `json:"counts"`
	Total    int            `json:"total"`
	Findings []Finding      `json:"findings"`
}

// The bounds of a recorded run (see Recorded).
const (
	// MaxRecordedFindings is how many findings a recorded run holds.
	MaxRecordedFindings = 100
	// MaxRecordedContent is how many characters of a duplicate's content a recorded run holds.
	MaxRecordedContent = 200
)

// Recorded is r as an integrity run records it in the log: its counts and total whole, its
// first MaxRecordedFindings findings, each duplicate's content cut to MaxRecordedContent
// characters (ending in "…"), so that a ledger with many or long findings still records a
// run well within an event's size limit. A reader tells a cut list by len(Findings) < Total;
// the live report (GET /admin/integrity) lists them all.
func (r IntegrityReport) Recorded() IntegrityReport {
	out := r
	out.Counts = make(map[string]int, len(r.Counts))
	for k, v := range r.Counts {
		out.Counts[k] = v
	}
	n := min(len(r.Findings), MaxRecordedFindings)
	out.Findings = make([]Finding, n)
	copy(out.Findings, r.Findings[:n])
	for i := range out.Findings {
		if c := out.Findings[i].Content; utf8.RuneCountInString(c) > MaxRecordedContent {
			out.Findings[i].Content = string([]rune(c)[:MaxRecordedContent-1]) + "…"
		}
	}
	return out
}

// IntegrityChecked records a recorded integrity run.
type IntegrityChecked struct {
	IntegrityReport
}

// EventType implements Payload.
func (IntegrityChecked) EventType() string { return EventIntegrityChecked }

// DuplicateKey is what makes two active memories duplicates: the same type, project and
// content once lowercased and with whitespace collapsed.
func DuplicateKey(m Memory) string {
	return string(m.MemoryType) + "\x00" + m.Project + "\x00" + strings.Join(strings.Fields(strings.ToLower(m.Content)), " ")
}
