// Package backup is memledger's backup: a consistent snapshot of the log through JetStream's
// snapshot API, a consistent copy of the projections at a position the snapshot holds, the
// data directory's keys, and a manifest that says what they are, so that a restore can check
// a backup whole before it writes anything.
package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/memledger/memledger/eventstore"
)

// Format and Version name a backup's manifest.
const (
	Format  = "memledger-backup"
	Version = 1
)

// Names of the files of a backup directory.
const (
	ManifestFile    = "manifest.json"
	LogFile         = "log.tar.s2"
	ProjectionsFile = "projections.db"
)

// Manifest describes a backup: what it holds, and each file's size and SHA-256.
type Manifest struct {
	Format           string    `json:"format"`
	Version          int       `json:"version"`
	MemledgerVersion string    `json:"memledger_version"`
	CreatedAt        time.Time `json:"created_at"`
	// Stream is the log's stream; FirstSeq to LastSeq the positions the snapshot holds, Messages
	// how many messages (the stream denies deletes, so LastSeq-FirstSeq+1), Consumers the
	// durable consumers it holds (the alert sinks' and subscriptions' positions).
	Stream    string `json:"stream"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	Consumers int    `json:"consumers"`
	// StreamConfig is the stream's configuration, which a restore gives the server back.
	StreamConfig json.RawMessage `json:"stream_config"`
	// Projections is the copy of the projections, nil when the backup holds none (a restore
	// builds them from the log).
	Projections *Projections `json:"projections"`
	// Files are the backup's files but the manifest, in the order they were written.
	Files []File `json:"files"`
	// Checksum is the SHA-256 of the manifest written with an empty Checksum: a manifest
	// changed by hand, or damaged, is refused.
	Checksum string `json:"checksum"`
}

// Projections describes the copy of the projection file a backup holds.
type Projections struct {
	File string `json:"file"`
	// Checkpoints are the log positions each projection had applied in the copy; they are at
	// most the snapshot's LastSeq (the copy is taken first), and a restore applies the rest.
	Checkpoints map[string]uint64 `json:"checkpoints"`
}

// File is one file of a backup.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Snapshot is the log's snapshot as the manifest records it.
func (m *Manifest) Snapshot() eventstore.Snapshot {
	return eventstore.Snapshot{Config: m.StreamConfig, State: eventstore.SnapshotState{
		Msgs: m.Messages, Bytes: m.Bytes, FirstSeq: m.FirstSeq, LastSeq: m.LastSeq, Consumers: m.Consumers}}
}

// File returns the manifest's entry for the file name.
func (m *Manifest) File(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// seal sets the manifest's checksum.
func (m *Manifest) seal() ([]byte, error) {
	sum, err := m.sum()
	if err != nil {
		return nil, err
	}
	m.Checksum = sum
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// sum is the SHA-256 of the manifest with an empty checksum.
func (m *Manifest) sum() (string, error) {
	c := *m
	c.Checksum = ""
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), nil
}

// fileName is what a backup's file may be called: a plain name, no path.
var fileName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// ParseManifest reads a manifest and checks it: its format and version, its checksum, and
// that it names the files a backup must hold.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a backup manifest: %w", err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("not a backup manifest: format %q, want %q", m.Format, Format)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("manifest version %d: this memledger reads version %d", m.Version, Version)
	}
	sum, err := m.sum()
	if err != nil {
		return nil, err
	}
	if m.Checksum != sum {
		return nil, fmt.Errorf("the manifest was changed or damaged: its checksum is %q, its content's %s", m.Checksum, sum)
	}
	if m.Stream == "" || len(m.StreamConfig) == 0 {
		return nil, errors.New("the manifest names no stream")
	}
	if m.Messages != 0 && (m.FirstSeq == 0 || m.LastSeq < m.FirstSeq || m.Messages != m.LastSeq-m.FirstSeq+1) {
		return nil, fmt.Errorf("the manifest says %d messages from %d to %d: the log denies deletes, so that is not a whole log", m.Messages, m.FirstSeq, m.LastSeq)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if !fileName.MatchString(f.Name) || f.Name == ManifestFile {
			return nil, fmt.Errorf("the manifest names a file %q, which is not a backup file's name", f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("the manifest names file %s twice", f.Name)
		}
		seen[f.Name] = true
	}
	if !seen[LogFile] {
		return nil, fmt.Errorf("the manifest names no %s (the log's snapshot)", LogFile)
	}
	if p := m.Projections; p != nil {
		if !seen[p.File] {
			return nil, fmt.Errorf("the manifest's projections file %s is not among its files", p.File)
		}
		for name, cp := range p.Checkpoints {
			if cp > m.LastSeq {
				return nil, fmt.Errorf("the projections' copy has applied %s up to %d, beyond the snapshot's last position %d", name, cp, m.LastSeq)
			}
		}
	}
	return &m, nil
}

// Check reads the manifest of the backup in dir and checks it (see ParseManifest), then checks
// every file it names: present, of its size, with its SHA-256. It returns the manifest, or an
// error that names the file and what is wrong with it.
func Check(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup %s: no %s (not a backup, or one that was cut short: a backup writes its manifest last)", dir, ManifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", dir, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %s: %w", dir, ManifestFile, err)
	}
	for _, f := range m.Files {
		if err := checkFile(filepath.Join(dir, f.Name), f); err != nil {
			return nil, fmt.Errorf("backup %s: %w", dir, err)
		}
	}
	return m, nil
}

// checkFile checks that the file at path is f.
func checkFile(path string, f File) error {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is missing", f.Name)
	}
	if err != nil {
		return err
	}
	defer file.Close()
	h := sha256.New()
	n, err := io.Copy(h, file)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	if n != f.Size {
		return fmt.Errorf("%s is damaged: it is %d bytes, the manifest says %d", f.Name, n, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("%s is damaged: its SHA-256 is %s, the manifest says %s", f.Name, sum, f.SHA256)
	}
	return nil
}
