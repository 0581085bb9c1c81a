package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/atocore"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// importAtoCore runs import-atocore: it maps an AtoCore database to events and writes them
// through the command layer's import, then prints the report.
func importAtoCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger import-atocore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: memledger import-atocore [flags] path/to/atocore.db")
		fs.PrintDefaults()
	}
	cfg.flags(fs, false)
	registry := fs.String("registry", "", "AtoCore's project registry file (projects.json): the projects' aliases and descriptions")
	dryRun := fs.Bool("dry-run", false, "read and map the database, print the report, write nothing")
	merge := fs.Bool("merge", false, "import into a ledger that holds other data (the imported events come after it in the log)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.IntVar(&cfg.MaxContent, "max-content", envInt("MEMLEDGER_MAX_CONTENT", cfg.MaxContent), "longest content of a memory, in characters; longer ones are skipped and reported (MEMLEDGER_MAX_CONTENT)")
	// Flags may come after the database's path too.
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		paths, args = append(paths, fs.Arg(0)), fs.Args()[1:]
	}
	if len(paths) != 1 {
		fmt.Fprintf(stderr, "memledger import-atocore: name one AtoCore database (got %d)\n", len(paths))
		fs.Usage()
		return exitError(2)
	}
	if err := cfg.check(); err != nil {
		return err
	}
	start := time.Now()
	src, err := atocore.Open(ctx, paths[0])
	if err != nil {
		return err
	}
	defer src.Close()
	rules := ledgerRules(cfg)
	plan, err := atocore.Build(ctx, src, atocore.Options{Registry: *registry, Rules: rules, Now: time.Now()})
	if err != nil {
		return err
	}
	rep := plan.Report
	rep.DryRun, rep.Merge = *dryRun, *merge
	if !*dryRun {
		if err := writePlan(ctx, cfg, plan, *merge, stderr); err != nil {
			return err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.RowsPerSecond = float64(rep.TotalRows()) / rep.Seconds
	rep.EventsPerSecond = float64(rep.TotalEvents()) / rep.Seconds
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(stdout)
	return nil
}

// writePlan opens the ledger in cfg.Data (the service must be stopped: the projection file
// is locked), writes the plan's events through the command layer and records an integrity
// run of the result.
func writePlan(ctx context.Context, cfg Config, plan *atocore.Plan, merge bool, stderr io.Writer) error {
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg.Data, logger); err != nil {
		return err
	}
	db, err := projections.OpenLive(cfg.ProjectionsPath(), cfg.ProjectionsSync, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := cfg.store(logger)
	if err != nil {
		return err
	}
	embedded := cfg.NatsURL == ""
	if embedded {
		// Written without a sync per message, and synced once at the end (as memledger import
		// does): an import cut short is run again, and finds what it wrote.
		store.Fsync = eventstore.FsyncInterval
	}
	if err := store.Open(ctx); err != nil {
		return err
	}
	defer store.Close()
	runner := &projections.Runner{DB: db, Source: store, Projections: Projections(), Logger: logger}
	if err := runner.Init(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runner.Run(runCtx) }()
	stopRunner := sync.OnceFunc(func() {
		cancel()
		<-runnerDone
	})
	defer stopRunner()
	l := &ledger.Ledger{Store: store, DB: db, Runner: runner, Rules: ledgerRules(cfg), Logger: logger}
	caller := ledger.Caller{Actor: atocore.Actor}
	if err := l.CaughtUp(ctx); err != nil {
		return err
	}
	last, err := store.LastSeq(ctx)
	if err != nil {
		return err
	}
	if last > 0 && !merge {
		earlier, err := atocore.ImportedBefore(db, plan)
		if err != nil {
			return err
		}
		if !earlier {
			return fmt.Errorf("the ledger in %s holds %d events that no import of this database wrote; import with --merge to add to it (see the README on what that means for the recent audit), or into an empty data directory", cfg.Data, last)
		}
	}
	rep := newReporter(stderr, "import-atocore", uint64(len(plan.Events)))
	res, err := l.Import(ctx, caller, plan.Events, ledger.ImportOptions{
		Progress: func(done, total int) { rep.update(uint64(done)) },
	})
	rep.finish()
	report := plan.Report
	report.EventsWritten, report.EventsPresent = res.Written, res.Present
	for _, c := range res.Conflicts {
		report.Skipped = append(report.Skipped, atocore.Skipped{Table: "ledger " + c.Kind, ID: c.ID, Reason: c.Reason})
	}
	if err != nil {
		return err
	}
	if res.Written > 0 {
		if _, err := l.RunIntegrity(ctx, caller); err != nil {
			return fmt.Errorf("integrity run after the import: %w", err)
		}
	}
	integrity, err := db.IntegrityReport()
	if err != nil {
		return err
	}
	report.Integrity = integrity.Counts
	if report.Integrity == nil {
		report.Integrity = map[string]int{}
	}
	if embedded {
		stopRunner()
		store.Close()
		if err := syncTree(filepath.Join(cfg.Data, "nats")); err != nil {
			return fmt.Errorf("import-atocore: sync the log to disk: %w", err)
		}
	}
	return nil
}

// ledgerRules are the rules of cfg's memories.
func ledgerRules(cfg Config) domain.Rules {
	rules := domain.DefaultRules()
	rules.MaxContentLength = cfg.MaxContent
	return rules
}
