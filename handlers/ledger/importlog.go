package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/memledger/memledger/eventstore"
)

// Importing is an operator's command on a data directory (memledger import), not a request:
// it keeps every event as it was, actor included, and records nothing of its own.

// importBatch is how many messages one pipelined restore publishes.
const importBatch = 1000

// CheckExportFile reads the export file at path to its end and returns its header and
// trailer, or the first thing wrong with it (eventstore.ErrBadExport): a changed byte, a line
// removed or moved, a missing trailer. progress, when set, is called with each position read.
func CheckExportFile(path string, progress func(seq uint64)) (eventstore.ExportHeader, eventstore.ExportTrailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return eventstore.ExportHeader{}, eventstore.ExportTrailer{}, err
	}
	defer f.Close()
	er, err := eventstore.NewExportReader(f)
	if err != nil {
		return eventstore.ExportHeader{}, eventstore.ExportTrailer{}, fmt.Errorf("%s: %w", path, err)
	}
	for {
		m, err := er.Next()
		if errors.Is(err, io.EOF) {
			return er.Header, er.Trailer, nil
		}
		if err != nil {
			return er.Header, er.Trailer, fmt.Errorf("%s: %w", path, err)
		}
		if progress != nil {
			progress(m.Seq)
		}
	}
}

// ImportLog writes the messages of the export file at path into the log, each at its
// position with its subject, body and message id, after checking the whole file (see
// CheckExportFile): a file that does not match its trailer writes nothing. The log must end
// right before the file's first position: empty, for a file that starts at 1. progress, when
// set, is called with each position written and the file's last.
func (l *Ledger) ImportLog(ctx context.Context, path string, progress func(seq, last uint64)) (eventstore.ExportHeader, error) {
	h, _, err := CheckExportFile(path, nil)
	if err != nil {
		return h, err
	}
	last, err := l.Store.LastSeq(ctx)
	if err != nil {
		return h, err
	}
	if h.FirstSeq == 0 {
		return h, nil // an empty log's export: nothing to write
	}
	if last+1 != h.FirstSeq {
		if last == 0 {
			return h, fmt.Errorf("%s starts at position %d: the log it goes into is empty, so the file must start at 1 (export the whole log, or import the files of its ranges in order)", path, h.FirstSeq)
		}
		return h, fmt.Errorf("the log in the data directory already holds %d events; %s starts at position %d: import into an empty data directory (or, to go on, a file starting at %d)", last, path, h.FirstSeq, last+1)
	}
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	er, err := eventstore.NewExportReader(f)
	if err != nil {
		return h, err
	}
	batch := make([]eventstore.Message, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := l.Store.Restore(ctx, batch); err != nil {
			return err
		}
		if progress != nil {
			progress(batch[len(batch)-1].Seq, h.LastSeq)
		}
		batch = batch[:0]
		return nil
	}
	for {
		m, err := er.Next()
		if errors.Is(err, io.EOF) {
			return h, flush()
		}
		if err != nil {
			return h, fmt.Errorf("%s changed while it was imported: %w", path, err)
		}
		if batch = append(batch, m); len(batch) == importBatch {
			if err := flush(); err != nil {
				return h, err
			}
		}
	}
}
