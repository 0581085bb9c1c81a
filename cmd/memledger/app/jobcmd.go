package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers"
	"github.com/memledger/memledger/handlers/jobs"
)

// nightly is `memledger nightly`: it runs the nightly pipeline (or one step) in the running
// service and prints what each step did.
func nightly(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger nightly", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr string
	var q struct {
		Night string `json:"night,omitempty"`
		Step  string `json:"step,omitempty"`
		Force bool   `json:"force,omitempty"`
	}
	clientFlags(fs, &addr)
	fs.StringVar(&q.Night, "night", "", "the night to run for, YYYY-MM-DD (default today, UTC)")
	fs.StringVar(&q.Step, "step", "", fmt.Sprintf("run only this step (%s, %s, %s, %s)", jobs.StepAutoPromote, jobs.StepExpire, jobs.StepPipeline, jobs.StepIntegrity))
	fs.BoolVar(&q.Force, "force", false, "run steps that already succeeded for that night again")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	data, err := postJSON(ctx, addr, "/admin/nightly/run", "", q, http.StatusOK)
	if err != nil {
		return err
	}
	var run domain.NightlyRan
	if err := json.Unmarshal(data, &run); err != nil {
		return err
	}
	failed := false
	for _, s := range run.Steps {
		summary, _ := json.Marshal(s.Summary)
		fmt.Fprintf(stdout, "%s %-18s %-8s %5dms %s %s\n", run.Night, s.Name, s.Status, s.DurationMS, summary, s.Error)
		failed = failed || s.Status == domain.StepFailed
	}
	if failed {
		return exitError(1)
	}
	return nil
}

// integrity is `memledger integrity`: it records an integrity run in the running service and
// prints its findings.
func integrity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger integrity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr string
	clientFlags(fs, &addr)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	data, err := postJSON(ctx, addr, "/admin/integrity/run", "", struct{}{}, http.StatusOK)
	if err != nil {
		return err
	}
	var run handlers.IntegrityRun
	if err := json.Unmarshal(data, &run); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "integrity at log position %d: %d findings\n", run.AtSeq, run.Total)
	for _, c := range domain.IntegrityChecks {
		fmt.Fprintf(stdout, "  %-24s %d\n", c, run.Counts[c])
	}
	for _, f := range run.Findings {
		line, _ := json.Marshal(f)
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	return nil
}
