package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/atocore"
	"github.com/memledger/memledger/handlers/atocore/atocoretest"
	commands "github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// atoReport runs import-atocore with args (and --json) and returns its report.
func atoReport(t *testing.T, args ...string) atocore.Report {
	t.Helper()
	code, out, errOut := runApp(t, append([]string{"import-atocore", "--json"}, args...)...)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	var rep atocore.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return rep
}

// atoMemoryRow is a memories row of the fixture, read with SQL, not with the importer.
type atoMemoryRow struct {
	id, typ, content, project, status, created, updated, tags string
	chunk, lastRef                                            sql.NullString
	confidence                                                float64
	refs                                                      int
}

func atoTime(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05.999999", time.RFC3339Nano} {
		if v, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return v.UTC()
		}
	}
	t.Fatalf("fixture time %q", s)
	return time.Time{}
}

func TestImportAtoCore(t *testing.T) {
	src := t.TempDir()
	dbPath, reg := filepath.Join(src, "atocore.db"), filepath.Join(src, "projects.json")
	require.NoError(t, atocoretest.Write(dbPath, reg))
	data := t.TempDir()

	// A dry run reads and maps everything and writes nothing.
	dry := atoReport(t, "--data", filepath.Join(data, "dry"), "--registry", reg, dbPath, "--dry-run")
	require.True(t, dry.DryRun)
	require.Positive(t, dry.TotalEvents())
	_, err := os.Stat(filepath.Join(data, "dry"))
	require.True(t, os.IsNotExist(err), "a dry run creates no data directory")

	rep := atoReport(t, "--data", data, "--registry", reg, dbPath)
	require.Equal(t, dry.TotalEvents(), rep.EventsWritten, "every mapped event written")
	require.Zero(t, rep.EventsPresent)
	require.Equal(t, 8, rep.Memories)
	require.Equal(t, map[string]int{"graduated → superseded": 1,
		"project_state superseded → invalid (when no later row replaces it)": 1}, rep.MappedStatuses)
	require.Len(t, rep.Reconciled, 2)
	require.Equal(t, 1, rep.Integrity["orphaned_chunk"], "the chunk whose document is gone")
	require.Equal(t, 1, rep.Integrity["missing_source_chunk"], "the memory citing a chunk that is not there")
	require.Equal(t, 1, rep.Integrity["state_unknown_project"], "the state of an unregistered project")
	var memSchema atocore.TableSchema
	for _, s := range rep.Schema {
		if s.Table == "memories" {
			memSchema = s
		}
	}
	require.Equal(t, []string{"embedding_model"}, memSchema.UnknownColumns)
	require.Equal(t, []string{"valid_until"}, memSchema.MissingColumns)

	l := startLedger(t, withConfig(func(c *app.Config) { c.Data = data }))
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	projectOf := map[string]string{"": "", "p05": "p05-interferometer", "p05-interferometer": "p05-interferometer", "polisher-rig": "polisher-rig"}
	statusOf := map[string]string{"graduated": "superseded"}

	// Every memory, field by field, as the database has it.
	rows, err := db.Query(`SELECT id, memory_type, content, project, source_chunk_id, confidence, status, created_at,
		updated_at, last_referenced_at, reference_count, domain_tags FROM memories WHERE memory_type != 'fact'`)
	require.NoError(t, err)
	var mems []atoMemoryRow
	for rows.Next() {
		var r atoMemoryRow
		require.NoError(t, rows.Scan(&r.id, &r.typ, &r.content, &r.project, &r.chunk, &r.confidence, &r.status,
			&r.created, &r.updated, &r.lastRef, &r.refs, &r.tags))
		mems = append(mems, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, mems, 8)
	for _, r := range mems {
		m := l.get(r.id)
		require.Equal(t, r.id, m.ID)
		require.Equal(t, domain.MemoryType(r.typ), m.MemoryType, r.id)
		require.Equal(t, r.content, m.Content, r.id)
		require.Equal(t, projectOf[r.project], m.Project, r.id)
		status := r.status
		if s, ok := statusOf[status]; ok {
			status = s
		}
		require.Equal(t, domain.Status(status), m.Status, r.id)
		require.Equal(t, r.confidence, m.Confidence, r.id)
		require.Equal(t, r.refs, m.ReferenceCount, r.id)
		if r.lastRef.Valid {
			require.NotNil(t, m.LastReferencedAt, r.id)
			require.Equal(t, atoTime(t, r.lastRef.String), m.LastReferencedAt.UTC(), r.id)
		} else {
			require.Nil(t, m.LastReferencedAt, r.id)
		}
		var tags []string
		require.NoError(t, json.Unmarshal([]byte(r.tags), &tags))
		require.ElementsMatch(t, tags, m.DomainTags, r.id)
		require.Nil(t, m.ValidUntil, "the database has no valid_until column")
		require.Equal(t, r.chunk.String, m.SourceChunkID, r.id)
		require.Equal(t, atoTime(t, r.created), m.CreatedAt.UTC(), r.id)
		require.Equal(t, atoTime(t, r.updated), m.UpdatedAt.UTC(), r.id)
	}
	_ = l.expect(http.StatusNotFound, "GET", "/memory/"+atocoretest.MemBadType, nil)

	// Every audit row, in order, with its actor, note and time; the importer's own entries
	// (creations without a row, reconciliations) have the actor atocore-import.
	arows, err := db.Query(`SELECT memory_id, action, actor, note, timestamp FROM memory_audit WHERE memory_id != 'no-such-memory' ORDER BY memory_id, timestamp`)
	require.NoError(t, err)
	type arow struct{ action, actor, note, at string }
	byMem := map[string][]arow{}
	for arows.Next() {
		var id string
		var a arow
		require.NoError(t, arows.Scan(&id, &a.action, &a.actor, &a.note, &a.at))
		byMem[id] = append(byMem[id], a)
	}
	require.NoError(t, arows.Err())
	actionOf := map[string]domain.Action{"graduated": domain.ActionSuperseded}
	for _, r := range mems {
		entries := l.auditOf(r.id)
		var own []projections.AuditEntry
		for _, e := range entries {
			if e.Actor != atocore.Actor {
				own = append(own, e)
			}
		}
		want := byMem[r.id]
		require.Len(t, own, len(want), "memory %s: one entry per audit row", r.id)
		for i, a := range want {
			e := own[i]
			wantAction := domain.Action(a.action)
			if m, ok := actionOf[a.action]; ok {
				wantAction = m
			}
			if r.id == atocoretest.MemIllegal && a.action == "promoted" {
				wantAction = domain.ActionReconciled // a promote of an active memory
			}
			require.Equal(t, wantAction, e.Action, "memory %s row %d", r.id, i)
			require.Equal(t, strings.ReplaceAll(a.actor, " ", "-"), e.Actor)
			require.Contains(t, e.Note, a.note)
			require.Equal(t, atoTime(t, a.at), e.Timestamp.UTC())
		}
		for i := 1; i < len(entries); i++ {
			require.False(t, entries[i].Timestamp.Before(entries[i-1].Timestamp), "memory %s: audit in time order", r.id)
		}
		if len(want) == 0 || want[0].action != "created" {
			require.Equal(t, domain.ActionCreated, entries[0].Action)
			require.Equal(t, atocore.Actor, entries[0].Actor)
		}
	}
	gap := l.auditOf(atocoretest.MemGap)
	last := gap[len(gap)-1]
	require.Equal(t, domain.ActionReconciled, last.Action)
	require.Equal(t, atocore.Actor, last.Actor)
	require.Contains(t, last.Note, "content")
	require.Contains(t, last.Note, "reference_count")
	grad := l.auditOf(atocoretest.MemGraduated)
	require.Contains(t, grad[len(grad)-1].Note, "AtoCore status graduated")
	require.Contains(t, grad[len(grad)-1].Note, "entity-42")

	// The recent audit follows the original times, newest first.
	recent := l.recent(url.Values{"limit": {"100"}})
	require.True(t, sort.SliceIsSorted(recent, func(i, j int) bool { return recent[i].Timestamp.After(recent[j].Timestamp) }))

	// Projects with their aliases; state; documents.
	var p struct {
		ID          string   `json:"id"`
		Aliases     []string `json:"aliases"`
		Description string   `json:"description"`
	}
	l.expect(http.StatusOK, "GET", "/projects/p05", nil).Decode(t, &p)
	require.Equal(t, "p05-interferometer", p.ID)
	require.Equal(t, []string{"interferometer", "p05"}, p.Aliases)
	require.Equal(t, "Interferometer build", p.Description)
	l.expect(http.StatusOK, "GET", "/projects/polisher", nil).Decode(t, &p)
	require.Equal(t, "polisher-rig", p.ID)
	l.expect(http.StatusOK, "GET", "/projects/spectro", nil).Decode(t, &p)
	require.Equal(t, "p07-spectrometer", p.ID)

	state := func(project string) map[string]domain.StateEntry {
		var v struct {
			Entries []domain.StateEntry `json:"entries"`
		}
		l.expect(http.StatusOK, "GET", "/project/state?include_invalid=true&project="+project, nil).Decode(t, &v)
		out := map[string]domain.StateEntry{}
		for _, e := range v.Entries {
			out[e.Category+"/"+e.Key] = e
		}
		return out
	}
	p05 := state("p05-interferometer")
	require.Len(t, p05, 2)
	require.Equal(t, "Go", p05["decision/language"].Value)
	require.Equal(t, "design review", p05["decision/language"].Source)
	require.Equal(t, 0.9, p05["decision/language"].Confidence)
	require.Equal(t, "active", p05["decision/language"].Status)
	require.Equal(t, atoTime(t, "2026-01-12 11:00:00"), p05["decision/language"].UpdatedAt.UTC())
	require.Equal(t, "measurement", p05["status/phase"].Value, "the later row replaces the superseded one")
	require.Equal(t, "active", p05["status/phase"].Status)
	polisher := state("polisher-rig")
	require.Equal(t, "invalid", polisher["contact/vendor"].Status)
	require.Equal(t, atoTime(t, "2026-01-15 12:30:00"), polisher["contact/vendor"].UpdatedAt.UTC())
	system := state("atocore")
	require.Equal(t, "review candidates", system["proposals/next"].Value)
	require.NotEqual(t, `{"title":"old"}`, system["alert/last_warning"].Value, "derived entries are not imported")
	require.Contains(t, system, "status/integrity_check_result", "the import recorded an integrity run")
	require.Equal(t, "nobody", state("ghost-project")["fact/owner"].Value)

	var doc struct {
		ID       string         `json:"id"`
		FilePath string         `json:"file_path"`
		FileHash string         `json:"file_hash"`
		Title    string         `json:"title"`
		DocType  string         `json:"doc_type"`
		Tags     []string       `json:"tags"`
		Chunks   []domain.Chunk `json:"chunks"`
	}
	l.expect(http.StatusOK, "GET", "/documents/"+atocoretest.DocID, nil).Decode(t, &doc)
	require.Equal(t, "notes/2026-01.md", doc.FilePath)
	require.Equal(t, "sha256:abc", doc.FileHash)
	require.Equal(t, "January notes", doc.Title)
	require.Equal(t, "markdown", doc.DocType)
	require.Equal(t, []string{"notes", "lab"}, doc.Tags)
	crow, err := db.Query(`SELECT id, chunk_index, content, heading_path, char_count FROM source_chunks WHERE document_id = ? ORDER BY chunk_index`, atocoretest.DocID)
	require.NoError(t, err)
	var chunks []domain.Chunk
	for crow.Next() {
		c := domain.Chunk{DocumentID: atocoretest.DocID}
		require.NoError(t, crow.Scan(&c.ID, &c.ChunkIndex, &c.Content, &c.HeadingPath, &c.CharCount))
		chunks = append(chunks, c)
	}
	require.Equal(t, chunks, doc.Chunks)
	var integ struct {
		Counts map[string]int `json:"counts"`
	}
	l.expect(http.StatusOK, "GET", "/admin/integrity", nil).Decode(t, &integ)
	require.Equal(t, map[string]int{"orphaned_chunk": 1, "missing_source_chunk": 1, "state_unknown_project": 1, "duplicate_active_memory": 0}, integ.Counts)
	lastSeq := l.lastSeq()
	l.stop()

	// A second run imports nothing new; verify is clean.
	again := atoReport(t, "--data", data, "--registry", reg, dbPath)
	require.Zero(t, again.EventsWritten)
	require.Equal(t, rep.EventsWritten, again.EventsPresent)
	code, out, errOut := runApp(t, "verify", "--data", data)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "verify: ok")
	l.start()
	require.Equal(t, lastSeq, l.lastSeq(), "nothing was appended by the second run")
}

func TestImportAtoCoreRefusals(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := atocoretest.CreateEmpty(other, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	code, _, errOut := runApp(t, "import-atocore", "--data", filepath.Join(dir, "a"), other)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "has tables notes and no memories table; an AtoCore database has")

	corrupt := filepath.Join(dir, "corrupt.db")
	require.NoError(t, os.WriteFile(corrupt, []byte(strings.Repeat("not sqlite ", 500)), 0o644))
	code, _, errOut = runApp(t, "import-atocore", "--data", filepath.Join(dir, "b"), corrupt)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not a readable SQLite database")

	code, _, errOut = runApp(t, "import-atocore", "--data", filepath.Join(dir, "c"))
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "name one AtoCore database")

	// A ledger that holds other data takes an import only with --merge.
	fixture := filepath.Join(dir, "atocore.db")
	require.NoError(t, atocoretest.Write(fixture, ""))
	l := startLedger(t)
	own := l.mem(map[string]any{"memory_type": "preference", "content": "written before the import"})
	data := l.cfg.Data
	l.stop()
	code, _, errOut = runApp(t, "import-atocore", "--data", data, fixture)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--merge")
	rep := atoReport(t, "--data", data, "--merge", fixture)
	require.True(t, rep.Merge)
	require.Positive(t, rep.EventsWritten)
	l.start()
	require.Equal(t, "written before the import", l.get(own.ID).Content)
	require.Equal(t, "The laser runs at 633 nm", l.get(atocoretest.MemFull).Content)
	recent := l.recent(url.Values{"limit": {"500"}})
	require.Equal(t, own.ID, recent[len(recent)-1].MemoryID, fmt.Sprintf("with --merge the imported entries come after the ledger's own in log order: %v", recent[len(recent)-1]))
}

func TestLedgerImportChecksBeforeWriting(t *testing.T) {
	l := startLedger(t)
	own := l.mem(map[string]any{"memory_type": "preference", "content": "mine"})
	ctx := context.Background()
	caller := commands.Caller{Actor: atocore.Actor}
	at := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	ev := func(id, agg string, minutes int, p domain.Payload) domain.Event {
		return domain.NewEvent(agg, domain.Meta{EventID: id, Actor: "human-triage", Note: "from the old service",
			Time: at.Add(time.Duration(minutes) * time.Minute)}, p)
	}
	created := ev("e-1", "m-new", 0, domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "imported",
		Status: domain.StatusActive, Confidence: 1, DomainTags: []string{}})
	before := l.lastSeq()

	// A promote of an active memory does not fold: nothing at all is written.
	_, err := l.Main.Ledger.Import(ctx, caller, []domain.Event{created, ev("e-2", "m-new", 1, domain.MemoryPromoted{})}, commands.ImportOptions{})
	require.ErrorIs(t, err, domain.ErrConflict)
	require.Contains(t, err.Error(), "promote is allowed only from candidate")
	require.Equal(t, before, l.lastSeq())

	evs := []domain.Event{created, ev("e-3", "m-new", 2, domain.MemoryInvalidated{}),
		ev("e-4", own.ID, 3, domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "not mine",
			Status: domain.StatusActive, Confidence: 1, DomainTags: []string{}})}
	res, err := l.Main.Ledger.Import(ctx, caller, evs, commands.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, 2, res.Written)
	require.Equal(t, []commands.ImportConflict{{Kind: "memory", ID: own.ID,
		Reason: "the ledger holds 1 events of it that this import did not write"}}, res.Conflicts)
	m := l.get("m-new")
	require.Equal(t, domain.StatusInvalid, m.Status)
	require.Equal(t, at.Add(2*time.Minute), m.UpdatedAt.UTC(), "the event's own time")
	audit := l.auditOf("m-new")
	require.Equal(t, "human-triage", audit[1].Actor)
	require.Equal(t, "from the old service", audit[1].Note)
	require.Equal(t, "mine", l.get(own.ID).Content)

	// Again: everything is present, nothing new.
	seq := l.lastSeq()
	res, err = l.Main.Ledger.Import(ctx, caller, evs[:2], commands.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, commands.ImportResult{Present: 2, LastSeq: seq}, res)
	require.Equal(t, seq, l.lastSeq())
}
