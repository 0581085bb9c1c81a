-- A copy of shared/atocore/schema.sql, the tables of an AtoCore database as far as they are known:
-- the fixtures below build their databases from it.
-- The tables of an AtoCore database, as far as they are known from its source and commit history
-- (schema of the robustness release, 2026-04). Reconstructed, not copied: real databases may have
-- columns added by later migrations (for example graduated_to_entity_id on memories, entity_kind
-- on memory_audit) or lack ones added late (last_referenced_at, reference_count, domain_tags,
-- valid_until). Times are SQLite's CURRENT_TIMESTAMP ('YYYY-MM-DD HH:MM:SS', UTC) unless a writer
-- stored ISO 8601. JSON columns hold text.

CREATE TABLE source_documents (
  id          TEXT PRIMARY KEY,
  file_path   TEXT UNIQUE NOT NULL,
  file_hash   TEXT NOT NULL,
  title       TEXT,
  doc_type    TEXT DEFAULT 'markdown',
  tags        TEXT DEFAULT '[]',
  ingested_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  updated_at  DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE source_chunks (
  id           TEXT PRIMARY KEY,
  document_id  TEXT NOT NULL REFERENCES source_documents(id) ON DELETE CASCADE,
  chunk_index  INTEGER NOT NULL,
  content      TEXT NOT NULL,
  heading_path TEXT DEFAULT '',
  char_count   INTEGER NOT NULL,
  metadata     TEXT DEFAULT '{}',
  created_at   DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_chunks_document ON source_chunks(document_id);

-- memory_type: identity, preference, project, episodic, knowledge, adaptation
-- status: candidate, active, superseded, invalid (later also graduated)
CREATE TABLE memories (
  id                 TEXT PRIMARY KEY,
  memory_type        TEXT NOT NULL,
  content            TEXT NOT NULL,
  project            TEXT DEFAULT '',
  source_chunk_id    TEXT REFERENCES source_chunks(id),
  confidence         REAL DEFAULT 1.0,
  status             TEXT DEFAULT 'active',
  created_at         DATETIME DEFAULT CURRENT_TIMESTAMP,
  updated_at         DATETIME DEFAULT CURRENT_TIMESTAMP,
  last_referenced_at DATETIME,
  reference_count    INTEGER DEFAULT 0,
  domain_tags        TEXT DEFAULT '[]',
  valid_until        DATETIME
);
CREATE INDEX idx_memories_status ON memories(status);
CREATE INDEX idx_memories_project ON memories(project);
CREATE INDEX idx_memories_last_referenced ON memories(last_referenced_at);
CREATE INDEX idx_memories_valid_until ON memories(valid_until);

-- One row per mutation since the robustness release; written fail-open, so rows can be missing.
-- action: created, updated, promoted, rejected, invalidated, superseded, reinforced, and the
-- verbs of automatic jobs; before_json / after_json are snapshots of the memory row as JSON
-- (before_json is NULL for created).
CREATE TABLE memory_audit (
  id          TEXT PRIMARY KEY,
  memory_id   TEXT NOT NULL,
  action      TEXT NOT NULL,
  actor       TEXT DEFAULT 'api',
  before_json TEXT,
  after_json  TEXT,
  note        TEXT DEFAULT '',
  timestamp   DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_memory_audit_memory ON memory_audit(memory_id);
CREATE INDEX idx_memory_audit_timestamp ON memory_audit(timestamp);
CREATE INDEX idx_memory_audit_action ON memory_audit(action);

CREATE TABLE projects (
  id          TEXT PRIMARY KEY,
  name        TEXT UNIQUE NOT NULL,
  description TEXT DEFAULT '',
  created_at  DATETIME DEFAULT CURRENT_TIMESTAMP
);

-- category: status, decision, requirement, contact, milestone, fact, config (and, under the
-- system project atocore: alert, status, proposals); status: active, superseded (or invalid)
CREATE TABLE project_state (
  id         TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  category   TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  source     TEXT DEFAULT '',
  confidence REAL DEFAULT 1.0,
  status     TEXT DEFAULT 'active',
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_project_state_project ON project_state(project_id);

-- The project registry lives beside the database as JSON:
-- {"projects": [{"id": "p05-interferometer", "aliases": ["p05", "interferometer"],
--                "description": "...", "ingest_roots": [{"source": "vault", "subpath": "...", "label": "..."}]}]}
