package domain

import "strings"

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
