package eventstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The embedded server keeps each stream's state (its counts, every subject's first and last
// block, the blocks) in the stream's msgs/index.db, written every two minutes or so and at a
// clean stop, and ends it with the index of the stream's last block, that block's last
// checksum and a hash of the file. At its start it reads the whole file, a million subjects'
// worth on a million memories, and only then compares that checksum with the last block's: a
// file written before the last block took its last message is discarded, and the state is
// rebuilt from every block. After a crash that is always so (messages were appended since the
// file was written), and the read is wasted: about a second on a million memories.
// dropOutdatedStreamStates makes the same comparison from the ends of the two files and
// removes a state file the server would discard, before the server starts.
const (
	streamStateFile = "index.db"
	// What the end of a state file holds after its last block's index: the block's last
	// checksum and the file's hash.
	streamStateChecksum = 8
	streamStateHash     = 8
	blockSuffix         = ".blk"
)

// dropOutdatedStreamStates removes the state file of every stream of the embedded server's store
// under storeDir (the server's StoreDir) that names a last block other than the stream's last
// block, or another last checksum than that block's: the server would read it whole and then
// rebuild the state from the blocks. A state file it cannot judge is left to the server.
func dropOutdatedStreamStates(storeDir string, logger *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", "*", "msgs"))
	for _, dir := range dirs {
		outdated, err := streamStateOutdated(dir)
		if err != nil {
			logger.Debug("log: the stream's saved state was not judged; the server reads it", "dir", dir, "err", err)
			continue
		}
		if !outdated {
			continue
		}
		if err := os.Remove(filepath.Join(dir, streamStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Warn("log: could not remove the stream's outdated saved state; the server reads it before rebuilding the state", "dir", dir, "err", err)
			continue
		}
		logger.Info("log: the stream's saved state is older than its last block (the last stop was not clean): removed, the server rebuilds the state from the blocks", "dir", dir)
	}
}

// streamStateOutdated reports whether the state file in a stream's message directory dir was
// written before the stream's last block took its last message (see dropOutdatedStreamStates).
// It is false when there is no state file, and an error when the files cannot be read or the
// state file is too short to hold what it ends with.
func streamStateOutdated(dir string) (bool, error) {
	state, err := os.Open(filepath.Join(dir, streamStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer state.Close()
	last, ok, err := lastBlock(dir)
	if err != nil || !ok {
		return false, err
	}
	tail, err := readTail(state, binary.MaxVarintLen32+streamStateChecksum+streamStateHash)
	if err != nil {
		return false, err
	}
	named := tail[:len(tail)-streamStateChecksum-streamStateHash]
	checksum := tail[len(named) : len(named)+streamStateChecksum]
	index := binary.AppendUvarint(nil, uint64(last))
	if !bytes.HasSuffix(named, index) {
		return true, nil // it names another block: the stream has grown a block since
	}
	if rest := named[:len(named)-len(index)]; len(rest) > 0 && rest[len(rest)-1]&0x80 != 0 {
		// The byte before does not end a varint: the index may be a longer one ending alike.
		return false, fmt.Errorf("%s: its last block's index cannot be told from its end", state.Name())
	}
	blk, err := os.Open(filepath.Join(dir, strconv.FormatUint(uint64(last), 10)+blockSuffix))
	if err != nil {
		return false, err
	}
	defer blk.Close()
	fi, err := blk.Stat()
	if err != nil {
		return false, err
	}
	var lastChecksum [streamStateChecksum]byte
	if fi.Size() >= streamStateChecksum {
		if _, err := blk.ReadAt(lastChecksum[:], fi.Size()-streamStateChecksum); err != nil {
			return false, err
		}
	}
	return !bytes.Equal(checksum, lastChecksum[:]), nil
}

// lastBlock is the highest index of the block files in dir; false when there is none.
func lastBlock(dir string) (uint32, bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, false, err
	}
	var last uint32
	found := false
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), blockSuffix)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		if !found || uint32(n) > last {
			last, found = uint32(n), true
		}
	}
	return last, found, nil
}

// readTail reads the last n bytes of f; an error when it holds fewer.
func readTail(f *os.File, n int) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < int64(n) {
		return nil, fmt.Errorf("%s holds %d bytes, fewer than the %d it ends with", f.Name(), fi.Size(), n)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-int64(n)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}
