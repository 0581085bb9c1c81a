package tests

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/jobs"
	commands "github.com/memledger/memledger/handlers/ledger"
	"github.com/stretchr/testify/require"
)

// revertPlan posts a revert and decodes its plan.
func (l *ledger) revertPlan(body map[string]any, headers ...string) commands.RevertPlan {
	l.t.Helper()
	var plan commands.RevertPlan
	l.expect(http.StatusOK, "POST", "/admin/revert", body, headers...).Decode(l.t, &plan)
	return plan
}

// planItems are a plan's memories by id.
func planItems(plan commands.RevertPlan) map[string]commands.RevertItem {
	out := map[string]commands.RevertItem{}
	for _, it := range plan.Memories {
		out[it.MemoryID] = it
	}
	return out
}

// TestRevertActorSlice: two actors interleaved; reverting one actor's slice restores every
// memory it touched to its state before, invalidates what it created, leaves the other
// actor's memories alone, reports the memories both touched as conflicts; a dry run writes
// nothing, applying twice writes once, and verify is clean.
func TestRevertActorSlice(t *testing.T) {
	clk := newClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	l := startLedger(t, withClock(clk.Now))
	bad, human := []string{"X-Actor", "extractor-v2"}, []string{"X-Actor", "alice"}

	// Before the slice: alice's memories.
	kept := l.mem(map[string]any{"memory_type": "preference", "content": "alice likes tea", "project": "home"}, human...)
	edited := l.mem(map[string]any{"memory_type": "knowledge", "content": "the build uses make", "status": "candidate", "confidence": 0.5}, human...)
	promoted := l.mem(map[string]any{"memory_type": "knowledge", "content": "deploys go out on tuesdays", "status": "candidate"}, human...)
	both := l.mem(map[string]any{"memory_type": "project", "content": "the ledger is on NATS", "project": "home"}, human...)
	since := clk.Now().Add(time.Hour)
	clk.Set(since.Add(time.Minute))

	// The slice: extractor-v2 creates two memories and changes three of alice's, interleaved
	// with alice's own writes.
	created := l.mem(map[string]any{"memory_type": "knowledge", "content": "a wrong fact"}, bad...)
	editedBefore := l.get(edited.ID)
	l.act("PUT", "/memory/"+edited.ID, map[string]any{"content": "the build uses bazel", "confidence": 0.9, "domain_tags": []string{"build"}}, bad...)
	aliceLater := l.mem(map[string]any{"memory_type": "episodic", "content": "alice met bob"}, human...)
	promotedBefore := l.get(promoted.ID)
	l.act("POST", "/memory/"+promoted.ID+"/promote", nil, bad...)
	createdCandidate := l.mem(map[string]any{"memory_type": "knowledge", "content": "another wrong fact", "status": "candidate"}, bad...)
	l.act("POST", "/memory/"+createdCandidate.ID+"/reinforce", nil, bad...)
	bothBefore := l.get(both.ID)
	l.act("PUT", "/memory/"+both.ID, map[string]any{"content": "the ledger is on Kafka"}, bad...)
	clk.Advance(time.Minute)
	// After the slice, alice changes a memory extractor-v2 changed: a conflict.
	bothAfter := l.act("POST", "/memory/"+both.ID+"/reinforce", nil, human...)
	keptNow, aliceLaterNow := l.get(kept.ID), l.get(aliceLater.ID)

	// A dry run answers the plan and writes nothing.
	last := l.lastSeq()
	plan := l.revertPlan(map[string]any{"actor": "extractor-v2", "since": since.Format(time.RFC3339)})
	require.True(t, plan.DryRun)
	require.Equal(t, last, l.lastSeq(), "a dry run writes nothing")
	require.Equal(t, last, plan.AtSeq)
	items := planItems(plan)
	require.Len(t, items, 5, "every memory the slice touched, and only those: %+v", plan.Memories)
	require.Equal(t, commands.RevertCounts{Touched: 5, Planned: 4, Conflicts: 1}, plan.Counts)
	for _, id := range []string{created.ID, createdCandidate.ID} {
		require.Equal(t, commands.RevertPlanned, items[id].Outcome)
		require.True(t, items[id].UndoesCreation, "the slice created %s", id)
		require.Equal(t, []string{"status"}, items[id].Changes)
	}
	require.Len(t, items[createdCandidate.ID].Undoes, 2, "its creation and its reinforcement")
	require.Equal(t, commands.RevertPlanned, items[edited.ID].Outcome)
	require.Equal(t, []string{"content", "confidence", "domain_tags"}, items[edited.ID].Changes)
	require.Equal(t, editedBefore.Content, snapshot(t, items[edited.ID].RevertTo).Content)
	require.Equal(t, commands.RevertConflict, items[both.ID].Outcome)
	require.Len(t, items[both.ID].Conflicts, 1)
	require.Equal(t, "alice", items[both.ID].Conflicts[0].Actor)
	require.Equal(t, domain.ActionReinforced, items[both.ID].Conflicts[0].Action)

	// The principal the changes came through (the harness's token) narrows nothing more; another
	// one is an empty plan.
	require.Equal(t, plan.Counts, l.revertPlan(map[string]any{"actor": "extractor-v2", "principal": principal, "since": since.Format(time.RFC3339)}).Counts)
	require.Empty(t, l.revertPlan(map[string]any{"actor": "extractor-v2", "principal": "someone-else", "since": since.Format(time.RFC3339)}).Memories)

	// Apply.
	plan = l.revertPlan(map[string]any{"actor": "extractor-v2", "since": since.Format(time.RFC3339), "dry_run": false,
		"note": "extractor-v2 wrote nonsense"}, "X-Actor", "ops-admin")
	require.False(t, plan.DryRun)
	require.Equal(t, commands.RevertCounts{Touched: 5, Reverted: 4, Conflicts: 1}, plan.Counts)
	require.Equal(t, last+4, l.lastSeq(), "one event per reverted memory")

	for _, id := range []string{created.ID, createdCandidate.ID} {
		m := l.get(id)
		require.Equal(t, domain.StatusInvalid, m.Status, "a creation is reverted by invalidation")
	}
	e := l.get(edited.ID)
	require.Equal(t, editedBefore.Content, e.Content)
	require.Equal(t, editedBefore.Confidence, e.Confidence)
	require.Equal(t, editedBefore.DomainTags, e.DomainTags)
	require.Equal(t, domain.StatusCandidate, e.Status)
	p := l.get(promoted.ID)
	require.Equal(t, promotedBefore.Status, p.Status, "the promotion is undone")
	require.Equal(t, domain.StatusCandidate, p.Status)
	// The conflict is left as it is, the other actor's memories too.
	require.Equal(t, bothAfter, l.get(both.ID))
	require.NotEqual(t, bothBefore.Content, l.get(both.ID).Content)
	require.Equal(t, keptNow, l.get(kept.ID))
	require.Equal(t, aliceLaterNow, l.get(aliceLater.ID))

	// The audit tells the story: the bad change, the revert, who and why.
	audit := l.auditOf(edited.ID)
	rev := audit[len(audit)-1]
	require.Equal(t, domain.ActionReverted, rev.Action)
	require.Equal(t, "ops-admin", rev.Actor)
	require.Equal(t, "extractor-v2 wrote nonsense", rev.Note)
	require.Equal(t, []string{audit[len(audit)-2].EventID}, rev.Undoes)
	require.Equal(t, "extractor-v2", audit[len(audit)-2].Actor)

	// Applying the same revert again writes nothing.
	last = l.lastSeq()
	again := l.revertPlan(map[string]any{"actor": "extractor-v2", "since": since.Format(time.RFC3339), "dry_run": false})
	require.Equal(t, last, l.lastSeq(), "the second apply writes nothing")
	require.Equal(t, commands.RevertCounts{Touched: 5, AlreadyReverted: 4, Conflicts: 1}, again.Counts)

	// Asked to, the revert takes the conflict back too, undoing alice's later change with it.
	forced := l.revertPlan(map[string]any{"actor": "extractor-v2", "since": since.Format(time.RFC3339), "dry_run": false, "include_conflicts": true})
	require.Equal(t, commands.RevertCounts{Touched: 5, Reverted: 1, AlreadyReverted: 4}, forced.Counts)
	b := l.get(both.ID)
	require.Equal(t, bothBefore.Content, b.Content)
	require.Equal(t, bothBefore.ReferenceCount, b.ReferenceCount)
	require.Len(t, planItems(forced)[both.ID].Undoes, 1)
	require.Len(t, l.auditOf(both.ID)[len(l.auditOf(both.ID))-1].Undoes, 2, "the slice's event and the conflicting one")

	// The log folds to the views: verify is clean.
	l.stop()
	code, out, errOut := runApp(t, "verify", "--data", l.cfg.Data)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "verify: ok")
}

// TestRevertNightlyRun reverts what a nightly run auto-promoted and expired.
func TestRevertNightlyRun(t *testing.T) {
	clk := newClock(pfNightAt.Add(-30 * 24 * time.Hour))
	l := startLedger(t, withClock(clk.Now))
	stale := l.mem(map[string]any{"memory_type": "knowledge", "content": "never reinforced", "status": "candidate"})
	ready := l.mem(map[string]any{"memory_type": "knowledge", "content": "reinforced thrice", "status": "candidate", "confidence": 0.7})
	for range 3 {
		l.act("POST", "/memory/"+ready.ID+"/reinforce", nil)
	}
	readyBefore := l.get(ready.ID)
	other := l.mem(map[string]any{"memory_type": "knowledge", "content": "promoted by hand", "status": "candidate"})
	l.act("POST", "/memory/"+other.ID+"/promote", nil, "X-Actor", "reviewer")
	clk.Set(pfNightAt)
	run := pfRunNightly(t, l, map[string]any{"night": pfNight})
	require.Equal(t, pfAllSteps(domain.StepOK), pfStepStatuses(run.Steps))
	require.Equal(t, domain.StatusActive, l.get(ready.ID).Status)
	require.Equal(t, domain.StatusInvalid, l.get(stale.ID).Status)

	plan := l.revertPlan(map[string]any{"nightly_run": pfNight})
	items := planItems(plan)
	require.Len(t, items, 2, "the run's promotion and expiry: %+v", plan.Memories)
	require.Equal(t, jobs.ActorAutoPromote, items[ready.ID].Undoes[0].Actor)
	require.Equal(t, jobs.ActorExpiry, items[stale.ID].Undoes[0].Actor)

	// By the run's log position, applied.
	runs := pfNightlyRuns(t, l)
	require.Len(t, runs, 1)
	plan = l.revertPlan(map[string]any{"nightly_run": strconv.FormatUint(runs[0].Seq, 10), "dry_run": false})
	require.Equal(t, 2, plan.Counts.Reverted)
	r := l.get(ready.ID)
	require.Equal(t, domain.StatusCandidate, r.Status)
	require.Equal(t, readyBefore.ReferenceCount, r.ReferenceCount)
	require.Equal(t, domain.StatusCandidate, l.get(stale.ID).Status)
	require.Equal(t, domain.StatusActive, l.get(other.ID).Status, "the reviewer's promotion is not the run's")

	// An unknown night is an empty plan.
	require.Empty(t, l.revertPlan(map[string]any{"nightly_run": "2020-01-01"}).Memories)
}

// TestRevertBadFilters: a filter that names nothing, a reversed time range, an unknown field
// or action answer 400 with a detail and write nothing; an unknown actor is an empty plan.
func TestRevertBadFilters(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "something"}, "X-Actor", "writer")
	last := l.lastSeq()
	cases := []struct {
		name   string
		body   any
		field  string
		detail string
	}{
		{"empty filter", map[string]any{}, "filter", "names no slice"},
		{"empty filter, applied", map[string]any{"dry_run": false}, "filter", "names no slice"},
		{"reversed range", map[string]any{"since": "2026-11-30T00:00:00Z", "until": "2026-11-29T00:00:00Z", "dry_run": false}, "until", "is not after since"},
		{"unknown field", map[string]any{"actor": "writer", "actr": "x"}, "", "actr"},
		{"unknown action", map[string]any{"actions": []string{"deleted"}}, "actions", "unknown action"},
		{"bad time", map[string]any{"since": "yesterday"}, "since", "not an RFC 3339 time"},
		{"bad memory id", map[string]any{"memory_ids": []string{"a.b"}}, "memory_ids", "cannot name a memory"},
		{"bad night", map[string]any{"nightly_run": "last night"}, "nightly_run", "neither a night"},
		{"bad principal", map[string]any{"principal": "a b"}, "principal", "not a name"},
		{"no body", nil, "", ""},
	}
	for _, c := range cases {
		res := l.do("POST", "/admin/revert", c.body)
		details := []string{}
		if c.detail != "" {
			details = append(details, c.detail)
		}
		requireProblem(t, res, http.StatusBadRequest, c.field, details...)
	}
	require.Equal(t, last, l.lastSeq(), "nothing is written")

	plan := l.revertPlan(map[string]any{"actor": "nobody-such", "dry_run": false})
	require.Empty(t, plan.Memories)
	require.Equal(t, commands.RevertCounts{}, plan.Counts)
	require.Equal(t, last, l.lastSeq())
	require.Equal(t, domain.StatusActive, l.get(m.ID).Status)
}

// TestRevertCommand: memledger revert prints the plan of the running service's revert, and
// writes it only with --apply.
func TestRevertCommand(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "a wrong fact"}, "X-Actor", "extractor-v2")
	keep := l.mem(map[string]any{"memory_type": "knowledge", "content": "a right fact"}, "X-Actor", "alice")
	since := l.get(m.ID).CreatedAt.Add(-time.Second).Format(time.RFC3339Nano)
	last := l.lastSeq()
	addr := l.Main.Addr()

	code, out, errOut := runApp(t, "revert", "--addr", addr, "--actor", "extractor-v2", "--since", since)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out, m.ID)
	require.Contains(t, out, "invalidate (created by the slice)")
	require.NotContains(t, out, keep.ID)
	require.Contains(t, out, "1 memories touched")
	require.Contains(t, out, "dry run, nothing written")
	require.Equal(t, last, l.lastSeq())

	code, out, errOut = runApp(t, "revert", "--addr", addr, "--actor", "extractor-v2", "--since", since, "--apply", "--as", "ops", "--note", "wrong")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out, "1 reverted")
	require.Contains(t, out, "applied")
	require.Equal(t, domain.StatusInvalid, l.get(m.ID).Status)
	audit := l.auditOf(m.ID)
	require.Equal(t, "ops", audit[len(audit)-1].Actor)
	require.Equal(t, "wrong", audit[len(audit)-1].Note)

	code, _, errOut = runApp(t, "revert", "--addr", addr)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "names no slice of the history")
}

// TestRevertNeedsAnAdmin: the command layer itself refuses a revert, its plan too, to a caller
// that is not an admin, whichever edge it came from (HTTP, pages, MCP, CLI all go through it),
// and writes nothing; an admin's revert goes through.
func TestRevertNeedsAnAdmin(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "a wrong fact"}, "X-Actor", "extractor-v2")
	last := l.lastSeq()
	ctx := t.Context()
	f := commands.RevertFilter{Actor: "extractor-v2"}
	for _, c := range []commands.Caller{
		{Actor: "w", Principal: "w", Role: domain.RoleWriter},
		{Actor: "r", Principal: "r", Role: domain.RoleReviewer},
		{Actor: "nightly"}, // no role: the service's own jobs
	} {
		for _, apply := range []bool{false, true} {
			plan, err := l.Main.Ledger.Revert(ctx, c, "", f, commands.RevertOptions{Apply: apply})
			require.ErrorIs(t, err, commands.ErrForbidden, "%+v, apply %v", c, apply)
			require.Contains(t, err.Error(), "revert needs the role admin")
			require.Empty(t, plan.Memories)
		}
	}
	require.Equal(t, last, l.lastSeq(), "a refused revert writes nothing")
	require.Equal(t, domain.StatusActive, l.get(m.ID).Status)

	plan, err := l.Main.Ledger.Revert(ctx, commands.Caller{Actor: "ops", Principal: "ops", Role: domain.RoleAdmin}, "", f, commands.RevertOptions{Apply: true})
	require.NoError(t, err)
	require.Equal(t, 1, plan.Counts.Reverted)
	require.Equal(t, domain.StatusInvalid, l.get(m.ID).Status)

	// Without authentication every request is an admin's: the API reverts.
	off := startLedger(t, withConfig(func(c *app.Config) { c.Auth = app.AuthOff }))
	w := off.mem(map[string]any{"memory_type": "knowledge", "content": "a wrong fact"}, "X-Actor", "extractor-v2")
	require.Equal(t, 1, off.revertPlan(map[string]any{"actor": "extractor-v2", "dry_run": false}).Counts.Reverted)
	require.Equal(t, domain.StatusInvalid, off.get(w.ID).Status)
}
