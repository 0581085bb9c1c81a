package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/backup"
	"github.com/memledger/memledger/projections"
)

// restoreCmd is `memledger restore --from DIR --data NEW`: it checks the backup in DIR whole,
// then builds a data directory from it beside NEW (the log restored through JetStream's restore
// API, the projections' copy brought up to the log's end, the search index built) and renames
// it to NEW once everything is written and synced. NEW must not exist or be empty.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, false)
	from := fs.String("from", "", "the backup's directory (required)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 || *from == "" {
		fmt.Fprintf(stderr, "usage: memledger restore --from BACKUP --data NEWDIR\n")
		return exitError(2)
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := backup.Check(*from)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restore: %s holds %d events (positions %d to %d) of stream %s, taken %s by memledger %s; every file matches its manifest\n",
		*from, m.Messages, m.FirstSeq, m.LastSeq, m.Stream, m.CreatedAt.Format(time.RFC3339), m.MemledgerVersion)
	target := filepath.Clean(cfg.Data)
	if err := refuseNonEmpty(target); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), dataDirMode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Everything is written in a directory of its own and renamed to the target at the end:
	// a restore cut short leaves nothing there that looks like a data directory.
	stage, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".restoring-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, dataDirMode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	staged := cfg
	staged.Data = stage
	store, err := restoreInto(ctx, staged, *from, m, stdout, logger)
	if store != nil {
		defer store.Close()
		if cfg.NatsURL != "" {
			// The log was restored on the external server: a restore that fails from here on
			// deletes it there too, so that it leaves nothing behind (a retry is not refused,
			// serve does not serve it).
			defer func() {
				if err != nil {
					err = errors.Join(err, store.DeleteStream(ctx))
				}
			}()
		}
	}
	if err != nil {
		return err
	}
	if cfg.NatsURL == "" {
		// The embedded server writes into the staged directory: stopped before it is synced.
		store.Close()
	}
	if err := syncTree(stage); err != nil {
		return fmt.Errorf("restore: sync: %w", err)
	}
	if err := refuseNonEmpty(target); err != nil {
		return err
	}
	if err := os.Rename(stage, target); err != nil {
		return fmt.Errorf("restore: move the restored data directory to %s: %w", target, err)
	}
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(stdout, "restore: done in %s: %s holds the log up to %d, the projections and the search index; start it with memledger serve --data %s\n",
		time.Since(start).Round(time.Millisecond), target, m.LastSeq, target)
	return nil
}

// refuseNonEmpty refuses a restore's target that exists and is not an empty directory.
func refuseNonEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("restore: %s is not empty (it holds %s); restore into a new or empty directory: memledger never writes over a data directory", dir, entries[0].Name())
	}
	return nil
}

// restoreInto restores the backup in from, whose manifest is m, into the data directory of
// cfg, which is empty. It returns the log's store, open, once the log is restored (even when
// what follows fails), and nil before.
func restoreInto(ctx context.Context, cfg Config, from string, m *backup.Manifest, stdout io.Writer, logger *slog.Logger) (*eventstore.Store, error) {
	store, err := cfg.store(logger)
	if err != nil {
		return nil, err
	}
	if cfg.NatsURL == "" {
		// Written without a sync per message; the whole directory is synced at the end.
		store.Fsync = eventstore.FsyncInterval
	}
	f, err := os.Open(filepath.Join(from, backup.LogFile))
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	want, _ := m.File(backup.LogFile)
	h := sha256.New()
	logStart := time.Now()
	if err := store.OpenRestore(ctx, m.Snapshot(), io.TeeReader(f, h)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := sameSum(h, want); err != nil {
		return store, err
	}
	fmt.Fprintf(stdout, "restore: the log restored in %s: %d events, positions %d to %d\n",
		time.Since(logStart).Round(time.Millisecond), m.Messages, m.FirstSeq, m.LastSeq)
	return store, restoreViews(ctx, cfg, store, from, m, stdout)
}

// restoreViews copies the backup's projections into the data directory of cfg, brings them up
// to the end of the log restored in store and builds the search index.
func restoreViews(ctx context.Context, cfg Config, store *eventstore.Store, from string, m *backup.Manifest, stdout io.Writer) error {
	for _, file := range m.Files {
		if file.Name == backup.LogFile {
			continue
		}
		if err := copyChecked(filepath.Join(from, file.Name), filepath.Join(cfg.Data, file.Name), file); err != nil {
			return err
		}
	}
	db, err := projections.Open(cfg.ProjectionsPath(), false)
	if err != nil {
		return fmt.Errorf("restore: the projections' copy: %w", err)
	}
	defer db.Close()
	loss, err := checkLog(ctx, store, db)
	if err != nil {
		return err
	}
	if loss != nil {
		return fmt.Errorf("restore: the restored log does not pass the log check: %w", loss)
	}
	runner := &projections.Runner{DB: db, Source: store, Projections: Projections(), BatchSize: projections.RebuildBatchSize,
		Until: m.LastSeq}
	if err := runner.Init(); err != nil {
		return err
	}
	from0 := runner.Applied()
	p := newProgress(stdout, fmt.Sprintf("restore: projections from %d", from0), m.LastSeq)
	runner.Progress = p.update
	if err := runner.Run(ctx); err != nil {
		return fmt.Errorf("restore: bring the projections up to the log's end: %w", err)
	}
	if err := db.Sync(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restore: projections at %d (the copy held %d, %d applied from the log)\n", m.LastSeq, from0, m.LastSeq-from0)
	ps := newProgress(stdout, "restore: search index", m.LastSeq)
	idx, err := projections.BuildSearch(ctx, cfg.SearchPath(), store, m.LastSeq, ps.update)
	if err != nil {
		return fmt.Errorf("restore: build the search index: %w", err)
	}
	return idx.Close()
}

// copyChecked copies the backup's file src to dst (mode 0600), checking it against f as it goes.
func copyChecked(src, dst string, f backup.File) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, dataFileMode)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		return fmt.Errorf("restore: copy %s: %w", f.Name, err)
	}
	if err := sameSum(h, f); err != nil {
		return err
	}
	return out.Close()
}

// sameSum refuses a file whose content changed since the backup was checked.
func sameSum(h hash.Hash, f backup.File) error {
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("restore: %s changed while it was restored: its SHA-256 is now %s, the manifest says %s", f.Name, sum, f.SHA256)
	}
	return nil
}
