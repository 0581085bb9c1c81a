package atocore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/atocore"
	"github.com/memledger/memledger/handlers/atocore/atocoretest"
	"github.com/stretchr/testify/require"
)

func fixturePlan(t *testing.T) *atocore.Plan {
	t.Helper()
	dir := t.TempDir()
	path, reg := filepath.Join(dir, "atocore.db"), filepath.Join(dir, "projects.json")
	require.NoError(t, atocoretest.Write(path, reg))
	src, err := atocore.Open(context.Background(), path)
	require.NoError(t, err)
	defer src.Close()
	plan, err := atocore.Build(context.Background(), src, atocore.Options{Registry: reg, Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	return plan
}

// fold applies the plan's events per memory with the live service's Apply and checks each
// with the import's rules on the way.
func fold(t *testing.T, evs []domain.Event) map[string]domain.Memory {
	t.Helper()
	out := map[string]domain.Memory{}
	rules := domain.DefaultRules()
	for i, ev := range evs {
		if ev.Kind() != domain.KindMemory {
			continue
		}
		ev.Seq = uint64(i + 1)
		require.NoError(t, rules.CheckImported(out[ev.AggregateID], ev), "event %d %s of %s", i, ev.Type, ev.AggregateID)
		out[ev.AggregateID] = domain.ApplyMemory(out[ev.AggregateID], ev)
	}
	return out
}

func TestBuildMapsTheFixture(t *testing.T) {
	plan := fixturePlan(t)
	rep := plan.Report
	require.Equal(t, map[string]int{"projects": 2, "source_documents": 1, "source_chunks": 3, "project_state": 7,
		"memories": 9, "memory_audit": 14, "registry": 3}, rep.RowsRead)
	for _, s := range rep.Schema {
		if s.Table == "memories" {
			require.Equal(t, []string{"embedding_model"}, s.UnknownColumns)
			require.Equal(t, []string{"valid_until"}, s.MissingColumns)
		}
	}
	require.Equal(t, 8, rep.Memories, "the memory of an unknown type is skipped")
	require.Equal(t, 2, rep.CreatedWithoutAudit)
	require.Equal(t, 1, rep.SynthesizedCreates)
	require.Equal(t, map[string]int{"graduated → superseded": 1,
		"project_state superseded → invalid (when no later row replaces it)": 1}, rep.MappedStatuses)
	require.ElementsMatch(t, []string{atocoretest.MemGap, atocoretest.MemNoAuditX}, rep.Reconciled,
		"the memories whose rows the fold of their events does not give")
	require.Equal(t, map[string]int{"promoted from active: reconciliation": 1, "graduated → superseded": 1}, rep.RemappedRows)
	require.Equal(t, []string{atocoretest.OrphanChunk}, rep.OrphanedChunks)
	require.Equal(t, 1, rep.IgnoredSnapshotKeys["weight"])
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.Table+"/"+s.ID] = s.Reason
	}
	require.Contains(t, reasons["memories/"+atocoretest.MemBadType], `unknown memory type "fact"`)
	require.Contains(t, reasons["memory_audit/a14"], "not in the memories table")
	require.Contains(t, reasons["project_state/s5"], "derived in memledger")
	require.Contains(t, reasons["registry/polisher-rig"], `alias "P05" is already the id or an alias of project p05-interferometer`)

	got := fold(t, plan.Events)
	require.Len(t, got, 8)
	for id, want := range plan.Memories {
		m := got[id]
		m.Seq = 0
		w := want
		w.Seq = 0
		require.Equal(t, w, m, id)
	}
	full := got[atocoretest.MemFull]
	require.Equal(t, "p05-interferometer", full.Project, "an alias resolves to its project")
	require.Equal(t, domain.StatusActive, full.Status)
	require.Equal(t, 0.8, full.Confidence)
	require.Equal(t, 2, full.ReferenceCount)
	require.Equal(t, []string{"laser", "optics"}, full.DomainTags)
	require.Equal(t, domain.StatusSuperseded, got[atocoretest.MemGraduated].Status)
	require.Equal(t, domain.StatusInvalid, got[atocoretest.MemNoAuditX].Status)

	// Times are the original ones, the memory events in time order, their ids stable.
	var last time.Time
	for _, ev := range plan.Events {
		if ev.Kind() == domain.KindMemory {
			require.False(t, ev.Time.Before(last), "%s at %s after %s", ev.Type, ev.Time, last)
			last = ev.Time
		}
	}
	again := fixturePlan(t)
	require.Len(t, again.Events, len(plan.Events))
	for i := range plan.Events {
		require.Equal(t, plan.Events[i].ID, again.Events[i].ID)
	}
}

func TestOpenRefusesWhatIsNotAtoCore(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := atocoretest.CreateEmpty(other, "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT)")
	require.NoError(t, err)
	db.Close()
	_, err = atocore.Open(context.Background(), other)
	require.ErrorIs(t, err, atocore.ErrNotAtoCore)
	require.Contains(t, err.Error(), "has tables users and no memories table")

	junk := filepath.Join(dir, "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("this is not a database, just text that goes on for a while......"), 0o644))
	_, err = atocore.Open(context.Background(), junk)
	require.ErrorIs(t, err, atocore.ErrNotAtoCore)
	require.Contains(t, err.Error(), "not a readable SQLite database")

	// A real database with a page overwritten in the middle.
	broken := filepath.Join(dir, "broken.db")
	require.NoError(t, atocoretest.Write(broken, ""))
	data, err := os.ReadFile(broken)
	require.NoError(t, err)
	for i := 4096 + 100; i < len(data) && i < 4096*3; i++ {
		data[i] = 0xA5
	}
	require.NoError(t, os.WriteFile(broken, data, 0o644))
	_, err = atocore.Open(context.Background(), broken)
	require.ErrorIs(t, err, atocore.ErrNotAtoCore)

	_, err = atocore.Open(context.Background(), filepath.Join(dir, "missing.db"))
	require.Error(t, err)
}
