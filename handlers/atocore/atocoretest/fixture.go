// Package atocoretest builds AtoCore databases for tests and benchmarks: from AtoCore's schema,
// with the pure-Go SQLite driver, as the service it replaces would have left them.
package atocoretest

import (
	"database/sql"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

// Schema is AtoCore's schema (a copy of shared/atocore/schema.sql).
//
//go:embed schema.sql
var Schema string

// Create creates a database at path from Schema and runs the extra statements (later
// migrations, or their absence) after it.
func Create(path string, extra ...string) (*sql.DB, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists", path)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range append([]string{Schema}, extra...) {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("fixture schema: %w", err)
		}
	}
	return db, nil
}

// Memory ids of the fixture, each standing for one case of the import.
const (
	MemFull      = "0b7d8c52-1c9e-4e58-9f0a-000000000001" // a full history: created, updated, reinforced twice, promoted
	MemGap       = "0b7d8c52-1c9e-4e58-9f0a-000000000002" // audit rows were lost: the row differs from their fold
	MemNoCreate  = "0b7d8c52-1c9e-4e58-9f0a-000000000003" // the created row was lost
	MemNoAudit   = "0b7d8c52-1c9e-4e58-9f0a-000000000004" // older than the audit: no rows
	MemNoAuditX  = "0b7d8c52-1c9e-4e58-9f0a-000000000005" // no rows, invalid and reinforced
	MemGraduated = "0b7d8c52-1c9e-4e58-9f0a-000000000006" // status graduated
	MemIllegal   = "0b7d8c52-1c9e-4e58-9f0a-000000000007" // a promote of an active memory, which memledger refuses
	MemMissing   = "0b7d8c52-1c9e-4e58-9f0a-000000000008" // cites a chunk that does not exist
	MemBadType   = "0b7d8c52-1c9e-4e58-9f0a-000000000009" // a memory type memledger does not have: skipped
)

// Fixture ids of the other records.
const (
	DocID        = "doc-notes"
	ChunkA       = "chunk-a"
	ChunkB       = "chunk-b"
	OrphanChunk  = "chunk-orphan"
	GoneDocument = "doc-gone"
)

// Write builds the fixture database at path and, when registry is not "", the project
// registry file beside it. The memories table has a column the importer does not know
// (embedding_model) and lacks an optional one (valid_until).
func Write(path, registry string) error {
	db, err := Create(path,
		"DROP INDEX idx_memories_valid_until",
		"ALTER TABLE memories DROP COLUMN valid_until",
		"ALTER TABLE memories ADD COLUMN embedding_model TEXT",
		"ALTER TABLE memories ADD COLUMN graduated_to_entity_id TEXT",
	)
	if err != nil {
		return err
	}
	defer db.Close()
	ex := func(q string, args ...any) {
		if err == nil {
			_, err = db.Exec(q, args...)
		}
	}
	ex(`INSERT INTO projects (id, name, description, created_at) VALUES
		('8f0e', 'p05-interferometer', 'The interferometer', '2026-01-05 09:00:00'),
		('9a1b', 'Polisher Rig', '', '2026-01-06T10:00:00+00:00')`)
	ex(`INSERT INTO source_documents (id, file_path, file_hash, title, doc_type, tags, ingested_at) VALUES
		(?, 'notes/2026-01.md', 'sha256:abc', 'January notes', 'markdown', '["notes","lab"]', '2026-01-07 08:00:00')`, DocID)
	ex(`INSERT INTO source_chunks (id, document_id, chunk_index, content, heading_path, char_count, metadata, created_at) VALUES
		(?, ?, 0, 'The laser runs at 633 nm.', 'Jan > Laser', 25, '{}', '2026-01-07 08:00:00'),
		(?, ?, 1, 'Mirrors were re-coated in Lyon.', 'Jan > Mirrors', 31, '{}', '2026-01-07 08:00:00'),
		(?, ?, 0, 'A chunk whose document was deleted.', '', 35, '{}', '2026-01-08 08:00:00')`,
		ChunkA, DocID, ChunkB, DocID, OrphanChunk, GoneDocument)
	ex(`INSERT INTO project_state (id, project_id, category, key, value, source, confidence, status, created_at, updated_at) VALUES
		('s1', '8f0e', 'decision', 'language', 'Go', 'design review', 0.9, 'active', '2026-01-10 10:00:00', '2026-01-12 11:00:00'),
		('s2', '8f0e', 'status', 'phase', 'alignment', '', 1.0, 'superseded', '2026-01-10 10:00:00', '2026-01-20 10:00:00'),
		('s3', '8f0e', 'status', 'phase', 'measurement', 'weekly', 1.0, 'active', '2026-01-20 10:00:00', '2026-01-20 10:00:00'),
		('s4', '9a1b', 'contact', 'vendor', 'Optics Ltd', '', 0.7, 'invalid', '2026-01-11 10:00:00', '2026-01-15T12:30:00Z'),
		('s5', 'atocore', 'alert', 'last_warning', '{"title":"old"}', 'alerts', 1.0, 'active', '2026-01-11 10:00:00', '2026-01-11 10:00:00'),
		('s6', 'atocore', 'proposals', 'next', 'review candidates', 'triage', 1.0, 'active', '2026-01-12 10:00:00', '2026-01-12 10:00:00'),
		('s7', 'ghost-project', 'fact', 'owner', 'nobody', '', 1.0, 'active', '2026-01-13 10:00:00', '2026-01-13 10:00:00')`)
	mem := func(id, typ, content, project, chunk string, conf float64, status, created, updated string, lastRef any, refs int, tags, grad string) {
		ex(`INSERT INTO memories (id, memory_type, content, project, source_chunk_id, confidence, status, created_at, updated_at,
			last_referenced_at, reference_count, domain_tags, embedding_model, graduated_to_entity_id)
			VALUES (?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, 'minilm', NULLIF(?, ''))`,
			id, typ, content, project, chunk, conf, status, created, updated, lastRef, refs, tags, grad)
	}
	mem(MemFull, "knowledge", "The laser runs at 633 nm", "p05", ChunkA, 0.8, "active",
		"2026-02-01 09:00:00", "2026-02-04 09:00:00", "2026-02-03 09:00:00", 2, `["laser","optics"]`, "")
	mem(MemGap, "preference", "Prefers green tea", "", "", 0.75, "active",
		"2026-02-01 10:00:00", "2026-02-09 10:00:00", "2026-02-08 10:00:00", 2, `["drinks"]`, "")
	mem(MemNoCreate, "project", "Polisher uses a 40 cm lap", "polisher-rig", "", 1.0, "active",
		"2026-01-20 10:00:00", "2026-02-02 10:00:00", nil, 0, `[]`, "")
	mem(MemNoAudit, "identity", "Name is Ada", "", "", 1.0, "active",
		"2025-12-01 08:00:00", "2025-12-01 08:00:00", nil, 0, `[]`, "")
	mem(MemNoAuditX, "episodic", "Visited Lyon in May", "p05-interferometer", ChunkB, 0.6, "invalid",
		"2025-12-02T08:00:00.250000", "2025-12-20T08:00:00.250000", "2025-12-10 08:00:00", 1, `["travel"]`, "")
	mem(MemGraduated, "knowledge", "Mirrors are re-coated yearly", "p05", "", 0.9, "graduated",
		"2026-02-05 09:00:00", "2026-02-06 09:00:00", nil, 0, `[]`, "entity-42")
	mem(MemIllegal, "adaptation", "Answer in French on Fridays", "", "", 1.0, "active",
		"2026-02-07 09:00:00", "2026-02-07 09:30:00", nil, 0, `[]`, "")
	mem(MemMissing, "knowledge", "The lab moved to building 7", "", "chunk-nope", 1.0, "candidate",
		"2026-02-08 09:00:00", "2026-02-08 09:00:00", nil, 0, `[]`, "")
	mem(MemBadType, "fact", "Water boils at 100 C", "", "", 1.0, "active",
		"2026-02-08 09:00:00", "2026-02-08 09:00:00", nil, 0, `[]`, "")
	audit := func(id, memID, action, actor string, before, after any, note, at string) {
		enc := func(v any) any {
			if v == nil {
				return nil
			}
			data, _ := json.Marshal(v)
			return string(data)
		}
		ex(`INSERT INTO memory_audit (id, memory_id, action, actor, before_json, after_json, note, timestamp)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, memID, action, actor, enc(before), enc(after), note, at)
	}
	type m = map[string]any
	audit("a01", MemFull, "created", "extractor-v2", nil,
		m{"memory_type": "knowledge", "content": "The laser runs at 632 nm", "project": "p05", "status": "candidate",
			"confidence": 0.6, "domain_tags": []string{"laser"}}, "from chat 42", "2026-02-01 09:00:00")
	audit("a02", MemFull, "updated", "human-triage", m{"content": "The laser runs at 632 nm", "domain_tags": []string{"laser"}},
		m{"content": "The laser runs at 633 nm", "domain_tags": []string{"laser", "optics"}}, "corrected", "2026-02-02 09:00:00")
	audit("a03", MemFull, "reinforced", "reinforcement", m{"confidence": 0.6}, m{"confidence": 0.7, "reference_count": 1}, "", "2026-02-02T12:00:00Z")
	audit("a04", MemFull, "reinforced", "reinforcement", m{"confidence": 0.7}, m{"confidence": 0.8, "reference_count": 2}, "", "2026-02-03 09:00:00")
	audit("a05", MemFull, "promoted", "human triage", m{"status": "candidate"}, m{"status": "active"}, "checked", "2026-02-04 09:00:00")
	audit("a06", MemGap, "created", "api", nil,
		m{"memory_type": "preference", "content": "Prefers tea", "project": "", "status": "candidate", "confidence": 0.6}, "", "2026-02-01 10:00:00")
	audit("a07", MemGap, "promoted", "human-triage", m{"status": "candidate"}, m{"status": "active"}, "", "2026-02-02 10:00:00")
	audit("a08", MemNoCreate, "updated", "api", m{"content": "Polisher uses a 30 cm lap", "memory_type": "project"},
		m{"content": "Polisher uses a 40 cm lap", "weight": 3}, "measured again", "2026-02-02 10:00:00")
	audit("a09", MemGraduated, "created", "extractor-v2", nil,
		m{"memory_type": "knowledge", "content": "Mirrors are re-coated yearly", "project": "p05", "status": "active", "confidence": 0.9}, "", "2026-02-05 09:00:00")
	audit("a10", MemGraduated, "graduated", "graduation-job", m{"status": "active"}, m{"status": "graduated"}, "became entity-42", "2026-02-06 09:00:00")
	audit("a11", MemIllegal, "created", "api", nil,
		m{"memory_type": "adaptation", "content": "Answer in French on Fridays", "status": "active", "confidence": 1.0}, "", "2026-02-07 09:00:00")
	audit("a12", MemIllegal, "promoted", "human-triage", m{"status": "active"}, m{"status": "active"}, "promoted twice", "2026-02-07 09:30:00")
	audit("a13", MemMissing, "created", "extractor-v2", nil,
		m{"memory_type": "knowledge", "content": "The lab moved to building 7", "status": "candidate", "confidence": 1.0}, "", "2026-02-08 09:00:00")
	audit("a14", "no-such-memory", "created", "api", nil, m{"content": "lost"}, "", "2026-02-08 09:00:00")
	if err != nil {
		return fmt.Errorf("fixture rows: %w", err)
	}
	if registry != "" {
		reg := `{"projects": [
			{"id": "p05-interferometer", "aliases": ["p05", "interferometer"], "description": "Interferometer build",
			 "ingest_roots": [{"source": "vault", "subpath": "p05", "label": "P05"}]},
			{"id": "polisher-rig", "aliases": ["polisher", "P05"], "description": ""},
			{"id": "p07-spectrometer", "aliases": ["spectro"], "description": "Only in the registry"}]}`
		if err := os.WriteFile(registry, []byte(strings.TrimSpace(reg)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// CreateEmpty creates a database at path with only the given statements: not AtoCore's.
func CreateEmpty(path string, stmts ...string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, err
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}
