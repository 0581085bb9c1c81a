package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers"
	"github.com/stretchr/testify/require"
)

// pfRequireClean requires the live report to hold no finding at all.
func pfRequireClean(t *testing.T, l *ledger) domain.IntegrityReport {
	t.Helper()
	r := pfIntegrity(t, l)
	require.Empty(t, r.Findings)
	require.Equal(t, 0, r.Total)
	require.Len(t, r.Counts, len(domain.IntegrityChecks), "every check is counted, even at zero")
	return r
}

func TestIntegrityMissingSourceChunk(t *testing.T) {
	l := startLedger(t)
	pfRequireClean(t, l)
	plain := pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "no source"})
	m := pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "cites c-1", "source_chunk_id": "c-1"})
	require.Equal(t, "c-1", m.SourceChunkID)

	r := pfIntegrity(t, l)
	require.Equal(t, []domain.Finding{{Check: domain.CheckMissingChunk, MemoryID: m.ID, ChunkID: "c-1"}}, r.Findings)
	require.Equal(t, 1, r.Counts[domain.CheckMissingChunk])
	require.Equal(t, pfLastSeq(t, l), r.AtSeq, "at_seq is the log position the findings hold at")

	// Recording the chunk clears the finding.
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "a.md",
		"chunks": []map[string]any{{"id": "c-1", "content": "the source"}}})
	pfRequireClean(t, l)

	// A memory citing an existing chunk is fine; an invalidated one citing a missing chunk is not.
	m2 := pfMemory(t, l, map[string]any{"memory_type": "episodic", "content": "also cites c-1", "source_chunk_id": "c-1"})
	pfRequireClean(t, l)

	// Deleting the document makes every memory citing its chunks a finding, whatever its status.
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+m2.ID+"/invalidate", map[string]any{"reason": "old"})
	pfExpect(t, l, http.StatusNoContent, "DELETE", "/documents/doc-1", nil)
	r = pfIntegrity(t, l)
	require.ElementsMatch(t, []domain.Finding{
		{Check: domain.CheckMissingChunk, MemoryID: m.ID, ChunkID: "c-1"},
		{Check: domain.CheckMissingChunk, MemoryID: m2.ID, ChunkID: "c-1"},
	}, r.Findings)
	require.Equal(t, 2, r.Counts[domain.CheckMissingChunk])

	// Recording the chunk in another document clears them again, and the state survives a restart.
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-2", "file_path": "b.md",
		"chunks": []map[string]any{{"id": "other", "content": "x"}}})
	require.Len(t, pfIntegrity(t, l).Findings, 2)
	pfExpect(t, l, http.StatusCreated, "POST", "/documents/doc-2/chunks", map[string]any{"chunks": []map[string]any{{"id": "c-1", "content": "back"}}})
	pfRequireClean(t, l)
	l.restart()
	pfRequireClean(t, l)
	_ = plain
}

func TestIntegrityDuplicateActiveMemories(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "p")
	pfProject(t, l, "q", "q-alias")
	a := pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "Uses  Python", "project": "p"})
	pfRequireClean(t, l)
	b := pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "uses python", "project": "p"})

	dups := func() []domain.Finding {
		t.Helper()
		return pfFindings(pfIntegrity(t, l), domain.CheckDuplicateMemory)
	}
	got := dups()
	require.Len(t, got, 1, "found across case and whitespace differences")
	require.Equal(t, "preference", got[0].MemoryType)
	require.Equal(t, "p", got[0].Project)
	require.Equal(t, "uses python", got[0].Content)
	require.ElementsMatch(t, []string{a.ID, b.ID}, got[0].MemoryIDs)

	// Only active memories of the same type and project count.
	cand := pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "USES PYTHON", "project": "p", "status": "candidate"})
	inv := pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "uses\tpython", "project": "p"})
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+inv.ID+"/invalidate", map[string]any{"reason": "wrong"})
	pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "uses python", "project": "p"})
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "uses python", "project": "q"})
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "uses python"})
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "uses python 3", "project": "p"})
	got = dups()
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{a.ID, b.ID}, got[0].MemoryIDs, "a candidate, an invalid one, another type or project: no finding")

	// Invalidating one duplicate clears the finding.
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+b.ID+"/invalidate", map[string]any{"reason": "duplicate"})
	require.Empty(t, dups())

	// A candidate promoted to active is a duplicate again; a content update that differs clears it.
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+cand.ID+"/promote", nil)
	got = dups()
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{a.ID, cand.ID}, got[0].MemoryIDs)
	pfExpect(t, l, http.StatusOK, "PUT", "/memory/"+cand.ID, map[string]any{"content": "uses rust"})
	require.Empty(t, dups())
	// An update into the same content is one again, and superseding clears it.
	pfExpect(t, l, http.StatusOK, "PUT", "/memory/"+cand.ID, map[string]any{"content": " USES python "})
	require.Len(t, dups(), 1)
	pfExpect(t, l, http.StatusOK, "POST", "/memory/"+a.ID+"/supersede", map[string]any{"superseded_by": cand.ID})
	require.Empty(t, dups())

	// Three in a group, by alias: one finding listing all three; removing one keeps it.
	x1 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "ships friday", "project": "q"})
	x2 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "Ships Friday", "project": "q-alias"})
	x3 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "ships   friday", "project": "q"})
	got = dups()
	require.Len(t, got, 1)
	require.Equal(t, "q", got[0].Project)
	require.ElementsMatch(t, []string{x1.ID, x2.ID, x3.ID}, got[0].MemoryIDs)
	pfExpect(t, l, http.StatusOK, "DELETE", "/memory/"+x2.ID, nil)
	got = dups()
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{x1.ID, x3.ID}, got[0].MemoryIDs)
	require.Equal(t, 1, pfIntegrity(t, l).Counts[domain.CheckDuplicateMemory])
	pfExpect(t, l, http.StatusOK, "DELETE", "/memory/"+x3.ID, nil)
	pfRequireClean(t, l)
}

func TestIntegrityStateUnknownProject(t *testing.T) {
	l := startLedger(t)
	pfSetState(t, l, map[string]any{"project": "atocore", "category": "fact", "key": "k", "value": "exempt"})
	pfExpect(t, l, http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "info", "title": "t", "message": "m"})
	pfRequireClean(t, l)

	pfSetState(t, l, map[string]any{"project": "ghost", "category": "decision", "key": "k1", "value": "v"})
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k2", "value": "v"})
	pfSetState(t, l, map[string]any{"project": "wraith", "category": "fact", "key": "k", "value": "v"})
	r := pfIntegrity(t, l)
	require.Equal(t, []domain.Finding{
		{Check: domain.CheckUnknownProject, Project: "ghost", Category: "decision", Key: "k1"},
		{Check: domain.CheckUnknownProject, Project: "ghost", Category: "fact", Key: "k2"},
		{Check: domain.CheckUnknownProject, Project: "wraith", Category: "fact", Key: "k"},
	}, r.Findings)
	require.Equal(t, 3, r.Counts[domain.CheckUnknownProject])

	// Updating an entry keeps one finding for it.
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k2", "value": "changed"})
	require.Len(t, pfIntegrity(t, l).Findings, 3)

	// Registering the project clears its findings.
	pfProject(t, l, "ghost")
	require.Equal(t, []domain.Finding{{Check: domain.CheckUnknownProject, Project: "wraith", Category: "fact", Key: "k"}}, pfIntegrity(t, l).Findings)
	// Invalidating the entry clears it too; setting it again brings it back.
	pfExpect(t, l, http.StatusOK, "DELETE", "/project/state?project=wraith&category=fact&key=k", nil)
	pfRequireClean(t, l)
	pfSetState(t, l, map[string]any{"project": "wraith", "category": "fact", "key": "k", "value": "again"})
	require.Len(t, pfIntegrity(t, l).Findings, 1)
	pfProject(t, l, "wraith")
	pfRequireClean(t, l)
	// Entries of a registered project never are findings.
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k3", "value": "v"})
	pfRequireClean(t, l)
}

func TestIntegrityOrphanedChunk(t *testing.T) {
	l := startLedger(t)
	pfImport(t, l, "doc-x", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c9", DocumentID: "doc-x", ChunkIndex: 0, Content: "x", CharCount: 1}}})
	r := pfIntegrity(t, l)
	require.Equal(t, []domain.Finding{{Check: domain.CheckOrphanedChunk, ChunkID: "c9", DocumentID: "doc-x"}}, r.Findings)
	require.Equal(t, 1, r.Counts[domain.CheckOrphanedChunk])
	// The HTTP API refuses chunks for a missing document.
	requireProblem(t, l.do("POST", "/documents/doc-x/chunks", map[string]any{"chunks": []map[string]any{{"content": "x"}}}), http.StatusNotFound, "")

	// A memory citing the orphan finds its chunk: orphaned, not missing.
	pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "cites c9", "source_chunk_id": "c9"})
	require.Len(t, pfIntegrity(t, l).Findings, 1)

	// Recording the document clears the orphan: the chunk is the document's.
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-x", "file_path": "x.md"})
	pfRequireClean(t, l)

	// Deleting the orphan's document (as an import would: the API knows no such document)
	// clears it too.
	pfImport(t, l, "doc-y", domain.ChunksAdded{Chunks: []domain.Chunk{
		{ID: "c10", DocumentID: "doc-y", ChunkIndex: 0, Content: "y", CharCount: 1},
		{ID: "c11", DocumentID: "doc-y", ChunkIndex: 1, Content: "y", CharCount: 1}}})
	require.Equal(t, 2, pfIntegrity(t, l).Counts[domain.CheckOrphanedChunk])
	pfImport(t, l, "doc-y", domain.DocumentDeleted{})
	pfRequireClean(t, l)
	l.restart()
	pfRequireClean(t, l)
}

// pfMessy makes one finding of each check: a memory citing a missing chunk, two duplicate
// active memories, a state entry of an unregistered project and an orphaned chunk.
func pfMessy(t *testing.T, l *ledger) {
	t.Helper()
	pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "cites nothing", "source_chunk_id": "gone"})
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "Likes tea"})
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "likes  TEA"})
	pfSetState(t, l, map[string]any{"project": "ghost", "category": "fact", "key": "k", "value": "v"})
	pfImport(t, l, "doc-x", domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c9", DocumentID: "doc-x", ChunkIndex: 0, Content: "x", CharCount: 1}}})
}

func TestIntegrityRecordedRun(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "real")
	pfMessy(t, l)
	live := pfIntegrity(t, l)
	require.Equal(t, 4, live.Total)
	for _, c := range domain.IntegrityChecks {
		require.NotZero(t, live.Counts[c], c)
	}
	before := pfLastSeq(t, l)
	require.Equal(t, before, live.AtSeq)

	var run handlers.IntegrityRun
	pfExpect(t, l, http.StatusOK, "POST", "/admin/integrity/run", nil).Decode(t, &run)
	require.Equal(t, live, run.IntegrityReport, "counts and details are those of GET /admin/integrity at at_seq")
	require.Equal(t, before+1, run.RecordedSeq, "recorded right after at_seq")
	require.NotNil(t, run.Alert)

	// Exactly one warning alert, raised by the integrity check.
	warnings := pfAlerts(t, l, "severity=warning")
	require.Len(t, warnings, 1)
	w := warnings[0]
	require.Equal(t, run.Alert.ID, w.ID)
	require.Equal(t, domain.SeverityWarning, w.Severity)
	require.Equal(t, principal, w.Actor, "a run asked for over HTTP is the token's")
	require.Contains(t, w.Message, "4 integrity findings")
	require.EqualValues(t, 4, w.Context["total"])
	require.EqualValues(t, before, w.Context["at_seq"])
	for _, c := range domain.IntegrityChecks {
		require.EqualValues(t, live.Counts[c], w.Context[c], c)
	}
	require.Len(t, pfAlerts(t, l, ""), 1, "no other alert")
	require.Equal(t, before+2, pfLastSeq(t, l), "the run wrote its record and its alert, nothing else")

	// The record is served as atocore/status/integrity_check_result.
	entries := pfState(t, l, pfQuery("project", "atocore", "category", "status"))
	require.Len(t, entries, 1)
	require.Equal(t, "integrity_check_result", entries[0].Key)
	require.Equal(t, run.RecordedSeq, entries[0].Seq)
	var recorded domain.IntegrityReport
	require.NoError(t, json.Unmarshal([]byte(entries[0].Value), &recorded))
	require.Equal(t, live, recorded)

	// Recording changed no finding: the live view holds the same findings, further on.
	after := pfIntegrity(t, l)
	require.Equal(t, live.Findings, after.Findings)
	require.Equal(t, before+2, after.AtSeq)

	// The record holds at its position while the ledger moves on.
	pfProject(t, l, "ghost")
	require.Equal(t, 3, pfIntegrity(t, l).Total)
	entries = pfState(t, l, pfQuery("project", "atocore", "category", "status"))
	require.NoError(t, json.Unmarshal([]byte(entries[0].Value), &recorded))
	require.Equal(t, 4, recorded.Total)

	// A second run records the new findings and raises its own single alert.
	pfExpect(t, l, http.StatusOK, "POST", "/admin/integrity/run", nil, "X-Actor", "ops-bot").Decode(t, &run)
	require.Equal(t, 3, run.Total)
	warnings = pfAlerts(t, l, "severity=warning")
	require.Len(t, warnings, 2)
	require.Equal(t, "ops-bot", warnings[0].Actor)
	audit := pfStateAudit(t, l, pfQuery("project", "atocore", "category", "status", "key", "integrity_check_result"))
	require.Len(t, audit, 2)
	require.Equal(t, "ops-bot", audit[1].Actor)
}

func TestIntegrityRecordedRunCleanLedgerRaisesNothing(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "p")
	pfMemory(t, l, map[string]any{"memory_type": "preference", "content": "likes tea", "project": "p", "source_chunk_id": "c-1"})
	pfMemory(t, l, map[string]any{"memory_type": "knowledge", "content": "likes tea", "project": "p"})
	pfSetState(t, l, map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"})
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "a.md",
		"chunks": []map[string]any{{"id": "c-1", "content": "source"}}})
	live := pfRequireClean(t, l)

	var run handlers.IntegrityRun
	pfExpect(t, l, http.StatusOK, "POST", "/admin/integrity/run", nil).Decode(t, &run)
	require.Equal(t, live, run.IntegrityReport)
	require.Nil(t, run.Alert)
	require.Empty(t, pfAlerts(t, l, ""), "a clean ledger raises no alert")
	require.Equal(t, live.AtSeq+1, pfLastSeq(t, l))

	entries := pfState(t, l, pfQuery("project", "atocore", "category", "status"))
	require.Len(t, entries, 1)
	var recorded domain.IntegrityReport
	require.NoError(t, json.Unmarshal([]byte(entries[0].Value), &recorded))
	require.Equal(t, 0, recorded.Total)
	require.Equal(t, live.AtSeq, recorded.AtSeq)
	require.Empty(t, recorded.Findings)
	pfRequireClean(t, l)
}

func TestIntegrityCLI(t *testing.T) {
	l := startLedger(t)
	pfMessy(t, l)
	live := pfIntegrity(t, l)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := app.Run(ctx, []string{"integrity", "--addr", l.Main.Addr()}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	text := out.String()
	require.Contains(t, text, fmt.Sprintf("integrity at log position %d: %d findings", live.AtSeq, live.Total))
	for _, c := range domain.IntegrityChecks {
		require.Regexp(t, `(?m)^\s+`+c+`\s+`+fmt.Sprint(live.Counts[c])+`$`, text)
	}
	for _, f := range live.Findings {
		line, _ := json.Marshal(f)
		require.Contains(t, text, string(line))
	}
	require.Len(t, pfAlerts(t, l, "severity=warning"), 1, "the CLI records a run")
	entries := pfState(t, l, pfQuery("project", "atocore", "category", "status"))
	require.Len(t, entries, 1)

	// A clean ledger, over the http:// form of the address.
	l2 := startLedger(t)
	out.Reset()
	errOut.Reset()
	code = app.Run(ctx, []string{"integrity", "--addr", l2.URL}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), ": 0 findings")
	require.Equal(t, len(domain.IntegrityChecks)+1, strings.Count(strings.TrimSpace(out.String()), "\n")+1)
	require.Empty(t, pfAlerts(t, l2, ""))
}

// A ledger with many long duplicates records a run within an event's limits: the counts and
// total whole, the first domain.MaxRecordedFindings findings, each content cut short; the
// answer and the live report hold every finding whole.
func TestIntegrityRecordedRunIsBounded(t *testing.T) {
	l := startLedger(t)
	const groups = domain.MaxRecordedFindings + 20
	for g := range groups {
		content := fmt.Sprintf("group %03d ", g) + strings.Repeat("é long duplicated content ", 70)
		for range 2 {
			l.create(map[string]any{"memory_type": "knowledge", "content": content, "status": "active"})
		}
	}
	live := pfIntegrity(t, l)
	require.Equal(t, groups, live.Total)
	require.Len(t, live.Findings, groups)

	var run handlers.IntegrityRun
	pfExpect(t, l, http.StatusOK, "POST", "/admin/integrity/run", nil).Decode(t, &run)
	require.Equal(t, live, run.IntegrityReport, "the answer holds every finding whole")

	entries := pfState(t, l, pfQuery("project", "atocore", "category", "status"))
	require.Len(t, entries, 1)
	var recorded domain.IntegrityReport
	require.NoError(t, json.Unmarshal([]byte(entries[0].Value), &recorded))
	require.Equal(t, live.Counts, recorded.Counts)
	require.Equal(t, groups, recorded.Total)
	require.Len(t, recorded.Findings, domain.MaxRecordedFindings)
	for i, f := range recorded.Findings {
		require.Equal(t, live.Findings[i].MemoryIDs, f.MemoryIDs)
		require.Equal(t, domain.MaxRecordedContent, len([]rune(f.Content)), f.Content)
		require.True(t, strings.HasSuffix(f.Content, "…"))
		require.True(t, strings.HasPrefix(live.Findings[i].Content, strings.TrimSuffix(f.Content, "…")))
	}
	require.Less(t, len(entries[0].Value), 64<<10, "the record stays small")
}
