package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

const usage = `memledger: an event-sourced memory ledger

Usage:
  memledger serve   [flags]   start the service (HTTP API, embedded NATS, projections)
  memledger rebuild [flags]   replay the log into fresh projections and swap them in
  memledger verify  [flags]   rebuild into a temporary file and compare with the live projections
  memledger export  [flags]   write the log (or --from/--to a range of it) as an export file
  memledger import  [flags] FILE  load an export file into an empty data directory
  memledger backup  --to DIR  a consistent backup of the running service (or of a stopped data directory)
  memledger restore --from DIR --data NEW  a data directory from a backup, checked whole first
  memledger import-atocore [flags] DB  move in from an AtoCore SQLite database, its history kept
  memledger tail    [flags]   print the running service's events as they are appended
  memledger alert   [flags]   raise an alert through the running service
  memledger alerts watch [flags]  print alerts live as the running service raises them
  memledger alerts redeliver --since SEQ|TIME|1h [--sink webhook]  deliver the alerts from there on again
  memledger nightly [flags]   run the nightly pipeline (or one --step) in the running service
  memledger integrity [flags] record an integrity run in the running service and print it
  memledger revert  [flags]   undo a slice of the history (--actor, --since, ...): the plan, or with --apply the revert
  memledger shadow  [flags]   replay the history with the nightly jobs under another policy (--auto-promote-refs, ...)
  memledger subscriptions COMMAND  add, list, show, pause, resume, reset or remove webhook subscriptions
  memledger token create|list|revoke  issue (the secret alone on stdout), list or revoke access tokens
  memledger mcp     [flags]   serve the MCP tools over stdio (through the running service, or on the data directory)
  memledger version           print the version

Run "memledger COMMAND -h" for the flags of a command.
`

// Run runs the subcommand named by args[0] and returns the process's exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "rebuild":
		err = rebuild(ctx, args[1:], stdout, stderr)
	case "verify":
		err = verify(ctx, args[1:], stdout, stderr)
	case "export":
		err = exportLog(ctx, args[1:], stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args[1:], stdout, stderr)
	case "restore":
		err = restoreCmd(ctx, args[1:], stdout, stderr)
	case "import-atocore":
		err = importAtoCore(ctx, args[1:], stdout, stderr)
	case "import":
		err = importLog(ctx, args[1:], stdout, stderr)
	case "tail":
		err = tail(ctx, args[1:], stdout, stderr)
	case "alert":
		err = raiseAlert(ctx, args[1:], stdout, stderr)
	case "alerts":
		err = watchAlerts(ctx, args[1:], stdout, stderr)
	case "nightly":
		err = nightly(ctx, args[1:], stdout, stderr)
	case "integrity":
		err = integrity(ctx, args[1:], stdout, stderr)
	case "revert":
		err = revert(ctx, args[1:], stdout, stderr)
	case "shadow":
		err = shadow(ctx, args[1:], stdout, stderr)
	case "subscriptions":
		err = subscriptionsCmd(ctx, args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(ctx, args[1:], stdout, stderr)
	case "mcp":
		err = mcpStdio(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "memledger", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "memledger: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return int(exit)
	}
	fmt.Fprintf(stderr, "memledger %s: %v\n", args[0], err)
	return 1
}

// exitError ends a command with a status and nothing more to print.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// flagError turns a flag parsing error into the command's result: help is not a failure, and
// the flag package has already printed what was wrong.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return exitError(2)
}

func parse(name string, args []string, stderr io.Writer, withAddr bool) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, withAddr)
	switch name {
	case "serve":
		cfg.serveFlags(fs)
	case "rebuild":
		fs.BoolVar(&cfg.Force, "force", false, "swap in the rebuild even when it holds fewer events than the projections it replaces (a log that lost events); the replaced file is kept beside it")
		fs.BoolVar(&cfg.RebuildSearch, "search", false, "build the search index in the command too, instead of setting it aside for serve to build in the background")
		fallthrough
	case "verify":
		fs.Int64Var(&cfg.MemoryLimit, "memory-limit", envInt64("MEMLEDGER_MEMORY_LIMIT", 0), "soft limit of the memory the Go runtime holds, in bytes; a third of it, at least 32 MiB and at most 64 MiB, is the budget of the writes the build holds across all projections (64 MiB without a limit) (MEMLEDGER_MEMORY_LIMIT)")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger %s: unexpected arguments %q\n", name, fs.Args())
		return cfg, exitError(2)
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parse("serve", args, stderr, true)
	if err != nil {
		return err
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	defer applyMemoryLimit(cfg, logger)()
	m := NewMain(cfg, logger)
	if err := m.Open(ctx); err != nil {
		return err
	}
	waitErr := m.Wait(ctx)
	logger.Info("memledger shutting down")
	return errors.Join(waitErr, m.Close())
}

// rebuildGCPercent is the garbage collector's target during a rebuild (the default is 100).
const rebuildGCPercent = 400

// buildBudget is the byte budget of the writes a build (rebuild, verify) holds across all its
// projections: from --memory-limit, which then also limits the Go runtime, a third of it;
// without it, projections.DefaultHeldBytes.
func buildBudget(cfg Config) *projections.HeldBudget {
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
		return projections.HeldBudgetFor(cfg.MemoryLimit)
	}
	return projections.NewHeldBudget(projections.DefaultHeldBytes)
}

// progress prints a rebuild's progress at most once a second, and a last line when done.
type progress struct {
	w     io.Writer
	label string
	total uint64
	start time.Time
	last  time.Time
	// reported is the count the last line printed.
	reported uint64
}

func newProgress(w io.Writer, label string, total uint64) *progress {
	now := time.Now()
	return &progress{w: w, label: label, total: total, start: now, last: now}
}

func (p *progress) update(applied uint64) {
	if time.Since(p.last) < time.Second && applied < p.total {
		return
	}
	p.last, p.reported = time.Now(), applied
	rate := float64(applied) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "%s: %d/%d events (%.0f%%), %.0f events/s\n", p.label, applied, p.total,
		100*float64(applied)/float64(max(p.total, 1)), rate)
}

func rebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parse("rebuild", args, stderr, false)
	if err != nil {
		return err
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg.Data, logger); err != nil {
		return err
	}
	lock, err := lockData(cfg.Data, "rebuild")
	if err != nil {
		return err
	}
	defer lock.unlock()
	live, err := projections.Open(cfg.ProjectionsPath(), true)
	if errors.Is(err, projections.ErrDamaged) {
		if _, err := projections.SetAside(cfg.ProjectionsPath(), err, logger); err != nil {
			return err
		}
		live, err = projections.Open(cfg.ProjectionsPath(), true)
	}
	if err != nil {
		return err
	}
	defer live.Close()
	store, err := cfg.store(logger)
	if err != nil {
		return err
	}
	if err := store.Open(ctx); err != nil {
		return err
	}
	defer store.Close()
	loss, err := checkLog(ctx, store, live)
	if err != nil {
		return err
	}
	if loss != nil && loss.Held() && !cfg.Force {
		return fmt.Errorf("refusing to rebuild: a rebuild of this log would hold fewer events than the projections it replaces. %w."+
			" To build the projections from what the log holds anyway, run memledger rebuild --force: the current file is kept beside it", loss)
	}
	kept := cfg.ProjectionsPath() + ".previous"
	if loss != nil && loss.Held() {
		kept = fmt.Sprintf("%s.before-loss-%d", cfg.ProjectionsPath(), time.Now().Unix())
	}
	return buildProjections(ctx, cfg, store, stdout, "rebuild", kept)
}

// buildProjections replays store's log into a fresh projection file and swaps it in for the
// live one, which the caller holds open, keeping that one as kept ("" to drop it).
func buildProjections(ctx context.Context, cfg Config, store *eventstore.Store, stdout io.Writer, label, kept string) error {
	last, err := store.LastSeq(ctx)
	if err != nil {
		return err
	}
	// A rebuild allocates at a high rate and holds little: fewer collections make it faster.
	defer debug.SetGCPercent(debug.SetGCPercent(rebuildGCPercent))
	held := buildBudget(cfg)
	tmp := cfg.ProjectionsPath() + ".rebuild"
	p := newProgress(stdout, label, last)
	db, err := projections.BuildHeld(ctx, tmp, store, Projections(), last, held, p.update)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	keptNote := ""
	if kept != "" {
		if err := os.Rename(cfg.ProjectionsPath(), kept); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("keep the replaced projections: %w", err)
		}
		keptNote = ", the replaced file kept as " + kept
	}
	if err := os.Rename(tmp, cfg.ProjectionsPath()); err != nil {
		return fmt.Errorf("swap in the rebuilt projections: %w", err)
	}
	// A crash may have left the marker of an open file: the new file is whole and synced.
	os.Remove(cfg.ProjectionsPath() + ".open")
	fmt.Fprintf(stdout, "%s: done, %d events in %s; projections swapped in at %s%s\n",
		label, last, time.Since(p.start).Round(time.Millisecond), cfg.ProjectionsPath(), keptNote)

	if !cfg.RebuildSearch {
		// The search index is built again by serve, in bulk and in the background: it
		// indexes far slower than the views are built, and searches say how far it is.
		aside := cfg.SearchPath() + ".previous"
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("set the search index aside: %w", err)
		}
		if err := os.Rename(cfg.SearchPath(), aside); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("set the search index aside: %w", err)
		}
		fmt.Fprintf(stdout, "%s: search index set aside as %s; serve builds it again from the log in the background"+
			" (searches miss memories until /health says search.lag 0; or run rebuild --search)\n", label, aside)
		return nil
	}
	tmpSearch := cfg.SearchPath() + ".rebuild"
	ps := newProgress(stdout, label+" search index", last)
	idx, err := projections.BuildSearchHeld(ctx, tmpSearch, store, last, held, ps.update)
	if err != nil {
		os.RemoveAll(tmpSearch)
		return err
	}
	if err := idx.Close(); err != nil {
		return err
	}
	if err := projections.SwapSearch(tmpSearch, cfg.SearchPath()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: search index done, %d events in %s; swapped in at %s\n",
		label, last, time.Since(ps.start).Round(time.Millisecond), cfg.SearchPath())
	return nil
}

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parse("verify", args, stderr, false)
	if err != nil {
		return err
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	lock, err := lockData(cfg.Data, "verify")
	if err != nil {
		return err
	}
	defer lock.unlock()
	live, err := projections.Open(cfg.ProjectionsPath(), true)
	if errors.Is(err, projections.ErrDamaged) {
		fmt.Fprintf(stdout, "verify: PROJECTIONS DAMAGED, %v; serve or rebuild sets the file aside and builds it again from the log\n", err)
		return exitError(1)
	}
	if err != nil {
		return err
	}
	defer live.Close()
	store, err := cfg.store(logger)
	if err != nil {
		return err
	}
	if err := store.Open(ctx); err != nil {
		return err
	}
	defer store.Close()
	loss, err := checkLog(ctx, store, live)
	if err != nil {
		return err
	}
	if loss != nil {
		fmt.Fprintf(stdout, "verify: LOG DAMAGED, %v\n", loss)
		return exitError(1)
	}
	cps, err := live.Checkpoints()
	if err != nil {
		return err
	}
	stale, err := live.StaleVersions(Projections())
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		var names []string
		for _, p := range Projections() {
			if v, ok := stale[p.Name()]; ok {
				names = append(names, fmt.Sprintf("%s (stored at version %d, this program writes version %d)", p.Name(), v, p.(projections.Versioned).Version()))
			}
		}
		return fmt.Errorf("the live projections were written by another version of memledger: %s; start serve, which builds them again from the log, or run memledger rebuild, then verify",
			strings.Join(names, ", "))
	}
	var upTo uint64
	for i, p := range Projections() {
		cp := cps[p.Name()]
		if i > 0 && cp != upTo {
			return fmt.Errorf("the projections are at different log positions (%v); start serve to let them catch up, then verify", cps)
		}
		upTo = cp
	}
	defer debug.SetGCPercent(debug.SetGCPercent(rebuildGCPercent))
	dir, err := os.MkdirTemp("", "memledger-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	held := buildBudget(cfg)
	p := newProgress(stdout, "verify: rebuilding", upTo)
	rebuilt, err := projections.BuildHeld(ctx, dir+"/projections.db", store, Projections(), upTo, held, p.update)
	if err != nil {
		return err
	}
	defer rebuilt.Close()
	diffs, err := projections.Diff(live, rebuilt, 50)
	if err != nil {
		return err
	}
	drift := false
	if len(diffs) == 0 {
		fmt.Fprintf(stdout, "verify: ok, the live projections equal a rebuild of the log up to %d\n", upTo)
	} else {
		drift = true
		fmt.Fprintf(stdout, "verify: DRIFT, the live projections differ from a rebuild of the log up to %d:\n", upTo)
		for _, d := range diffs {
			fmt.Fprintln(stdout, "  "+d)
		}
	}
	miscounts, err := live.CheckCounts(50)
	if err != nil {
		return err
	}
	if len(miscounts) > 0 {
		drift = true
		fmt.Fprintln(stdout, "verify: DRIFT, counts the live projections keep differ from a recount of their entries:")
		for _, d := range miscounts {
			fmt.Fprintln(stdout, "  "+d)
		}
	}
	searchDrift, err := verifySearch(ctx, cfg, store, dir, held, stdout)
	if err != nil {
		return err
	}
	if drift || searchDrift {
		return exitError(1)
	}
	return nil
}

// verifySearch rebuilds the search index up to the live index's checkpoint and compares them;
// it reports whether they differ.
func verifySearch(ctx context.Context, cfg Config, store projections.Source, dir string, held *projections.HeldBudget, stdout io.Writer) (bool, error) {
	if _, err := os.Stat(cfg.SearchPath()); os.IsNotExist(err) {
		fmt.Fprintf(stdout, "verify: no search index at %s (serve builds it from the log)\n", cfg.SearchPath())
		return false, nil
	}
	live, err := projections.OpenSearch(cfg.SearchPath(), nil)
	if err != nil {
		return false, err
	}
	defer live.Close()
	upTo := live.Applied()
	p := newProgress(stdout, "verify: rebuilding the search index", upTo)
	rebuilt, err := projections.BuildSearchHeld(ctx, filepath.Join(dir, "search.bleve"), store, upTo, held, p.update)
	if err != nil {
		return false, err
	}
	defer rebuilt.Close()
	diffs, err := projections.DiffSearch(live, rebuilt, 50)
	if err != nil {
		return false, err
	}
	if len(diffs) == 0 {
		fmt.Fprintf(stdout, "verify: ok, the live search index equals a rebuild of the log up to %d\n", upTo)
		return false, nil
	}
	fmt.Fprintf(stdout, "verify: DRIFT, the live search index differs from a rebuild of the log up to %d:\n", upTo)
	for _, d := range diffs {
		fmt.Fprintln(stdout, "  "+d)
	}
	return true, nil
}
