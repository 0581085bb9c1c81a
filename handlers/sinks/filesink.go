package sinks

import (
	"context"
	"os"
	"path/filepath"

	"github.com/memledger/memledger/domain"
)

// FileSink appends one line per alert to a file and syncs it.
type FileSink struct{ Path string }

// Name implements Sink.
func (FileSink) Name() string { return "file" }

// Deliver implements Sink.
func (s FileSink) Deliver(_ context.Context, a domain.Alert) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	// Alerts may quote what memories hold: the file is the owner's alone, like the data directory.
	f, err := os.OpenFile(s.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(AlertLine(a) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
