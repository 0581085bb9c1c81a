package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/memledger/memledger/handlers/ledger"
)

// revert is `memledger revert`: it asks the running service for the plan of a revert by filter
// and prints it as a table; with --apply the service writes it.
func revert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger revert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, actor string
	var actions, memories listFlag
	var apply, asJSON bool
	q := map[string]any{}
	var f struct {
		actor, principal, since, until, project, correlation, nightly, note string
		conflicts                                                           bool
	}
	clientFlags(fs, &addr)
	fs.StringVar(&f.actor, "actor", "", "the changes of this actor")
	fs.StringVar(&f.principal, "principal", "", "the changes of this authenticated caller")
	fs.Var(&actions, "action", "the changes of this audit action (repeatable, or a comma-separated list)")
	fs.StringVar(&f.since, "since", "", "the changes at or after this RFC 3339 time")
	fs.StringVar(&f.until, "until", "", "the changes before this RFC 3339 time")
	fs.Var(&memories, "memory", "the changes of this memory (repeatable, or a comma-separated list)")
	fs.StringVar(&f.project, "project", "", "the changes of memories in this project")
	fs.StringVar(&f.correlation, "correlation-id", "", "the changes of one request (its X-Correlation-ID)")
	fs.StringVar(&f.nightly, "nightly-run", "", "what a nightly run promoted and expired: its night (YYYY-MM-DD) or its log position")
	fs.BoolVar(&f.conflicts, "include-conflicts", false, "revert the memories changed after the slice by others too")
	fs.StringVar(&f.note, "note", "", "the reason, recorded on each revert event")
	fs.StringVar(&actor, "as", "cli", "the actor the revert is recorded under")
	fs.BoolVar(&apply, "apply", false, "write the revert (without it: a dry run that writes nothing)")
	fs.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	for k, v := range map[string]string{"actor": f.actor, "principal": f.principal, "since": f.since, "until": f.until,
		"project": f.project, "correlation_id": f.correlation, "nightly_run": f.nightly, "note": f.note} {
		if v != "" {
			q[k] = v
		}
	}
	if len(actions) > 0 {
		q["actions"] = actions
	}
	if len(memories) > 0 {
		q["memory_ids"] = memories
	}
	q["dry_run"], q["include_conflicts"] = !apply, f.conflicts
	data, err := postJSON(ctx, addr, "/admin/revert", actor, q, http.StatusOK)
	if err != nil {
		return err
	}
	if asJSON {
		_, err := stdout.Write(append(data, '\n'))
		return err
	}
	var plan ledger.RevertPlan
	if err := json.Unmarshal(data, &plan); err != nil {
		return err
	}
	printPlan(stdout, plan)
	return nil
}

// printPlan writes a revert plan as a table and its counts.
func printPlan(w io.Writer, plan ledger.RevertPlan) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMORY\tOUTCOME\tUNDOES\tCONFLICTS\tCHANGES")
	for _, it := range plan.Memories {
		changes := strings.Join(it.Changes, ",")
		if it.UndoesCreation {
			changes = "invalidate (created by the slice)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", it.MemoryID, it.Outcome, len(it.Undoes), len(it.Conflicts), changes)
	}
	tw.Flush()
	c := plan.Counts
	what := "dry run, nothing written (--apply writes it)"
	if !plan.DryRun {
		what = "applied"
	}
	fmt.Fprintf(w, "%d memories touched at log position %d: %d to revert, %d reverted, %d conflicts, %d already reverted, %d unchanged (%s)\n",
		c.Touched, plan.AtSeq, c.Planned, c.Reverted, c.Conflicts, c.AlreadyReverted, c.Unchanged, what)
}
