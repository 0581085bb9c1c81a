package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/textproto"
	"os"
	"sort"
	"time"

	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// Source is what a backup is taken of.
type Source struct {
	Store *eventstore.Store
	// DB is the projection file; nil takes a backup without projections (a restore builds
	// them from the log).
	DB *projections.DB
	// Files are other files of the data directory the backup holds, by their name in the
	// backup (the subscriptions' secrets' key): a file that does not exist is left out.
	Files map[string]string
	// TempDir is where the projections' copy is written before it is sent (the data
	// directory: the copy holds every memory); "" for the system's.
	TempDir string
	// MemledgerVersion is written in the manifest.
	MemledgerVersion string
	// Now is the clock of the manifest's time (time.Now).
	Now func() time.Time
}

// ContentType is the media type of a backup sent as one stream (see Write): parts, each one
// file of the backup, the manifest last.
const ContentType = "multipart/mixed"

// Write writes a backup of src to mw, one part per file, and its manifest as the last part.
// The projections are copied first (in one read transaction, to a file in TempDir, so that
// the transaction is not held while a slow reader takes the copy), then the log's snapshot is
// taken: every position the copy applied is in the snapshot, and the snapshot holds every
// event acknowledged before Write began. A backup cut short has no manifest.
func Write(ctx context.Context, src Source, mw *multipart.Writer) (*Manifest, error) {
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	m := &Manifest{Format: Format, Version: Version, MemledgerVersion: src.MemledgerVersion,
		CreatedAt: now().UTC(), Stream: src.Store.Stream}
	if src.DB != nil {
		tmp, err := os.CreateTemp(src.TempDir, "backup-projections-*.db")
		if err != nil {
			return nil, fmt.Errorf("backup: copy the projections: %w", err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		cps, err := src.DB.Snapshot(tmp)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("backup: copy the projections: %w", err)
		}
		m.Projections = &Projections{File: ProjectionsFile, Checkpoints: cps}
		if err := writePart(m, mw, ProjectionsFile, func(w io.Writer) error {
			_, err := io.Copy(w, tmp)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if err := writePart(m, mw, LogFile, func(w io.Writer) error {
		snap, err := src.Store.Snapshot(ctx, w)
		if err != nil {
			return err
		}
		st := snap.State
		m.StreamConfig, m.FirstSeq, m.LastSeq, m.Messages, m.Bytes, m.Consumers = snap.Config, st.FirstSeq, st.LastSeq, st.Msgs, st.Bytes, st.Consumers
		return nil
	}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(src.Files))
	for name := range src.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := os.Open(src.Files[name])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		err = writePart(m, mw, name, func(w io.Writer) error {
			_, err := io.Copy(w, f)
			return err
		})
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	data, err := m.seal()
	if err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	part, err := mw.CreatePart(partHeader(ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if _, err := part.Write(data); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// writePart writes one file of the backup as a part of mw and records it in m.
func writePart(m *Manifest, mw *multipart.Writer, name string, write func(io.Writer) error) error {
	part, err := mw.CreatePart(partHeader(name))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	cw := &counter{w: part, h: sha256.New()}
	if err := write(cw); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	m.Files = append(m.Files, File{Name: name, Size: cw.n, SHA256: hex.EncodeToString(cw.h.Sum(nil))})
	return nil
}

func partHeader(name string) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	return h
}

// counter passes writes to w, counting and hashing them.
type counter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
