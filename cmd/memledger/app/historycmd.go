package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// exportLog is `memledger export`: it writes the log, or a range of it, as an export file.
func exportLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, false)
	var out string
	var rng eventstore.ExportRange
	fs.StringVar(&out, "out", "-", "file to write (- for standard output)")
	fs.Uint64Var(&rng.From, "from", 0, "first log position to export (default the log's first)")
	fs.Uint64Var(&rng.To, "to", 0, "last log position to export (default the log's last)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger export: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	// Progress goes to standard error, so that the file can go to standard output.
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		// The export holds every memory: it gets the data directory's file mode.
		if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, dataFileMode); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	store, err := cfg.store(logger)
	if err != nil {
		return err
	}
	if err := store.Open(ctx); err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	var rep reporter
	h, t, err := store.Export(ctx, w, rng, time.Now(), func(seq, last uint64) {
		if rep == nil {
			rep = newReporter(stderr, "export", last)
		}
		rep.update(seq)
	})
	if rep != nil {
		rep.finish()
	}
	if err != nil {
		if f != nil {
			f.Close()
			os.Remove(out)
		}
		return err
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stderr, "export: %d events (positions %d to %d) in %s (%.0f events/s), sha256 %s\n",
		t.Count, h.FirstSeq, h.LastSeq, elapsed.Round(time.Millisecond), float64(t.Count)/max(elapsed.Seconds(), 1e-9), t.SHA256)
	return nil
}

// importLog is `memledger import FILE`: it loads an export file into the data directory's log,
// keeping every event's position, id and body, and builds the projections from it.
func importLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, false)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: memledger import [flags] FILE   (FILE is an export file, - for standard input)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitError(2)
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	path := fs.Arg(0)
	if path == "-" {
		// The file is read twice (checked whole before anything is written): keep a copy.
		if path, err = spool(os.Stdin); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	start := time.Now()
	h, t, err := ledger.CheckExportFile(path, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "import: %s holds %d events (positions %d to %d) of stream %s, exported %s; its trailer matches\n",
		path, t.Count, h.FirstSeq, h.LastSeq, h.Stream, h.ExportedAt.Format(time.RFC3339))
	if err := prepareDataDir(cfg.Data, logger); err != nil {
		return err
	}
	lock, err := lockData(cfg.Data, "import")
	if err != nil {
		return err
	}
	defer lock.unlock()
	live, err := projections.Open(cfg.ProjectionsPath(), true)
	if err != nil {
		return err
	}
	defer live.Close()
	store, err := cfg.store(logger)
	if err != nil {
		return err
	}
	embedded := cfg.NatsURL == ""
	if embedded {
		// Written without a sync per message, and synced once at the end (see syncTree).
		store.Fsync = eventstore.FsyncInterval
	}
	if err := store.Open(ctx); err != nil {
		return err
	}
	defer store.Close()
	var rep reporter
	imp := &ledger.Ledger{Store: store, Logger: logger}
	if _, err := imp.ImportLog(ctx, path, func(seq, last uint64) {
		if rep == nil {
			rep = newReporter(stdout, "import", last)
		}
		rep.update(seq)
	}); err != nil {
		return err
	}
	if rep != nil {
		rep.finish()
	}
	loaded := time.Since(start)
	fmt.Fprintf(stdout, "import: %d events written in %s (%.0f events/s)\n", t.Count, loaded.Round(time.Millisecond),
		float64(t.Count)/max(loaded.Seconds(), 1e-9))
	if err := buildProjections(ctx, cfg, store, stdout, "import: projections", ""); err != nil {
		return err
	}
	if embedded {
		store.Close()
		if err := syncTree(filepath.Join(cfg.Data, "nats")); err != nil {
			return fmt.Errorf("import: sync the log to disk: %w", err)
		}
	}
	fmt.Fprintf(stdout, "import: done in %s; memledger verify compares the projections with the log\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// spool copies r into a temporary file and returns its path.
func spool(r io.Reader) (string, error) {
	f, err := os.CreateTemp("", "memledger-import-*.ndjson")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return f.Name(), nil
}

// syncTree fsyncs every file and directory under dir: the embedded server, run without a sync
// per message, leaves its last writes in the operating system's cache when it stops.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
