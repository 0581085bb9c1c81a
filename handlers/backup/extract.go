package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
)

// Modes of a backup: it holds every memory and the data directory's keys.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// Extract writes the backup read from mr (see Write) into dir, which must be empty or not
// exist, and returns its manifest. Each file is checked against the manifest (its size and
// SHA-256 as written) and synced; the manifest is written last. On any failure what was
// written is removed (and dir, when Extract made it), so that nothing is left that looks like
// a backup.
func Extract(mr *multipart.Reader, dir string) (m *Manifest, err error) {
	made, err := emptyDir(dir)
	if err != nil {
		return nil, err
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range written {
			os.Remove(p)
		}
		if made {
			os.Remove(dir)
		}
	}()
	got := map[string]File{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("backup: the backup ended before its manifest (cut short)")
		}
		if err != nil {
			return nil, fmt.Errorf("backup: read: %w", err)
		}
		name := part.FileName()
		if name == ManifestFile {
			data, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				return nil, fmt.Errorf("backup: read the manifest: %w", err)
			}
			m, err := ParseManifest(data)
			if err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			if err := sameFiles(m, got); err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			path := filepath.Join(dir, ManifestFile)
			written = append(written, path)
			if err := writeSynced(path, data); err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			if err := syncDir(dir); err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			return m, nil
		}
		if !fileName.MatchString(name) {
			return nil, fmt.Errorf("backup: a part named %q, which is not a backup file's name", name)
		}
		if _, dup := got[name]; dup {
			return nil, fmt.Errorf("backup: file %s sent twice", name)
		}
		path := filepath.Join(dir, name)
		written = append(written, path)
		f, err := writeFile(path, part)
		if err != nil {
			return nil, fmt.Errorf("backup: %s: %w", name, err)
		}
		got[name] = f
	}
}

// sameFiles checks that the files written are those the manifest names, with its sizes and sums.
func sameFiles(m *Manifest, got map[string]File) error {
	for _, want := range m.Files {
		f, ok := got[want.Name]
		switch {
		case !ok:
			return fmt.Errorf("%s, which the manifest names, was not sent", want.Name)
		case f.Size != want.Size || f.SHA256 != want.SHA256:
			return fmt.Errorf("%s is damaged: %d bytes with SHA-256 %s were written, the manifest says %d bytes with %s",
				want.Name, f.Size, f.SHA256, want.Size, want.SHA256)
		}
	}
	if len(got) != len(m.Files) {
		return fmt.Errorf("%d files were sent, the manifest names %d", len(got), len(m.Files))
	}
	return nil
}

// writeFile copies r into a new file at path, synced, and returns its size and SHA-256.
func writeFile(path string, r io.Reader) (File, error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return File{}, err
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err != nil {
		return File{}, err
	}
	if err := out.Sync(); err != nil {
		return File{}, err
	}
	return File{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, out.Close()
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// emptyDir makes dir (mode 0700) when it does not exist, and says so; an existing dir must be
// an empty directory.
func emptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return false, fmt.Errorf("backup: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("backup: %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("backup: %s is not empty (it holds %s%s); back up into a new or empty directory",
			dir, entries[0].Name(), more(len(entries)))
	}
	return false, nil
}

func more(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" and %d more", n-1)
}
