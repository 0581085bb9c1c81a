package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/memledger/memledger/handlers/backup"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
)

// backupCmd is `memledger backup --to DIR`: a backup of the running service (POST
// /admin/backup), or of the data directory itself when no memledger process uses it.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, true)
	to := fs.String("to", "", "directory to write the backup into: new, or empty (required)")
	fs.StringVar(&client.token, "token", "", "token to authenticate with when backing up through the service (default $MEMLEDGER_TOKEN, else <data>/admin.token)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	client.data = cfg.Data
	if fs.NArg() > 0 || *to == "" {
		fmt.Fprintf(stderr, "usage: memledger backup --to DIR [--data DIR | --addr HOST:PORT]\n")
		return exitError(2)
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	cfg.SubscriptionKeyFile = env("MEMLEDGER_SUBSCRIPTION_KEY_FILE", "")
	start := time.Now()
	var m *backup.Manifest
	var how string
	if _, err := os.Stat(filepath.Join(cfg.Data, "nats")); err == nil && cfg.NatsURL == "" {
		lock, err := lockData(cfg.Data, "backup")
		var inUse *dataInUseError
		switch {
		case errors.As(err, &inUse):
			how = "through the service at " + cfg.Addr
			m, err = backupFromService(ctx, cfg.Addr, *to)
		case err != nil:
			return err
		default:
			how = "of the stopped data directory " + cfg.Data
			m, err = backupDataDir(ctx, cfg, *to, logger)
			lock.unlock()
		}
		if err != nil {
			return err
		}
	} else {
		how = "through the service at " + cfg.Addr
		if m, err = backupFromService(ctx, cfg.Addr, *to); err != nil {
			return err
		}
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	proj := "no projections (a restore builds them from the log)"
	if m.Projections != nil {
		proj = fmt.Sprintf("the projections at position %d", minCheckpoint(m.Projections.Checkpoints))
	}
	fmt.Fprintf(stdout, "backup: %d events (positions %d to %d) of stream %s and %s, %s, in %s: %s (%.1f MB)\n",
		m.Messages, m.FirstSeq, m.LastSeq, m.Stream, proj, how, time.Since(start).Round(time.Millisecond), *to, float64(size)/1e6)
	return nil
}

func minCheckpoint(cps map[string]uint64) uint64 {
	first, low := true, uint64(0)
	for _, cp := range cps {
		if first || cp < low {
			first, low = false, cp
		}
	}
	return low
}

// backupFromService asks the running service at addr for a backup and writes it into dir.
func backupFromService(ctx context.Context, addr, dir string) (*backup.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(addr)+"/admin/backup", nil)
	if err != nil {
		return nil, err
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mt != backup.ContentType || params["boundary"] == "" {
		return nil, fmt.Errorf("the service at %s answered %q, not a backup", addr, res.Header.Get("Content-Type"))
	}
	return backup.Extract(multipart.NewReader(res.Body, params["boundary"]), dir)
}

// backupDataDir takes a backup of a data directory no process uses (the caller holds its
// lock): it opens the log and the projections itself.
func backupDataDir(ctx context.Context, cfg Config, dir string, logger *slog.Logger) (*backup.Manifest, error) {
	store, err := cfg.store(logger)
	if err != nil {
		return nil, err
	}
	if err := store.Open(ctx); err != nil {
		return nil, err
	}
	defer store.Close()
	var db *projections.DB
	if _, err := os.Stat(cfg.ProjectionsPath()); err == nil {
		db, err = projections.Open(cfg.ProjectionsPath(), false)
		if errors.Is(err, projections.ErrDamaged) {
			logger.Warn("the projection file is damaged; the backup holds none, and a restore builds them from the log", "err", err)
		} else if err != nil {
			return nil, err
		} else {
			defer db.Close()
		}
	}
	loss, err := checkLog(ctx, store, db)
	if err != nil {
		return nil, err
	}
	if loss != nil {
		return nil, fmt.Errorf("refusing to back up a damaged log: %w", loss)
	}
	src := backup.Source{Store: store, DB: db, TempDir: cfg.Data, MemledgerVersion: Version,
		Files: map[string]string{subscriptions.KeyFileName: cfg.SubscriptionKeyPath()}}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan error, 1)
	go func() {
		_, err := backup.Write(ctx, src, mw)
		pw.CloseWithError(err)
		done <- err
	}()
	m, err := backup.Extract(multipart.NewReader(pr, mw.Boundary()), dir)
	if err != nil {
		pr.CloseWithError(err)
	} else {
		io.Copy(io.Discard, pr) // the closing boundary
	}
	werr := <-done
	if err != nil {
		return nil, err
	}
	return m, werr
}
